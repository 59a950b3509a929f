"""The report's tables: runs.csv (one row per run, as dlhw.runs) and configurations.csv (mean,
sd, min, max over the seeds of each configuration), written by dlhw-report next to report.md."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from dlhw.cli.report import main
from dlhw.report.markdown import Report
from dlhw.report.runs import find_runs
from dlhw.report.table import runs_table
from dlhw.results import write_results


@pytest.fixture
def study(tmp_path: Path) -> Path:
    """Two configurations (lr 0.1 over three seeds, lr 0.01 over two), one of its runs failed."""
    for i, (lr, seed, test) in enumerate([("0.1", 0, 0.50), ("0.1", 1, 0.60), ("0.1", 2, 0.70),
                                          ("1e-2", 0, 0.80), ("1e-2", 1, None)]):
        status = "completed" if test is not None else "failed"
        write_results(tmp_path / f"{i}_optimizer.lr={lr},seed={seed}", {
            "status": status, "overrides": [f"optimizer.lr={lr}", f"seed={seed}", "threads=1"],
            "test_acc": test, "best_val_acc": test, "test_loss": 1.0 if test else None,
            "epochs": 3 if test else None, "wall_s": 2.5, "params": 1234, "seed": seed,
            "error": None if test else "UserError: data missing"})
    return tmp_path


def test_dlhw_report_writes_runs_and_configurations_csv(study: Path, capsys) -> None:
    main([str(study)])
    runs = pd.read_csv(study / "runs.csv")
    assert runs["run"].tolist()[0] == "0_optimizer.lr=0.1,seed=0" and len(runs) == 5
    assert list(runs.columns[:4]) == ["run", "optimizer.lr", "seed", "status"]  # plumbing left out
    assert runs["optimizer.lr"].tolist() == [0.1, 0.1, 0.1, 0.01, 0.01]  # "1e-2" typed
    assert runs["status"].tolist()[-1] == "failed" and runs["error"].tolist()[-1] == "UserError: data missing"
    configs = pd.read_csv(study / "configurations.csv").set_index("configuration")
    lr01 = configs.loc["optimizer.lr=0.1"]
    assert (lr01["runs"], lr01["completed"]) == (3, 3)
    assert lr01["test_acc_mean"] == pytest.approx(0.6) and lr01["test_acc_sd"] == pytest.approx(0.1)
    assert (lr01["test_acc_min"], lr01["test_acc_max"]) == (pytest.approx(0.5), pytest.approx(0.7))
    lr001 = configs.loc["optimizer.lr=1e-2"]
    assert (lr001["runs"], lr001["completed"]) == (2, 1) and pd.isna(lr001["test_acc_sd"])
    md = (study / "report.md").read_text()  # the report's tables hold the same numbers
    assert "| optimizer.lr=0.1 | 3/3 | 60.00 ± 10.00% (50.00–70.00) |" in md
    assert "| 0_optimizer.lr=0.1,seed=0 | 0.1 | 0 | 50.00% | 1.0000 | 50.00% | 3 | 2.5 s | 1,234 | completed |" in md


def test_runs_table_keeps_counts_as_integers_next_to_missing_values(study: Path) -> None:
    table = runs_table(find_runs(study), study)
    assert str(table["epochs"].dtype) == "Int64" and table["epochs"].tolist()[:4] == [3, 3, 3, 3]
    assert pd.isna(table["epochs"].iloc[4]) and table["params"].tolist() == [1234] * 5
    assert Report(study).configurations()["configuration"].tolist() == ["optimizer.lr=0.1", "optimizer.lr=1e-2"]
