"""dlhw-eval rebuilds a saved run from its config and reproduces its test metrics."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from _helpers_dashboards import train_run

from dlhw.cli.evaluate import main
from dlhw.errors import UserError
from dlhw.run.evaluate import evaluate, parse_args


@pytest.fixture(scope="module")
def saved_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("eval") / "run"
    train_run(out, ["model=mlp", "model.hidden=[32]"])
    (out / ".hydra").mkdir(exist_ok=True)  # as under Hydra: the unresolved config and overrides
    shutil.copy(out / "config.yaml", out / ".hydra" / "config.yaml")
    (out / ".hydra" / "overrides.yaml").write_text("- model=mlp\n- model.hidden=[32]\n")
    return out


def test_eval_reproduces_test_accuracy_exactly(saved_run: Path, capsys) -> None:
    results = json.loads((saved_run / "results.json").read_text())
    main([str(saved_run), "threads=1"])
    saved = json.loads((saved_run / "eval.json").read_text())
    assert saved["test_acc"] == results["test_acc"]
    assert saved["test_loss"] == results["test_loss"]
    assert Path(saved["checkpoint"]).name.startswith("best")
    assert f"{results['test_acc'] * 100:.2f}%" in capsys.readouterr().out


def test_eval_on_another_data_set_and_checkpoint(saved_run: Path, mnist_root: Path) -> None:
    last = saved_run / "checkpoints" / "last.ckpt"
    out = evaluate(saved_run, ["data=mnist", f"data.root={mnist_root}", "threads=1"], str(last))
    assert out["data"].endswith("MNISTData") and out["test_samples"] == 100
    assert 0.0 <= out["test_acc"] <= 1.0 and out["checkpoint"] == str(last)


def test_checkpoint_that_does_not_match_is_one_clear_error(saved_run: Path, capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main([str(saved_run), "model.hidden=[64]", "threads=1"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "does not match the model" in err and "model.*" in err and "Traceback" not in err


def test_run_dir_found_from_checkpoint(saved_run: Path) -> None:
    run_dir, overrides, ckpt = parse_args([f"ckpt_path={saved_run / 'checkpoints' / 'last.ckpt'}"])
    assert run_dir == saved_run.resolve() and overrides == [] and ckpt.endswith("last.ckpt")
    with pytest.raises(UserError, match="does not exist"):
        parse_args([str(saved_run / "nope")])
