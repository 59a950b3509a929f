"""Scaling out with existing engines: joblib in parallel, submitit (SLURM's local stand-in), DDP."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from dlhw.errors import UserError
from dlhw.results import read_results
from dlhw.run.runner import run
from dlhw.sweep.callback import job_dirs
from dlhw.sweep.devices import ddp_for_sweeps

TINY = ["threads=1", "trainer.max_epochs=1", "data.max_train_samples=200", "callbacks.progress_bar=null",
        "logger=none"]


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env.pop("HYDRA_FULL_ERROR", None)
    return subprocess.run([sys.executable, "-m", "dlhw.cli.train", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=500)


def test_joblib_runs_jobs_in_parallel_processes_with_dataloader_workers(tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    proc = cli("-m", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2", *TINY, "data.loader=torch",
               "data.num_workers=1", "seed=0,1", f"hydra.sweep.dir={sweep}", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Joblib.Parallel(n_jobs=2" in proc.stdout + proc.stderr
    results = [read_results(job) for job in job_dirs(sweep)]
    assert [r["status"] for r in results] == ["completed", "completed"], results
    assert results[0]["final_train_loss"] != results[1]["final_train_loss"]  # seeds 0 and 1 both ran
    assert "2 jobs, 2 completed" in proc.stdout + proc.stderr


def test_slurm_local_runs_a_sweep_through_submitit(tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    proc = cli("-m", "hydra/launcher=slurm_local", *TINY, "seed=3", f"hydra.sweep.dir={sweep}", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert read_results(job_dirs(sweep)[0])["status"] == "completed"
    logs = list((sweep / ".submitit").glob("*/*_log.out"))
    assert logs, "submitit wrote no job log"


def test_slurm_config_follows_the_trainer() -> None:
    from hydra.core.hydra_config import HydraConfig

    from dlhw.config.compose import compose

    def launcher(*overrides: str):
        cfg = compose(["hydra/launcher=slurm", *overrides], return_hydra_config=True)
        HydraConfig.instance().set_config(cfg)
        return OmegaConf.to_container(cfg.hydra.launcher, resolve=True)

    cpu = launcher()
    assert cpu["_target_"].endswith("SlurmLauncher") and cpu["gpus_per_node"] == 0 and cpu["tasks_per_node"] == 1
    ddp = launcher("trainer=ddp", "trainer.devices=4", "trainer.num_nodes=2", "hydra.launcher.partition=gpu")
    assert (ddp["gpus_per_node"], ddp["tasks_per_node"], ddp["nodes"], ddp["partition"]) == (4, 4, 2, "gpu")
    assert ddp["array_parallelism"] > 1 and ddp["timeout_min"] > 0 and ddp["max_num_timeout"] > 0


def test_slurm_config_makes_a_valid_sbatch_script(tmp_path: Path, monkeypatch) -> None:
    """What the launcher would submit: parameters mapped as hydra-submitit-launcher maps them."""
    import submitit
    from hydra.core.hydra_config import HydraConfig
    from hydra_plugins.hydra_submitit_launcher.config import BaseQueueConf
    from submitit.slurm.slurm import _make_sbatch_string

    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "srun").write_text("#!/bin/sh\n")  # submitit only checks that srun exists
    (tmp_path / "bin" / "srun").chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}:{os.environ['PATH']}")
    from dlhw.config.compose import compose

    cfg = compose(["hydra/launcher=slurm", "trainer=ddp", "trainer.devices=4",
                   "hydra.launcher.partition=gpu", f"hydra.sweep.dir={tmp_path}"], return_hydra_config=True)
    HydraConfig.instance().set_config(cfg)
    params = OmegaConf.to_container(cfg.hydra.launcher, resolve=True)
    executor = submitit.AutoExecutor(folder=str(tmp_path / "%j"), cluster="slurm",
                                     slurm_max_num_timeout=params["max_num_timeout"])
    base = set(OmegaConf.structured(BaseQueueConf).keys())
    skip = {"_target_", "submitit_folder", "max_num_timeout"}
    executor.update_parameters(**{k if k in base else f"slurm_{k}": v for k, v in params.items() if k not in skip})
    script = _make_sbatch_string(command="python -m dlhw.cli.train", folder=str(tmp_path), map_count=100,
                                 **executor._executor.parameters)
    for line in ("--gpus-per-node=4", "--ntasks-per-node=4", "--partition=gpu", "--time=240",
                 "--signal=USR2@120", "--array=0-99%64"):
        assert f"#SBATCH {line}" in script


def test_ddp_in_a_multirun_becomes_ddp_spawn_unless_slurm_started_the_ranks(monkeypatch) -> None:
    monkeypatch.delenv("SLURM_NTASKS", raising=False)
    monkeypatch.delenv("LOCAL_RANK", raising=False)
    cfg = OmegaConf.create({"trainer": {"strategy": "ddp", "devices": 2, "num_nodes": 1}})
    ddp_for_sweeps(cfg, multirun=False)
    assert cfg.trainer.strategy == "ddp"  # a single run: Lightning's re-launch is fine
    ddp_for_sweeps(cfg, multirun=True)
    assert cfg.trainer.strategy == "ddp_spawn"
    cfg = OmegaConf.create({"trainer": {"strategy": "ddp", "devices": 2, "num_nodes": 2}})
    with pytest.raises(UserError, match="hydra/launcher=slurm"):
        ddp_for_sweeps(cfg, multirun=True)
    monkeypatch.setenv("SLURM_NTASKS", "4")  # SLURM started one process per rank: nothing re-launches
    ddp_for_sweeps(cfg, multirun=True)
    assert cfg.trainer.strategy == "ddp"


def test_ddp_cpu_in_a_sweep_matches_one_process(make_cfg, tmp_path: Path) -> None:
    """Two gloo ranks with 32 samples each vs one process with 64: same steps, same accuracy within noise."""
    common = ["trainer.max_epochs=3", "data.max_train_samples=800", "callbacks.progress_bar=null", "logger=none"]
    run(make_cfg([*common, "data.batch_size=64"], name="single"))
    single = read_results(tmp_path / "single")
    sweep = tmp_path / "sweep"
    proc = cli("-m", "trainer=ddp_cpu", "trainer.strategy=ddp", "threads=1", *common, "data.batch_size=32",
               f"hydra.sweep.dir={sweep}", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "this sweep uses ddp_spawn" in proc.stdout + proc.stderr
    ddp = read_results(job_dirs(sweep)[0])
    assert ddp["status"] == "completed"
    assert ddp["epochs"] == single["epochs"] == 3 and ddp["global_steps"] == single["global_steps"]
    assert abs(ddp["test_acc"] - single["test_acc"]) < 0.08, (ddp["test_acc"], single["test_acc"])
