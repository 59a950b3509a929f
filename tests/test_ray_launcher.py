"""hydra/launcher=ray_gpus: job shares, GPU slots handed out by Ray, memory caps, a sweep on Ray.

The share arithmetic and the memory checks run on fakes; the slot test runs real Ray tasks on a
local cluster that declares two (fake) GPUs; the sweep runs dlhw-train on a local Ray of 2 CPUs.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import pytest
import torch

from dlhw.data.loader import check_budget, check_fits, data_bytes
from dlhw.errors import UserError
from dlhw.sweep.devices import (
    CONTEXT_RESERVE_BYTES,
    Share,
    cap_gpu_memory,
    memory_fraction,
    out_of_share,
    task_resources,
)

GIB = 2**30


# ----------------------------------------------------------------------------- shares (no Ray)
@pytest.mark.parametrize("cluster, k, expected", [
    ({"CPU": 16, "GPU": 4}, 4, {"num_gpus": 0.25, "num_cpus": 1.0}),
    ({"CPU": 16, "GPU": 8}, 8, {"num_gpus": 0.125, "num_cpus": 0.25}),
    ({"CPU": 32, "GPU": 2}, 1, {"num_gpus": 1.0, "num_cpus": 16.0}),
    ({"CPU": 10, "GPU": 1}, 3, {"num_gpus": 1 / 3, "num_cpus": 3.3333}),
])
def test_a_gpu_job_asks_for_one_kth_of_a_gpu_and_an_even_cpu_share(cluster, k, expected) -> None:
    got = task_resources(cluster, gpus_per_job=1, jobs_per_gpu=k, cpus_per_job=None)
    assert got == pytest.approx(expected)
    slots = cluster["GPU"] / got["num_gpus"]
    assert slots == pytest.approx(cluster["GPU"] * k)  # K jobs per GPU, never more
    assert slots * got["num_cpus"] <= cluster["CPU"] + 1e-9  # the CPUs are not oversubscribed


def test_a_cpu_job_takes_one_cpu_and_ignores_jobs_per_gpu() -> None:
    assert task_resources({"CPU": 2}, 0, 8, None) == {"num_gpus": 0, "num_cpus": 1.0}
    assert task_resources({"CPU": 8, "GPU": 2}, 0, 4, 2) == {"num_gpus": 0, "num_cpus": 2.0}
    assert task_resources({"CPU": 8, "GPU": 2}, 1, 4, 1.5)["num_cpus"] == 1.5


@pytest.mark.parametrize("kwargs, match", [
    ({"jobs_per_gpu": 0}, r"hydra\.launcher\.jobs_per_gpu=0"),
    ({"jobs_per_gpu": "4"}, r"hydra\.launcher\.jobs_per_gpu='4'"),
    ({"jobs_per_gpu": True}, r"hydra\.launcher\.jobs_per_gpu=True"),
    ({"cpus_per_job": -1}, r"hydra\.launcher\.cpus_per_job=-1"),
    ({"cluster": {"CPU": 2}}, r"cluster has 0; use trainer=cpu"),
    ({"gpus_per_job": 2, "jobs_per_gpu": 2}, r"each job uses 2 GPUs .*jobs_per_gpu=1"),
])
def test_impossible_shares_are_user_errors_naming_the_key(kwargs, match) -> None:
    args = {"cluster": {"CPU": 8, "GPU": 2}, "gpus_per_job": 1, "jobs_per_gpu": 2, "cpus_per_job": None}
    with pytest.raises(UserError, match=match):
        task_resources(**{**args, **kwargs})


def test_threads_of_a_share_are_its_whole_cpus_at_least_one() -> None:
    assert [Share(c, 0).threads for c in (0.25, 1.0, 2.9999999, 3.0)] == [1, 1, 3, 3]


# ----------------------------------------------------------------------------- memory (fake CUDA)
def test_memory_fraction_is_the_share_less_the_cuda_context() -> None:
    assert memory_fraction(0.25, 80 * GIB) == pytest.approx(0.25 - CONTEXT_RESERVE_BYTES / (80 * GIB), abs=1e-4)
    with pytest.raises(UserError, match="smaller hydra.launcher.jobs_per_gpu"):
        memory_fraction(1 / 64, 16 * GIB)  # 256 MiB of share, 512 MiB of context


class FakeCuda:
    """The torch.cuda calls the memory cap makes, on a pretend 16 GiB GPU."""

    def __init__(self, reserved: int = 0):
        self.fraction, self.reserved = 1.0, reserved

    def install(self, monkeypatch) -> FakeCuda:
        props = type("Props", (), {"total_memory": 16 * GIB})()
        monkeypatch.setattr(torch.cuda, "get_device_properties", lambda device: props)
        monkeypatch.setattr(torch.cuda, "set_per_process_memory_fraction",
                            lambda f, device: setattr(self, "fraction", f))
        monkeypatch.setattr(torch.cuda, "get_per_process_memory_fraction", lambda device: self.fraction)
        monkeypatch.setattr(torch.cuda, "memory_reserved", lambda device: self.reserved)
        return self


def test_a_job_sharing_a_gpu_caps_its_memory_and_the_data_counts_against_it(monkeypatch) -> None:
    cuda = FakeCuda(reserved=200 * 2**20).install(monkeypatch)
    gpu = torch.device("cuda", 0)
    cap = cap_gpu_memory(Share(cpus=2, gpu=0.25), gpu)
    assert cuda.fraction == pytest.approx(0.25 - CONTEXT_RESERVE_BYTES / (16 * GIB), abs=1e-4)
    assert cap == int(cuda.fraction * 16 * GIB)  # ~3.5 GiB
    check_fits(3 * GIB, gpu)  # 3 GiB of data + 200 MiB in use fit under the cap
    with pytest.raises(UserError, match=r"needs 3584 MiB on cuda:0, but this job may allocate 3583 MiB"):
        check_fits(3.5 * GIB, gpu)
    check_fits(10 * GIB, torch.device("cpu"))  # nothing to check off a GPU


def test_no_cap_without_a_shared_gpu(monkeypatch) -> None:
    cuda = FakeCuda().install(monkeypatch)
    assert cap_gpu_memory(None, torch.device("cuda", 0)) is None  # not a Ray task
    assert cap_gpu_memory(Share(cpus=4, gpu=1.0), torch.device("cuda", 0)) is None  # a whole GPU
    assert cap_gpu_memory(Share(cpus=1, gpu=0.0), torch.device("cpu")) is None
    assert cuda.fraction == 1.0


def test_budget_and_out_of_memory_messages_name_the_fix() -> None:
    check_budget(needed=100, cap=1000, in_use=900, device="cuda:0")
    with pytest.raises(UserError, match=r"data\.loader=torch"):
        check_budget(needed=101, cap=1000, in_use=900, device="cuda:0")
    oom = RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")
    error = out_of_share(oom, cap_bytes=4 * GIB, data_bytes=GIB)
    assert isinstance(error, UserError)
    assert re.search(r"4096 MiB, 1024 MiB of it the data set .*jobs_per_gpu", str(error))
    assert out_of_share(oom, cap_bytes=None, data_bytes=GIB) is None  # no cap: not ours to explain
    assert out_of_share(ValueError("bad value"), cap_bytes=4 * GIB, data_bytes=0) is None


def test_data_bytes_counts_what_the_tensor_loader_keeps_on_the_device() -> None:
    splits = type("S", (), {"train_x": torch.zeros(10, 3, 4, 4, dtype=torch.uint8),
                            "train_y": torch.zeros(10, dtype=torch.long), "test_x": torch.zeros(5, 3, 4, 4),
                            "test_y": torch.zeros(5, dtype=torch.long), "val_x": None, "val_y": None})()
    dm = type("DM", (), {"splits": splits, "loader": "tensor"})()
    assert data_bytes(dm) == 10 * 48 + 10 * 8 + 5 * 48 * 4 + 5 * 8
    dm.loader = "torch"
    assert data_bytes(dm) == 0


# ----------------------------------------------------------------------------- a sweep on Ray
try:
    import ray
except ImportError:  # the ray extra is not installed
    ray = None
needs_ray = pytest.mark.skipif(ray is None, reason="the ray extra is not installed (pip install 'dlhw[ray]')")
TINY = ["threads=null", "trainer.max_epochs=1", "data.max_train_samples=200", "callbacks.progress_bar=null",
        "logger=none", "report=false"]
STAMP = re.compile(r"^\[(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3})\]")


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env.pop("HYDRA_FULL_ERROR", None)
    return subprocess.run([sys.executable, "-m", "dlhw.cli.train", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=500)


def log_span(job_dir: Path) -> tuple[datetime, datetime]:
    stamps = [STAMP.match(line) for line in (job_dir / "train.log").read_text().splitlines()]
    times = [datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S,%f") for m in stamps if m]
    return times[0], times[-1]


def most_at_once(spans: list[tuple[float, float]]) -> int:
    """The largest number of the (start, end) intervals that overlap at one instant."""
    edges = sorted([(s, 1) for s, _ in spans] + [(e, -1) for _, e in spans], key=lambda x: (x[0], x[1]))
    now = best = 0
    for _, step in edges:
        now += step
        best = max(best, now)
    return best


@needs_ray
def test_sweep_on_ray_runs_two_at_a_time_survives_a_failing_job_and_resumes(tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    first = cli("-m", "hydra/launcher=ray_gpus", "hydra.launcher.ray.init.num_cpus=2", *TINY,
                "seed=0,1,2,3,-1", f"hydra.sweep.dir={sweep}", cwd=tmp_path)
    assert first.returncode == 0, first.stderr[-3000:]
    assert "Ray: 5 jobs, each 1.0 CPU and 0 GPU, on a cluster of 2 CPU" in first.stderr + first.stdout
    jobs = sorted(p for p in sweep.iterdir() if (p / "results.json").is_file())
    results = {p.name: json.loads((p / "results.json").read_text()) for p in jobs}
    assert len(results) == 5  # every job wrote its results.json
    good = {k: r for k, r in results.items() if r["seed"] != -1}
    assert [r["status"] for r in good.values()] == ["completed"] * 4
    assert results["4_seed=-1"]["status"] == "failed" and "seed=-1" in results["4_seed=-1"]["error"]
    for r in good.values():  # where each job ran, and with its share's threads
        assert (r["launcher"], r["device"], r["threads"], r["ray_cpus"]) == ("RayGpusLauncher", "cpu", 1, 1.0)
    spans = [tuple(t.timestamp() for t in log_span(sweep / name)) for name in good]
    assert most_at_once(spans) <= 2  # two CPUs, one CPU a job
    workers = set(re.findall(r"\(_run_job pid=(\d+)\)", first.stdout + first.stderr))
    assert 1 <= len(workers) <= 2
    written = {name: (sweep / name / "results.json").stat().st_mtime for name in good}

    again = cli("-m", f"resume={sweep}", cwd=tmp_path)
    assert again.returncode == 0, again.stderr[-3000:]
    for name in good:  # each job's own log says it was skipped (Ray's console forwarding may drop lines)
        assert "already completed (status in results.json): skipped" in (sweep / name / "train.log").read_text()
    assert {name: (sweep / name / "results.json").stat().st_mtime for name in good} == written
    assert json.loads((sweep / "4_seed=-1" / "results.json").read_text())["status"] == "failed"  # re-run


@pytest.fixture(scope="module")
def two_fake_gpus():
    """A local Ray of 4 CPUs that declares 2 GPUs (Ray hands out ids; no device is touched).

    ray.init installs its own SIGINT/SIGTERM handlers in this process; they are put back afterwards
    so that later tests see the interpreter's handlers.
    """
    handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    ray.init(num_cpus=4, num_gpus=2, include_dashboard=False, object_store_memory=78_643_200,
             log_to_driver=False)
    yield ray.cluster_resources()
    ray.shutdown()
    for sig, handler in handlers.items():
        signal.signal(sig, handler)


@needs_ray
def test_ray_puts_at_most_k_jobs_on_each_gpu_and_sets_their_visible_device(two_fake_gpus) -> None:
    options = task_resources(two_fake_gpus, gpus_per_job=1, jobs_per_gpu=2, cpus_per_job=None)
    assert options == {"num_gpus": 0.5, "num_cpus": 1.0}  # 4 slots: 2 GPUs x 2, one CPU each

    @ray.remote
    def job() -> tuple:
        start = time.time()
        time.sleep(1.0)
        return ray.get_gpu_ids(), os.environ.get("CUDA_VISIBLE_DEVICES"), start, time.time()

    out = ray.get([job.options(**options).remote() for _ in range(8)])
    by_gpu: dict[str, list] = {}
    for ids, visible, start, end in out:
        assert len(ids) == 1 and visible == str(ids[0])  # one GPU each, and it is the visible one
        by_gpu.setdefault(visible, []).append((start, end))
    assert sorted(by_gpu) == ["0", "1"]
    assert all(most_at_once(spans) <= 2 for spans in by_gpu.values())  # never more than K on a slot


@needs_ray
def test_a_job_whose_worker_dies_is_a_failed_return_and_the_others_finish(two_fake_gpus) -> None:
    from hydra.core.utils import JobReturn, JobStatus

    from dlhw.sweep.ray_launcher import collect

    @ray.remote(max_retries=0)
    def job(crash: bool):
        if crash:
            os._exit(1)
        return "done"

    refs = [job.remote(c) for c in (False, True, False)]
    placeholders = [JobReturn(task_name=f"#{i}", status=JobStatus.FAILED) for i in range(3)]
    got = collect(ray, refs, placeholders)
    assert got[0] == "done" and got[2] == "done"
    assert got[1] is placeholders[1] and isinstance(got[1]._return_value, ray.exceptions.RayError)
