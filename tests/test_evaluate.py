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


@pytest.fixture(scope="module")
def tiny_sweep(tmp_path_factory) -> Path:
    """A real two-job sweep (digits, debug=fast): job directories named by what they vary."""
    import os
    import subprocess
    import sys

    sweep = tmp_path_factory.mktemp("sweep") / "s"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env.pop("HYDRA_FULL_ERROR", None)
    proc = subprocess.run(
        [sys.executable, "-m", "dlhw.cli.train", "-m", "data=digits", "debug=fast", "init=default,kaiming",
         "threads=1", "callbacks.progress_bar=null", "report=false", f"hydra.sweep.dir={sweep}"],
        cwd=sweep.parent, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (sweep / "0_init=default" / "results.json").is_file()
    return sweep


def test_eval_tests_a_job_of_a_sweep(tiny_sweep: Path, capsys, monkeypatch) -> None:
    """``dlhw-eval SWEEP/0_init=default``: an existing directory is the run directory, though its
    name holds '='; the job's own checkpoint reproduces its test accuracy."""
    job = tiny_sweep / "0_init=default"
    results = json.loads((job / "results.json").read_text())
    main([str(job), "threads=1"])
    saved = json.loads((job / "eval.json").read_text())
    assert saved["test_acc"] == results["test_acc"] and saved["run_dir"] == str(job)
    assert "Saved:" in capsys.readouterr().out
    monkeypatch.chdir(tiny_sweep)  # relative to the sweep: the bare job name
    assert parse_args(["1_init=kaiming", "threads=1"]) == (Path("1_init=kaiming"), ["threads=1"], None)


def test_a_job_directory_that_does_not_exist_is_named_as_such(tiny_sweep: Path) -> None:
    for missing in (str(tiny_sweep / "7_init=default"), "7_init=default"):
        with pytest.raises(UserError, match="run directory .*7_init=default does not exist"):
            parse_args([missing, "threads=1"])
    assert parse_args([str(tiny_sweep / "0_init=default"), "hydra/launcher=basic", "data.root=/a=b"])[1] == [
        "hydra/launcher=basic", "data.root=/a=b"]


def test_resume_and_report_take_a_job_directory_of_a_sweep(tiny_sweep: Path) -> None:
    """``resume=SWEEP/0_init=default`` continues that job alone, in its own directory (not a new
    multirun); dlhw-report reads the job directory as one run."""
    import os
    import subprocess
    import sys

    from dlhw.report.markdown import build_report
    from dlhw.run.resume import resume_argv

    job = tiny_sweep / "1_init=kaiming"
    argv = resume_argv([f"resume={job}"])
    assert "-m" not in argv and not any(a.startswith("hydra.mode=") for a in argv)
    assert argv[-2:] == [f"hydra.run.dir='{job.resolve()}'", "resume=true"]  # '=' in a value: quoted
    env = {**os.environ, "OMP_NUM_THREADS": "1", "DLHW_OUTPUT": str(tiny_sweep.parent / "elsewhere")}
    proc = subprocess.run([sys.executable, "-m", "dlhw.cli.train", f"resume={job}"], cwd=tiny_sweep.parent,
                          env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert f"{job.resolve()} already completed (status in results.json): skipped." in proc.stdout + proc.stderr
    assert not (tiny_sweep.parent / "elsewhere").exists() and not (tiny_sweep.parent / "outputs").exists()
    md = build_report(job).read_text()
    assert "1 runs, 1 completed." in md and "| completed |" in md
