"""results.json as a typed record: written whole, read back field by field, unknown keys kept,
missing ones None, and the files of dlhw 0.1 (no version key) still read by the report and the
sweep summary."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dlhw.report.markdown import summarize
from dlhw.report.runs import find_runs
from dlhw.results import OLD_VERSION, RESULTS_FILE, VERSION, RunResult, read_results, write_results
from dlhw.sweep.callback import summarize_sweep

# What run/results.py of dlhw 0.1 wrote: a plain dict per outcome, no version key.
OLD_COMPLETED = {
    "status": "completed", "test_acc": 0.9125, "test_loss": 0.31, "best_val_acc": 0.9,
    "final_val_acc": 0.89, "final_val_loss": 0.35, "final_train_loss": 0.2, "epochs": 2,
    "global_steps": 40, "wall_s": 3.2, "epoch_s": 1.1, "train_samples_per_s": 900.0, "params": 1234,
    "threads": 1, "device": "cpu", "host": "box", "launcher": "none", "seed": 0, "experiment": None,
    "overrides": ["model=mlp", "seed=0"], "best_ckpt": "/old/place/checkpoints/best.ckpt",
    "resumed_from": None, "run_dir": "/old/place",
}
OLD_INTERRUPTED = {
    "status": "interrupted", "reason": "interrupted by SIGINT", "signal": "SIGINT",
    "signal_number": 2, "epoch": 1, "global_step": 25, "epochs_completed": 1,
    "run_dir": "/old/stop", "last_ckpt": "/old/stop/checkpoints/last.ckpt", "best_val_acc": 0.5,
    "global_steps": 25, "wall_s": 1.0, "seed": 1, "experiment": "demo", "overrides": ["seed=1"],
    "resume": "dlhw-train resume=/old/stop",
}
OLD_FAILED = {
    "status": "failed", "error": "UserError: data.root=/nope: no MNIST there", "seed": 2,
    "overrides": ["data.root=/nope"], "run_dir": "/old/failed", "previous_status": "interrupted",
}


def _old_file(run_dir: Path, content: dict) -> Path:
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / RESULTS_FILE).write_text(json.dumps(content, indent=2))
    return run_dir


@pytest.mark.parametrize("old", [OLD_COMPLETED, OLD_INTERRUPTED, OLD_FAILED],
                         ids=["completed", "interrupted", "failed"])
def test_a_results_file_of_version_0_1_reads_field_by_field(tmp_path: Path, old: dict) -> None:
    res = read_results(_old_file(tmp_path / "run", old))
    assert isinstance(res, RunResult) and res.version == OLD_VERSION and res.extra == {}
    for key, value in old.items():
        assert getattr(res, key) == value and res[key] == value
    missing = [f for f in RunResult.__dataclass_fields__ if f not in old and f not in ("extra", "version")]
    assert missing and all(getattr(res, f) is None for f in missing)
    assert res.completed == (old["status"] == "completed")


def test_an_old_file_written_back_keeps_every_value_and_says_its_version(tmp_path: Path) -> None:
    res = read_results(_old_file(tmp_path / "run", OLD_INTERRUPTED))
    write_results(tmp_path / "again", res)
    written = json.loads((tmp_path / "again" / RESULTS_FILE).read_text())
    assert written["version"] == VERSION
    assert {k: written[k] for k in OLD_INTERRUPTED} == OLD_INTERRUPTED
    assert written["test_acc"] is None  # every field is written, null when unknown
    assert read_results(tmp_path / "again") == RunResult.from_dict(written)


def test_unknown_keys_are_kept_in_extra_and_written_back(tmp_path: Path) -> None:
    newer = {"version": "0.9", **OLD_COMPLETED, "queue": ["gpu-a"], "energy_j": 12.5}
    res = read_results(_old_file(tmp_path / "run", newer))
    assert res.version == "0.9" and res.extra == {"queue": ["gpu-a"], "energy_j": 12.5}
    assert res["energy_j"] == 12.5 and res.get("energy_j") == 12.5 and res.get("nothing", 7) == 7
    with pytest.raises(KeyError):
        res["nothing"]
    write_results(tmp_path / "run", res)
    written = json.loads((tmp_path / "run" / RESULTS_FILE).read_text())
    assert written["queue"] == ["gpu-a"] and written["energy_j"] == 12.5
    assert written["test_acc"] == OLD_COMPLETED["test_acc"]


def test_a_record_round_trips_and_non_finite_numbers_become_null(tmp_path: Path) -> None:
    res = RunResult.create(status="diverged", best_val_acc=float("nan"), loss="nan", diverged_step=7,
                           overrides=["optimizer.lr=10"], seed=0, queue=["2"])
    assert res.extra == {"queue": ["2"]} and res.version == VERSION
    write_results(tmp_path, res)
    back = read_results(tmp_path)
    assert back.best_val_acc is None and back.diverged_step == 7 and back.loss == "nan"
    assert back.extra == {"queue": ["2"]} and back.overrides == ["optimizer.lr=10"]
    assert back.get("best_val_acc", "—") == "—"  # None reads as the default


def test_a_mapping_is_written_as_a_record(tmp_path: Path) -> None:
    write_results(tmp_path, {"status": "failed", "error": "boom", "launcher_note": "x"})
    written = json.loads((tmp_path / RESULTS_FILE).read_text())
    assert written["version"] == VERSION and written["status"] == "failed" and written["launcher_note"] == "x"
    assert written["test_acc"] is None


@pytest.mark.parametrize("content", ["", "{not json", "[1, 2]", "null"])
def test_an_unreadable_or_foreign_file_reads_as_no_results(tmp_path: Path, content: str) -> None:
    (tmp_path / RESULTS_FILE).write_text(content)
    assert read_results(tmp_path) is None
    assert read_results(tmp_path / "nowhere") is None


def test_the_report_and_the_sweep_summary_read_old_files(tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    _old_file(sweep / "0_seed=0", OLD_COMPLETED)
    _old_file(sweep / "1_seed=1", OLD_INTERRUPTED)
    _old_file(sweep / "2_seed=2", OLD_FAILED)
    runs = find_runs(sweep)
    assert [r.status for r in runs] == ["completed", "interrupted", "failed"]
    assert runs[0].overrides == {"model": "mlp", "seed": "0"}
    assert summarize(runs, "test_acc").mean == pytest.approx(0.9125)
    summary = summarize_sweep(sweep)
    assert "3 jobs, 1 completed, 1 failed, 1 interrupted" in summary
    assert "job 2_seed=2 failed: UserError: data.root=/nope: no MNIST there" in summary
    assert "job 1_seed=1 interrupted: interrupted by SIGINT" in summary
