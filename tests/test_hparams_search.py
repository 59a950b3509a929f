"""The Optuna searches: compose, run 3 tiny trials end to end, survive a failing trial, resume."""

from __future__ import annotations

import json
import os
import pickle
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml
from hydra.core.utils import JobReturn, JobStatus
from omegaconf import OmegaConf

import dlhw.config.resolvers  # noqa: F401  (registers the resolvers the configs use)
from dlhw.sweep.callback import job_dirs
from dlhw.sweep.search import FailedTrials, TrialFailed

SEARCHES = ("binary_hidden", "mnist_hidden", "cnn_mnist")


@pytest.mark.parametrize("name", SEARCHES)
def test_search_config_maximises_validation_accuracy(name: str, make_cfg) -> None:
    from dlhw.config.compose import compose

    cfg = compose([f"hparams_search={name}"], return_hydra_config=True)
    sweeper = cfg.hydra.sweeper
    assert sweeper._target_.endswith("ResumableOptunaSweeper") and sweeper.direction == "maximize"
    raw = OmegaConf.to_container(sweeper, resolve=False)
    assert cfg.optimized_metric == "val/acc" and raw["storage"] == "sqlite:///${hydra.sweep.dir}/optuna.db"
    assert sweeper.max_failure_rate == 1.0
    assert cfg.hydra.callbacks.failed_trials._target_ == "dlhw.sweep.search.FailedTrials"
    assert all(str(v).startswith("choice(") for v in sweeper.params.values())
    assert {k.split(".")[0] for k in sweeper.params} == {"model"}


def test_failed_job_becomes_failed_trial() -> None:
    nan_job = JobReturn(overrides=["model.hidden=[5]"], status=JobStatus.COMPLETED)
    nan_job.return_value = float("nan")
    ok_job = JobReturn(overrides=[], status=JobStatus.COMPLETED)
    ok_job.return_value = 0.9
    for job in (nan_job, ok_job):
        FailedTrials().on_job_end(config=None, job_return=job)
    assert nan_job.status == JobStatus.FAILED
    with pytest.raises(TrialFailed, match="model.hidden=\\[5\\]"):
        _ = nan_job.return_value
    assert ok_job.status == JobStatus.COMPLETED and ok_job.return_value == 0.9


def test_search_runs_three_trials_and_survives_a_failure(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(1000, 20)).astype(np.float32)
    y = (x @ rng.normal(size=20) > 0).astype(np.int64)
    data = tmp_path / "binary.pkl"
    data.write_bytes(pickle.dumps((x, y)))
    sweep = tmp_path / "search"
    cmd = [sys.executable, "-m", "dlhw.cli.train", "hparams_search=binary_hidden", f"data.path={data}",
           "hydra.sweeper.n_trials=3", "trainer.max_epochs=2", "threads=1", "callbacks=minimal",
           "logger=none", f"hydra.sweep.dir={sweep}", "seed=0",
           "optimizer.lr=choice(0.1,-1.0)"]  # TPE(seed 0) draws lr=-1 (invalid) for two trials
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = [json.loads((job / "results.json").read_text()) for job in job_dirs(sweep)[:3]]
    assert sorted(r["status"] for r in results) == ["completed", "failed", "failed"]
    best = yaml.safe_load((sweep / "optimization_results.yaml").read_text())
    done = next(r for r in results if r["status"] == "completed")
    assert best["best_value"] == pytest.approx(done["best_val_acc"])  # validation, not test
    assert best["best_params"]["optimizer.lr"] == 0.1
    assert "failed trial" in proc.stdout + proc.stderr


def _binary_pickle(path: Path) -> Path:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(1000, 20)).astype(np.float32)
    path.write_bytes(pickle.dumps((x, (x @ rng.normal(size=20) > 0).astype(np.int64))))
    return path


def _job_dirs(sweep: Path) -> dict[int, Path]:
    return {int(d.name.split("_")[0]): d for d in sweep.iterdir() if d.is_dir() and d.name.split("_")[0].isdigit()}


def _status(job: Path) -> str | None:
    try:
        return json.loads((job / "results.json").read_text())["status"]
    except (OSError, ValueError, KeyError):
        return None


def test_ctrl_c_between_two_trials_is_one_line_and_exit_130(tmp_path: Path) -> None:
    """Ctrl+C after trial 0 ended and before trial 1 started: no Hydra traceback, one dlhw: line
    that names the study and the resume command, exit 130; the finished trial is in the study."""
    import optuna

    data = _binary_pickle(tmp_path / "binary.pkl")
    sweep = tmp_path / "search"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(Path(__file__).parent)}
    env.pop("HYDRA_FULL_ERROR", None)
    proc = subprocess.run(
        [sys.executable, "-m", "dlhw.cli.train", "hparams_search=binary_hidden", f"data.path={data}",
         "hydra.sweeper.n_trials=3", "trainer.max_epochs=1", "threads=1", "callbacks=minimal",
         "logger=none", f"hydra.sweep.dir={sweep}", "report=false",
         "+hydra.callbacks.interrupt._target_=_helpers_robust.InterruptAfterJob"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 130, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr and proc.stderr.count("dlhw: ") == 1, proc.stderr[-3000:]
    assert (f"dlhw: search interrupted between trials; the finished trials are kept in {sweep}/optuna.db. "
            f"Continue with: dlhw-train -m resume={sweep}") in proc.stderr
    storage = f"sqlite:///{sweep}/optuna.db"
    trials = optuna.load_study(study_name="binary_hidden", storage=storage).trials
    assert len(trials) == 1 and _status(_job_dirs(sweep)[0]) == "completed"  # trial 1 never asked for
    stamp = (_job_dirs(sweep)[0] / "results.json").stat().st_mtime_ns
    resumed = subprocess.run(  # trial 0 (its job completed, its value not yet told) is not trained again
        [sys.executable, "-m", "dlhw.cli.train", "-m", f"resume={sweep}", "+hydra.callbacks.interrupt.after=99"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    trials = optuna.load_study(study_name="binary_hidden", storage=storage).trials
    assert [t.state for t in trials] == [optuna.trial.TrialState.COMPLETE] * 3
    assert (_job_dirs(sweep)[0] / "results.json").stat().st_mtime_ns == stamp


def test_interrupted_search_resumes_from_its_study(tmp_path: Path) -> None:
    """6 trials, Ctrl+C during the 4th; resume=SWEEP_DIR: 6 in all, the first 3 not run again."""
    import optuna

    data = _binary_pickle(tmp_path / "binary.pkl")
    sweep = tmp_path / "search"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env.pop("HYDRA_FULL_ERROR", None)
    first = subprocess.Popen(
        [sys.executable, "-m", "dlhw.cli.train", "hparams_search=binary_hidden", f"data.path={data}",
         "hydra.sweeper.n_trials=6", "trainer.max_epochs=12", "threads=1", "callbacks=minimal",
         "logger=none", f"hydra.sweep.dir={sweep}", "report=false"],
        cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )
    deadline = time.time() + 240
    while time.time() < deadline and first.poll() is None:  # wait for trial 3 to be under way
        jobs = _job_dirs(sweep) if sweep.is_dir() else {}
        if 3 in jobs and (jobs[3] / "config.yaml").is_file():  # the 4th trial's run has started
            break
        time.sleep(0.05)
    assert first.poll() is None, "the search ended before it could be interrupted"
    first.send_signal(signal.SIGINT)
    _, err = first.communicate(timeout=120)
    assert first.returncode == 130, err[-2000:]
    before = {i: (d / "results.json").read_bytes() for i, d in _job_dirs(sweep).items() if _status(d) == "completed"}
    assert sorted(before) == [0, 1, 2]
    mtimes = {i: (_job_dirs(sweep)[i] / "results.json").stat().st_mtime_ns for i in before}
    storage = f"sqlite:///{sweep}/optuna.db"
    states = [t.state for t in optuna.load_study(study_name="binary_hidden", storage=storage).trials]
    assert states.count(optuna.trial.TrialState.COMPLETE) == 3 and len(states) == 4  # the 4th unfinished

    resumed = subprocess.run(
        [sys.executable, "-m", "dlhw.cli.train", "-m", "hparams_search=binary_hidden", f"resume={sweep}"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
    )
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    trials = optuna.load_study(study_name="binary_hidden", storage=storage).trials
    assert [t.number for t in trials] == list(range(6))
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in trials)
    jobs = _job_dirs(sweep)
    assert sorted(jobs) == list(range(6)) and all(_status(d) == "completed" for d in jobs.values())
    for i, content in before.items():  # not run again
        assert (jobs[i] / "results.json").read_bytes() == content
        assert (jobs[i] / "results.json").stat().st_mtime_ns == mtimes[i]
    results = [json.loads((jobs[t.number] / "results.json").read_text()) for t in trials]
    assert [t.value for t in trials] == pytest.approx([r["best_val_acc"] for r in results])
    assert "Resuming the search binary_hidden: 4 trial(s)" in resumed.stdout + resumed.stderr
    best = yaml.safe_load((sweep / "optimization_results.yaml").read_text())
    assert best["best_value"] == pytest.approx(max(t.value for t in trials))
