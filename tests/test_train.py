"""End-to-end runs: in-process through compose(), through the CLI, and as a small multirun."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

from dlhw.results import read_results
from dlhw.run.runner import TIP_LOGGERS, run

QUICK = ["trainer.max_epochs=1", "callbacks.progress_bar=null", "data.batch_size=64"]


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env.pop("HYDRA_FULL_ERROR", None)
    flags = [a for a in args if a.startswith("-")]
    overrides = [a for a in args if not a.startswith("-")]
    return subprocess.run(
        [sys.executable, "-m", "dlhw.cli.train", *flags, "threads=1", *overrides],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=300,
    )


def test_in_process_run_writes_results_checkpoints_and_events(make_cfg, tmp_path: Path) -> None:
    cfg = make_cfg(["trainer.max_epochs=2", "callbacks.progress_bar=null"])
    best_val = run(cfg)
    out = tmp_path / "run"
    res = read_results(out)
    assert res["status"] == "completed" and res["epochs"] == 2
    assert res["best_val_acc"] == pytest.approx(best_val)
    assert res["test_acc"] > 0.6 and res["test_loss"] > 0  # digits learn fast
    assert res["params"] == 44426 and res["train_samples_per_s"] > 0
    assert (out / "checkpoints" / "last.ckpt").is_file()
    assert Path(res["best_ckpt"]).is_file()
    assert list(out.glob("events.out.tfevents.*"))  # in the run directory itself
    assert "data:" in (out / "config.yaml").read_text()


def test_same_seed_same_metrics_other_seed_other_metrics(make_cfg) -> None:
    a = run(make_cfg([*QUICK, "seed=0"], name="a"))
    b = run(make_cfg([*QUICK, "seed=0"], name="b"))
    c = run(make_cfg([*QUICK, "seed=1"], name="c"))
    assert a == b
    ra, rb = (json.loads((Path(d) / "results.json").read_text()) for d in (
        make_cfg([], name="a").paths.output_dir, make_cfg([], name="b").paths.output_dir))
    assert ra["test_loss"] == rb["test_loss"] and ra["final_train_loss"] == rb["final_train_loss"]
    rc = read_results(make_cfg([], name="c").paths.output_dir)
    assert rc["final_train_loss"] != ra["final_train_loss"]  # seed 0 is a seed, not "no seed"
    assert c is not None
    for name in TIP_LOGGERS:  # three runs in this process, the tips filter installed once
        filters = logging.getLogger(name).filters
        assert len([f for f in filters if getattr(f, "__name__", "") == "_no_tips"]) == 1, filters
    assert sum("LeafSpec" in str(f[1].pattern) for f in warnings.filters if f[1] is not None) <= 1


def test_mlp_on_tiny_mnist_files(make_cfg, mnist_root: Path, tmp_path: Path) -> None:
    run(make_cfg([*QUICK, "data=mnist", f"data.root={mnist_root}", "model=mlp"]))
    res = read_results(tmp_path / "run")
    assert res["status"] == "completed" and res["params"] == 784 * 256 + 256 + 2570


def test_lenet_on_tiny_cifar10_batches(make_cfg, cifar_root: Path, tmp_path: Path) -> None:
    run(make_cfg([*QUICK, "data=cifar10", f"data.root={cifar_root}", "model.width=2"]))
    res = read_results(tmp_path / "run")
    assert res["status"] == "completed" and res["test_acc"] is not None


def test_cli_run_prints_accuracy_run_dir_and_tensorboard(tmp_path: Path) -> None:
    out = tmp_path / "cli-run"
    proc = cli(*QUICK, f"hydra.run.dir={out}", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Test accuracy:" in proc.stdout
    assert f"tensorboard --logdir {out}\n" in proc.stdout
    assert read_results(out)["status"] == "completed"
    assert (out / ".hydra" / "overrides.yaml").is_file() and (out / "train.log").is_file()


def test_cli_missing_data_is_one_message_without_traceback(tmp_path: Path) -> None:
    out = tmp_path / "missing"
    proc = cli("data=mnist", f"data.root={tmp_path / 'no-data'}", f"hydra.run.dir={out}", cwd=tmp_path)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr + proc.stdout
    assert "dlhw: error: MNIST not found under data.root=" in proc.stderr
    assert "data=digits" in proc.stderr
    assert read_results(out)["status"] == "failed"


def test_multirun_makes_one_directory_per_job(tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    proc = cli("-m", "optimizer.lr=0.01,0.001", "model=lenet,mlp", *QUICK,
               "data.max_train_samples=300", f"hydra.sweep.dir={sweep}", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    jobs = sorted((p for p in sweep.iterdir() if p.is_dir() and p.name[0].isdigit()),
                  key=lambda p: int(p.name.split("_")[0]))
    assert [p.name.split("_")[0] for p in jobs] == ["0", "1", "2", "3"]
    # named by what the sweep varies, the shared overrides (trainer, data, threads) left out
    assert {p.name.split("_", 1)[1] for p in jobs} == {
        f"model={m},optimizer.lr={lr}" for m in ("lenet", "mlp") for lr in ("0.01", "0.001")}
    overrides = set()
    for job in jobs:
        res = read_results(job)
        assert res["status"] == "completed"
        overrides.add(tuple(sorted(o for o in res["overrides"] if not o.startswith(("trainer", "callbacks", "data", "threads")))))
    assert len(overrides) == 4


def test_run_directories_are_unique_within_one_second(make_cfg) -> None:
    from omegaconf import OmegaConf

    from dlhw.config.compose import compose

    cfg = compose(return_hydra_config=True)
    pattern = OmegaConf.to_container(cfg.hydra.run, resolve=False)["dir"]
    assert "%f" in pattern and "dlhw_pid" in pattern
