"""hydra/launcher=packed: runs of a sweep trained as one stacked model leave the same run
directories and numbers as the same runs alone; a diverging run stops alone; jobs that cannot
pack say why and train alone; an interrupted pack resumes."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from dlhw.results import read_results
from dlhw.sweep.packing import Job, plan_packs

# MLP with dropout and BatchNorm on the bundled digits: 41 steps an epoch, per-run lr and a step schedule.
RUN = ["model=mlp", "model.hidden=[32,16]", "model.dropout=0.3", "model.batch_norm=true",
       "optimizer=sgd", "scheduler=step", "scheduler.step_size=1",
       "trainer.max_epochs=2", "callbacks.progress_bar=null", "report=false", "threads=1"]
SWEEP = ["seed=0,1", "optimizer.lr=0.05,0.02", "scheduler.gamma=0.5,0.1"]  # per-run lr and schedule


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "HYDRA_FULL_ERROR": "0"}
    return subprocess.run([sys.executable, "-m", "dlhw.cli.train", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def sweeps(tmp_path_factory) -> tuple[Path, Path, str]:
    """The same 8-job sweep packed (two packs of 4 side by side, one process each) and with
    Hydra's own launcher (one job after another)."""
    root = tmp_path_factory.mktemp("packed")
    packed = cli("-m", *RUN, *SWEEP, "hydra/launcher=packed", "hydra.launcher.processes=2",
                 f"hydra.sweep.dir={root / 'packed'}", cwd=root)
    assert packed.returncode == 0, packed.stderr[-3000:]
    alone = cli("-m", *RUN, *SWEEP, f"hydra.sweep.dir={root / 'alone'}", cwd=root)
    assert alone.returncode == 0, alone.stderr[-3000:]
    return root / "packed", root / "alone", packed.stdout + packed.stderr


def _jobs(sweep: Path) -> list[Path]:
    return sorted(p for p in sweep.iterdir() if p.is_dir() and p.name[0].isdigit())


def _assert_same_runs(packed: Path, alone: Path, tolerance: float = 1e-4) -> None:
    """Every packed job ends where the same job alone ends: weights, loops, schedules, accuracies."""
    assert [p.name for p in _jobs(packed)] == [p.name for p in _jobs(alone)]
    for job in _jobs(packed):
        a = torch.load(job / "checkpoints" / "last.ckpt", weights_only=True)
        b = torch.load(alone / job.name / "checkpoints" / "last.ckpt", weights_only=True)
        assert a["state_dict"].keys() == b["state_dict"].keys()
        worst = max((a["state_dict"][k].double() - b["state_dict"][k].double()).abs().max().item()
                    for k in a["state_dict"])
        assert worst < tolerance, (job.name, worst)
        assert a["global_step"] == b["global_step"] > 20 and a["loops"] == b["loops"]
        assert a["lr_schedulers"] == b["lr_schedulers"]
        assert a["optimizer_states"][0]["param_groups"] == b["optimizer_states"][0]["param_groups"]
        ra, rb = read_results(job), read_results(alone / job.name)
        assert abs(ra["test_acc"] - rb["test_acc"]) <= 0.003 and ra["status"] == "completed"
        assert ra["best_val_acc"] == pytest.approx(rb["best_val_acc"], abs=0.003)


def test_packed_runs_match_the_runs_alone(sweeps) -> None:
    packed, alone, log = sweeps
    assert "The 8 runs of this pack train as 2 packs side by side" in log
    assert log.count("Packed 4 runs into one stacked model") == 2
    _assert_same_runs(packed, alone)  # 82 steps: dropout, BatchNorm, per-run lr, schedule


@pytest.mark.parametrize("model", [
    ["model=rnn", "data=digits_rows", "model.hidden=16", "model.fc_width=16"],  # fused LSTM kernel per run
    ["model=cnn"],  # convolutions per run
])
def test_recurrent_and_convolutional_packs_on_two_threads_match_alone(model, tmp_path: Path) -> None:
    """On a CPU each run of a pack computes by itself on one intra-op thread, the runs dealt to
    two threads: its numbers are those of the run alone on one thread (threads=1)."""
    run = [*model, "data.batch_size=32", "optimizer=sgd", "optimizer.lr=0.05,0.02", "seed=0,1", "trainer.max_epochs=1",
           "callbacks.progress_bar=null", "report=false"]
    packed = cli("-m", *run, "threads=2", "hydra/launcher=packed", "hydra.launcher.processes=1",
                 f"hydra.sweep.dir={tmp_path / 'packed'}", cwd=tmp_path)
    assert packed.returncode == 0 and "Packed 4 runs" in packed.stderr + packed.stdout, packed.stderr[-3000:]
    alone = cli("-m", *run, "threads=1", f"hydra.sweep.dir={tmp_path / 'alone'}", cwd=tmp_path)
    assert alone.returncode == 0, alone.stderr[-3000:]
    _assert_same_runs(tmp_path / "packed", tmp_path / "alone", tolerance=1e-6)


def test_every_packed_job_directory_is_a_whole_run(sweeps, tmp_path: Path) -> None:
    packed, _, _ = sweeps
    jobs = _jobs(packed)
    halves = {job.name: [j.name for j in (jobs[:4] if int(job.name.split("_")[0]) < 4 else jobs[4:])] for job in jobs}
    for job in jobs:
        for name in (".hydra/config.yaml", ".hydra/hydra.yaml", ".hydra/overrides.yaml",
                     "config.yaml", "train.log", "results.json", "checkpoints/last.ckpt"):
            assert (job / name).is_file(), (job.name, name)
        assert list((job / "checkpoints").glob("best-epoch*.ckpt"))
        assert list(job.glob("events.out.tfevents.*"))
        res = read_results(job)
        assert sorted(res["packed_with"]) == sorted(n for n in halves[job.name] if n != job.name)
        log = (job / "train.log").read_text()
        assert "Test accuracy" in log and "train as 2 packs side by side" in log  # the launcher's line too
        assert f"Sweep {packed}" not in log  # the launcher's process has let go of the job's log
    # dlhw-eval on a packed run's directory tests its best checkpoint as for any run
    job = _jobs(packed)[0]
    proc = subprocess.run([sys.executable, "-m", "dlhw.cli.evaluate", str(job)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    evaluated = json.loads((job / "eval.json").read_text())
    assert evaluated["test_acc"] == pytest.approx(read_results(job)["test_acc"], abs=1e-6)
    # resume=RUN_DIR continues a packed run alone from its ordinary last.ckpt
    copy = tmp_path / job.name
    shutil.copytree(job, copy)
    proc = cli(f"resume={copy}", "trainer.max_epochs=3", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    res = read_results(copy)
    assert res["status"] == "completed" and res["epochs"] == 3 and res["resumed_from"].endswith("last.ckpt")


def test_per_run_dropout_rates_pack_and_a_rate_of_zero_trains_apart(tmp_path: Path) -> None:
    args = [*RUN, "model.dropout=0.0,0.2,0.5", "seed=3", "optimizer.lr=0.05", "trainer.max_epochs=1",
            "trainer.limit_train_batches=10"]
    packed = cli("-m", *args, "hydra/launcher=packed", "hydra.launcher.processes=1",
                 f"hydra.sweep.dir={tmp_path / 'p'}", cwd=tmp_path)
    assert packed.returncode == 0, packed.stderr[-3000:]
    assert "Packed 2 runs" in packed.stdout + packed.stderr
    assert "trains alone: it differs from the other jobs in another model shape" in packed.stdout + packed.stderr
    alone = cli("-m", *args, f"hydra.sweep.dir={tmp_path / 'a'}", cwd=tmp_path)
    assert alone.returncode == 0, alone.stderr[-3000:]
    for job in _jobs(tmp_path / "p"):
        a = torch.load(job / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]
        b = torch.load(tmp_path / "a" / job.name / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]
        assert max((a[k].double() - b[k].double()).abs().max().item() for k in a) < 1e-4, job.name


def test_a_diverging_run_stops_alone_while_the_others_finish(tmp_path: Path) -> None:
    proc = cli("-m", *RUN, "model.dropout=0.0", "optimizer.lr=0.05,1e12", "hydra/launcher=packed",
               f"hydra.sweep.dir={tmp_path / 's'}", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    jobs = _jobs(tmp_path / "s")
    good, bad = read_results(jobs[0]), read_results(jobs[1])
    assert good["status"] == "completed" and good["epochs"] == 2 and good["test_acc"] > 0.5
    assert bad["status"] == "diverged" and "nan/inf" in bad["reason"]


def test_jobs_that_cannot_pack_train_alone_and_say_why(tmp_path: Path) -> None:
    proc = cli("-m", *RUN, "trainer.max_epochs=1", "model.impl=torch,scratch", "data.batch_size=64",
               "hydra/launcher=packed", f"hydra.sweep.dir={tmp_path / 's'}", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "trains alone: model.impl=scratch" in proc.stdout + proc.stderr
    assert [read_results(j)["status"] for j in _jobs(tmp_path / "s")] == ["completed", "completed"]


def test_a_pack_forks_after_jobs_that_trained_on_two_threads_in_the_launchers_process(tmp_path: Path) -> None:
    """The jobs that cannot pack train first, in the launcher's process, on every core; the pack
    forked after them runs one thread a process (OpenMP would hang in a child asking for more)."""
    args = [a for a in RUN if a != "threads=1"] + [
        "trainer.max_epochs=1", "model.impl=scratch,torch", "seed=0,1", "data.batch_size=64"]
    proc = cli("-m", *args, "hydra/launcher=packed", "hydra.launcher.processes=2",
               f"hydra.sweep.dir={tmp_path / 's'}", cwd=tmp_path)
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert log.count("trains alone: model.impl=scratch") == 2 and "train as 2 packs side by side" in log
    results = [read_results(j) for j in _jobs(tmp_path / "s")]
    assert [r["status"] for r in results] == ["completed"] * 4
    assert [r.get("threads") for r in results if r.get("packed_with") is not None] == [1, 1]


def test_the_launcher_takes_each_job_config_the_sweeper_composed_to_validate_it() -> None:
    from omegaconf import OmegaConf

    from dlhw.sweep.job_configs import job_config, keep_validated_configs

    class Loader:
        calls = 0

        def load_sweep_config(self, master_config, sweep_overrides):
            self.calls += 1
            return OmegaConf.create({"overrides": list(sweep_overrides)})

    loader, master = Loader(), OmegaConf.create({})
    keep_validated_configs(loader)
    keep_validated_configs(loader)  # once per loader
    validated = loader.load_sweep_config(master, ["seed=1"])  # Hydra's validation of the batch
    taken = job_config(loader, master, ["seed=1"])
    assert loader.calls == 1 and taken == validated and taken is not validated  # a copy
    assert job_config(loader, master, ["seed=1"]) == validated and loader.calls == 2  # handed out once
    assert job_config(loader, master, ["seed=2"]).overrides == ["seed=2"] and loader.calls == 3
    assert loader._dlhw_kept == {}  # the launcher's own compositions are not kept


def test_a_forked_helper_composes_the_jobs_and_leaves_failures_to_the_caller() -> None:
    from omegaconf import OmegaConf

    from dlhw.sweep.job_configs import ComposeAhead

    def compose(master, overrides):
        if "bad" in overrides:
            raise ValueError("no such key")
        return OmegaConf.merge(master, OmegaConf.from_dotlist(list(overrides)), {"pid": os.getpid()})

    master = OmegaConf.create({"seed": 0, "lr": 0.1})
    ahead = ComposeAhead.start(compose, master, fresh_only=False)
    assert ahead is not None
    try:
        job = ahead.compose_job(master, ["seed=3"])
        assert (job.seed, job.lr) == (3, 0.1) and job.pid not in (None, os.getpid())  # composed there
        assert ahead.compose_job(master, ["bad"]) is None  # the caller composes it and raises its own error
        assert ahead.compose_job(OmegaConf.create({}), ["seed=1"]) is None  # another master: not its job
        assert ahead.compose_job(master, ["seed=4"]).seed == 4  # still serving after a failure
    finally:
        ahead.close()
    assert ahead.compose_job(master, ["seed=5"]) is None
    with pytest.raises(ChildProcessError):
        os.waitpid(ahead.pid, os.WNOHANG)  # ended and reaped


def test_plan_names_the_key_that_splits_a_pack(make_cfg) -> None:
    jobs = [Job(i, str(i), make_cfg(overrides)) for i, overrides in enumerate(
        [["seed=0"], ["seed=1"], ["seed=2", "data.batch_size=64"], ["optimizer=sgd_scratch"],
         ["loss.impl=scratch"]])]
    plan = plan_packs(jobs)
    assert [[j.idx for j in p] for p in plan.packs] == [[0, 1]]
    reasons = dict((j.idx, why) for j, why in plan.alone)
    assert "another batch size (data.batch_size)" in reasons[2]
    assert "has no stacked form" in reasons[3]
    assert reasons[4] == "loss.impl=scratch: the hand-written Functions have no vmap rule"
    assert [[j.idx for j in p] for p in plan_packs(jobs[:2], pack_size=1).packs] == []


def test_an_interrupted_pack_resumes_where_it_stopped(tmp_path: Path) -> None:
    args = [*RUN, "trainer.max_epochs=30", "data.batch_size=16", "seed=0,1", "hydra/launcher=packed",
            "hydra.launcher.processes=2"]  # the signal reaches the runs through the launcher's process
    sweep = tmp_path / "s"
    env = {**os.environ}
    proc = subprocess.Popen([sys.executable, "-m", "dlhw.cli.train", "-m", *args, f"hydra.sweep.dir={sweep}"],
                            cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while time.time() < deadline and len(list(sweep.glob("*/checkpoints/last.ckpt"))) < 2:
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err[-3000:]
    assert "Traceback" not in err and "resume=" in err
    for job in _jobs(sweep):
        res = read_results(job)
        assert res["status"] == "interrupted", res
        assert (job / "checkpoints" / "last.ckpt").is_file()
    resumed = cli(f"resume={sweep}", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    for job in _jobs(sweep):
        res = read_results(job)
        assert res["status"] == "completed" and res["epochs"] == 30 and res["resumed_from"]


def test_sigterm_to_the_launcher_saves_every_runs_interrupted_checkpoint(tmp_path: Path) -> None:
    """SIGTERM (a cluster's stop) reaches the runs of both processes; stopped inside an epoch,
    each run saves checkpoints/interrupted.ckpt beside its last.ckpt."""
    args = [*RUN, "model.batch_norm=false", "trainer.max_epochs=3", "data.batch_size=1",
            "trainer.limit_val_batches=2", "seed=0,1",
            "hydra/launcher=packed", "hydra.launcher.processes=2"]
    sweep = tmp_path / "s"
    proc = subprocess.Popen([sys.executable, "-m", "dlhw.cli.train", "-m", *args, f"hydra.sweep.dir={sweep}"],
                            cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while time.time() < deadline and len(list(sweep.glob("*/checkpoints/last.ckpt"))) < 2:
        time.sleep(0.1)
    assert time.time() < deadline, "the first epoch did not end in 120 s"
    time.sleep(0.5)  # into the second epoch of 1,437 steps (about 2 s an epoch)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signal.SIGTERM, err[-3000:]
    assert err.count("interrupted by SIGTERM") == 1 and "Traceback" not in err
    for job in _jobs(sweep):
        res = read_results(job)
        assert res["status"] == "interrupted" and res["epoch"] == 1, res
        assert Path(res["interrupted_ckpt"]).is_file() and (job / "checkpoints" / "last.ckpt").is_file()
