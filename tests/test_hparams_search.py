"""The Optuna searches: compose, run 3 tiny trials end to end, survive a failing trial."""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from hydra.core.utils import JobReturn, JobStatus

from dlhw.run.search import FailedTrials, TrialFailed
from dlhw.run.sweep import job_dirs

SEARCHES = ("binary_hidden", "mnist_hidden", "cnn_mnist")


@pytest.mark.parametrize("name", SEARCHES)
def test_search_config_maximises_validation_accuracy(name: str, make_cfg) -> None:
    from hydra import compose, initialize_config_module

    with initialize_config_module("dlhw.conf", version_base="1.3"):
        cfg = compose("train", overrides=[f"hparams_search={name}"], return_hydra_config=True)
    sweeper = cfg.hydra.sweeper
    assert sweeper._target_.endswith("OptunaSweeper") and sweeper.direction == "maximize"
    assert cfg.optimized_metric == "val/acc" and sweeper.storage is None
    assert sweeper.max_failure_rate == 1.0
    assert cfg.hydra.callbacks.failed_trials._target_ == "dlhw.run.search.FailedTrials"
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
