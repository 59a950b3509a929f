"""The Python API (dlhw.train, sweep, runs, scalars, compose): the CLI's runs, in this process,
leaving nothing behind."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch
import yaml

import dlhw
from dlhw.config.overrides import to_overrides
from dlhw.errors import UserError

TINY = ["trainer.max_epochs=1", "data.max_train_samples=200", "threads=1"]
VOLATILE = {"wall_s", "epoch_s", "train_samples_per_s", "run_dir", "best_ckpt"}  # times and paths


@pytest.fixture(autouse=True)
def outputs(tmp_path: Path, monkeypatch) -> Path:
    monkeypatch.setenv("DLHW_OUTPUT", str(tmp_path / "outputs"))
    return tmp_path / "outputs"


def _results(run_dir: Path) -> dict:
    data = json.loads((run_dir / "results.json").read_text())
    return {k: v for k, v in data.items() if k not in VOLATILE}


def test_train_writes_what_the_cli_writes(tmp_path: Path) -> None:
    cli_dir, api_dir = tmp_path / "cli", tmp_path / "api"
    subprocess.run([sys.executable, "-m", "dlhw.cli.train", *TINY, f"hydra.run.dir={cli_dir}"],
                   check=True, capture_output=True)  # in this process's directory, as the API runs
    result = dlhw.train(*TINY, f"hydra.run.dir={api_dir}")

    assert result.run_dir == api_dir and result.result.completed
    assert _results(api_dir) == _results(cli_dir)  # same metrics, epochs, steps, overrides, params
    for name in (".hydra/overrides.yaml", ".hydra/config.yaml", ".hydra/hydra.yaml", "config.yaml"):
        api = (api_dir / name).read_text().replace(str(api_dir), "RUN")  # Hydra's record of the
        assert api == (cli_dir / name).read_text().replace(str(cli_dir), "RUN"), name  # job: the same
    assert (api_dir / "train.log").is_file() and any(api_dir.glob("events.out.tfevents.*"))
    # the result object: metrics, the resolved config, the trained network in eval mode
    assert result.metrics["test_acc"] == result.result.test_acc and result.metrics["epochs"] == 1
    assert result.config.paths.output_dir == str(api_dir) and result.config.seed == 0
    assert not result.model.training
    ckpt = torch.load(result.result.best_ckpt, map_location="cpu", weights_only=True)["state_dict"]
    for name, tensor in result.model.state_dict().items():
        torch.testing.assert_close(tensor, ckpt[f"net.{name}"], rtol=0, atol=0)
    assert result.data.in_shape == (1, 28, 28)


def test_two_trainings_in_one_process_give_the_same_result_and_leave_no_state() -> None:
    root = logging.getLogger()
    handlers, env, threads = list(root.handlers), dict(os.environ), torch.get_num_threads()
    torch.manual_seed(123)
    first = dlhw.train(*TINY, seed=3)
    after_call = torch.rand(3)
    with pytest.raises(UserError):  # a failed call in between changes nothing
        dlhw.train(*TINY, "data=mnist", "data.root=missing")
    second = dlhw.train(*TINY, seed=3)

    assert first.run_dir != second.run_dir
    assert _results(first.run_dir) == _results(second.run_dir)
    for (name, a), b in zip(first.model.state_dict().items(), second.model.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0, msg=name)
    torch.manual_seed(123)
    assert torch.equal(after_call, torch.rand(3))  # the caller's random stream, untouched
    assert root.handlers == handlers and dict(os.environ) == env and torch.get_num_threads() == threads
    assert all(not getattr(h, "baseFilename", "").endswith("train.log") for h in root.handlers)


def test_runs_of_a_tiny_sweep_one_row_per_job_overrides_as_columns(outputs: Path) -> None:
    study = dlhw.sweep(*TINY, "callbacks=minimal", optimizer__lr=(0.01, -1))  # the second job fails

    assert study.sweep_dir.parent.parent == outputs / "multirun"
    assert [r.status for r in study.results] == ["completed", "failed"]  # recorded, not raised
    table = dlhw.runs(study)
    assert list(table["run"]) == ["0_optimizer.lr=0.01", "1_optimizer.lr=-1"]
    assert table["optimizer.lr"].tolist() == [0.01, -1.0]  # typed: plotted as numbers
    assert table["trainer.max_epochs"].tolist() == [1, 1] and "threads" not in table
    assert table["status"].tolist() == ["completed", "failed"]
    done, failed = table.iloc[0], table.iloc[1]
    assert 0 <= done["test_acc"] <= 1 and done["wall_s"] > 0 and done["epochs"] == 1
    assert pd.isna(failed["test_acc"]) and pd.isna(failed["epochs"]) and "optimizer.lr=-1" in failed["error"]
    # the report and its tables to take away
    assert study.report == study.sweep_dir / "report.md" and study.report.is_file()
    saved = pd.read_csv(study.sweep_dir / "runs.csv")
    assert saved["run"].tolist() == table["run"].tolist()
    assert saved["test_acc"].iloc[0] == pytest.approx(done["test_acc"])
    configs = pd.read_csv(study.sweep_dir / "configurations.csv")
    assert configs["configuration"].tolist() == ["optimizer.lr=0.01", "optimizer.lr=-1"]
    assert configs["completed"].tolist() == [1, 0] and configs["runs"].tolist() == [1, 1]
    # scalars in long form, a folder of sweeps, and the default root (the output folder)
    curves = dlhw.scalars(study, "val/acc")
    assert set(curves["run"]) == {"0_optimizer.lr=0.01"} and set(curves["tag"]) == {"val/acc"}
    assert curves["epoch"].tolist() == [1]
    assert len(dlhw.runs(outputs)) == 2 and len(dlhw.runs()) == 2


def test_a_mistake_is_one_message_the_clis(tmp_path: Path, capsys) -> None:
    cli = subprocess.run([sys.executable, "-m", "dlhw.cli.train", "optimizer.lrr=0.1"],
                         capture_output=True, text=True, cwd=tmp_path)
    hint = cli.stderr.strip().splitlines()[-1]
    with pytest.raises(UserError) as unknown:
        dlhw.train("optimizer.lrr=0.1")
    assert f"dlhw: {unknown.value}" == hint == \
        "dlhw: optimizer.lrr is not a key of this config; did you mean optimizer.lr?"

    with pytest.raises(UserError) as bad_value:
        dlhw.train(*TINY, "optimizer.lr=-1")
    err = capsys.readouterr().err
    message = str(bad_value.value)
    assert "optimizer.lr=-1" in message and bad_value.value.shown  # printed once, by the run
    assert [line for line in err.splitlines() if "dlhw" in line] == [f"dlhw: error: {message}"]

    with pytest.raises(UserError, match="use dlhw.sweep"):
        dlhw.train("seed=0,1")
    with pytest.raises(UserError, match="does not exist"):
        dlhw.runs(tmp_path / "nowhere")


def test_compose_gives_the_checked_config() -> None:
    cfg = dlhw.compose("experiment=lenet_cifar10", optimizer__lr=0.01)
    assert cfg.experiment_name == "lenet_cifar10" and cfg.optimizer.lr == 0.01
    assert cfg.model._target_.endswith("LeNet") and "hydra" not in cfg
    with pytest.raises(UserError, match="optimizer.lr=-1"):
        dlhw.compose("optimizer.lr=-1")
    with pytest.raises(UserError, match="did you mean model=lenet"):
        dlhw.compose("model=lenett")


def test_resume_of_a_completed_run_returns_it(tmp_path: Path) -> None:
    first = dlhw.train(*TINY, "callbacks=minimal", f"hydra.run.dir={tmp_path / 'run'}")
    again = dlhw.train(resume=first.run_dir)
    assert again.run_dir == first.run_dir and _results(again.run_dir) == _results(first.run_dir)


def test_python_values_become_overrides() -> None:
    got = to_overrides(("model=mlp", {"optimizer.lr": 0.01}, ["seed=1"]),
                       {"data__root": Path("/my data"), "model__hidden": [64, 32], "flag": True,
                        "init__std": None, "seed": (0, 1), "lr": 1e-5, "model__norm": "batch"})
    assert got == ["model=mlp", "optimizer.lr=0.01", "seed=1", "data.root='/my data'",
                   "model.hidden=[64,32]", "flag=true", "init.std=null", "seed=0,1", "lr=1e-05",
                   "model.norm=batch"]
    assert yaml.safe_load(got[3].split("=", 1)[1]) == "/my data"
    with pytest.raises(UserError, match="is not an override"):
        to_overrides((3,), {})


def test_progress_bar_is_tqdm_in_jupyter(monkeypatch) -> None:
    from pytorch_lightning.callbacks import RichProgressBar, TQDMProgressBar

    from dlhw.lit import progress

    assert isinstance(progress.progress_bar(2), RichProgressBar)
    monkeypatch.setattr(progress, "in_jupyter", lambda: True)
    bar = progress.progress_bar(2)
    assert isinstance(bar, TQDMProgressBar) and bar.refresh_rate == 2
