"""dlhw-report on a small real sweep: one table row per run, the plots as PNG files."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from _helpers_dashboards import FAST
from conftest import compose_config

from dlhw.cli.report import main


@pytest.fixture(scope="module")
def sweep(tmp_path_factory) -> Path:
    """sweep/{0,1,2}: LeNet seeds 0 and 1, an MLP; sweep/3: a run that failed (bad value)."""
    from dlhw.run.runner import run, run_safely

    root = tmp_path_factory.mktemp("sweep")
    for i, extra in enumerate((["model=lenet", "seed=0"], ["model=lenet", "seed=1"],
                               ["model=mlp", "seed=0"])):
        run(compose_config([*FAST, *extra], root / str(i)))
    with pytest.raises(SystemExit):
        run_safely(compose_config([*FAST, "model=mlp", "seed=1", "data.val_fraction=1.5"], root / "3"))
    return root


def test_report_table_and_plots(sweep: Path, capsys) -> None:
    main([str(sweep)])
    assert "report.md" in capsys.readouterr().out
    md = (sweep / "report.md").read_text()
    rows = [line for line in md[md.index("## Runs"):].splitlines() if re.match(r"\| \d \|", line)]
    assert len(rows) == 4  # one row per run, the failed one included
    # columns: the overrides that differ (data.val_fraction: only the failed run sets it)
    assert rows[0].startswith("| 0 | — | lenet | 0 |") and "completed" in rows[0]
    assert "failed" in rows[3] and "val_fraction=1.5" in rows[3]
    header = next(line for line in md.splitlines() if line.startswith("| run |"))
    for column in ("data.val_fraction", "model", "seed", "test acc", "test loss", "best val acc", "epochs", "wall time",
                   "params", "status"):
        assert f"| {column} |" in header
    assert "## Configurations: mean and spread over seeds" in md and "| model=lenet | 2/2 |" in md
    assert "## Headline" in md and md.index("## Headline") < md.index("## Runs")
    images = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", md)
    for name in ("train_loss.png", "val_acc.png", "test_acc.png", "signal_init.png", "filters_000.png"):
        assert f"report_files/{name}" in images
    # filters once per configuration (seed 0 of model=lenet), none for the MLP
    assert [i for i in images if "filters_" in i] == ["report_files/filters_000.png"]
    from PIL import Image

    for rel in images:  # relative links that resolve, real PNG figures (not blank, not tiny)
        assert not Path(rel).is_absolute()
        data = (sweep / rel).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 2000
        with Image.open(sweep / rel) as image:
            colours = image.convert("RGB").getcolors(maxcolors=1 << 16) or []
            assert image.width >= 300 and image.height >= 100 and len(colours) >= 16
    html = (sweep / "report.html").read_text()
    assert "<table>" in html and "report_files/train_loss.png" in html


def test_report_of_one_run(sweep: Path, tmp_path: Path) -> None:
    main([str(sweep / "2"), "--out", str(tmp_path)])
    md = (tmp_path / "report.md").read_text()
    rows = [line for line in md.splitlines() if line.startswith("| 2 |")]
    assert len(rows) == 1 and "completed" in rows[0]
    assert "Overrides: `data.max_train_samples=240" in md and "model=mlp seed=0`" in md
    assert (tmp_path / "report_files" / "train_loss.png").is_file()


def test_report_of_nothing_is_one_clear_error(tmp_path: Path, capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main([str(tmp_path)])
    assert exit_info.value.code == 2
    assert "no run under" in capsys.readouterr().err
