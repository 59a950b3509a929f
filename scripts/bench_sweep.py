#!/usr/bin/env python
"""Benchmark 4, sweep throughput: one sweep one job after another, on joblib, and on Ray.

CPU mode (default): 16 LeNet jobs (the bundled digits, ``threads`` left at null) as real
``dlhw-train -m`` multiruns: one after another (each job every core), with
``hydra/launcher=joblib hydra.launcher.n_jobs=CORES`` and with ``hydra/launcher=ray_gpus`` (one
CPU a job). Wall time of the whole sweep, interleaved repeats, median; ratios against the
sequential sweep (target <= 1.0). Every parallel launcher pays the imports once per worker
process, so the jobs must train long enough (``--epochs``) for the comparison to be about training.

GPU mode (``--gpu``, on a machine with a CUDA device): the same sweep of LeNet CIFAR-10 jobs
(synthetic data in the official format) on Ray with ``trainer=gpu`` and jobs_per_gpu 1, 4 and 8
on one GPU; the throughput of K jobs per GPU against one job at a time (goal: >= 4x at K=8).

    python scripts/bench_sweep.py [--repeats 2] [--jobs 16] [--epochs 3] [--tiny] [--gpu]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def sweep(out: Path, jobs: int, epochs: int, launcher: list[str], extra: list[str]) -> tuple[float, list]:
    """Wall seconds of one multirun, and (threads, device, seconds inside the job) of each job."""
    cmd = [
        sys.executable, "-m", "dlhw.cli.train", "-m", f"seed={','.join(map(str, range(jobs)))}",
        f"trainer.max_epochs={epochs}", "logger=none", "callbacks.progress_bar=null", "report=false",
        f"hydra.sweep.dir={out}", *launcher, *extra,
    ]
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    start = time.perf_counter()
    done = subprocess.run(cmd, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        sys.exit(f"sweep failed ({' '.join(cmd)}):\n{done.stderr[-3000:]}")
    results = [json.loads(p.read_text()) for p in sorted(out.glob("*/results.json"))]
    if len(results) != jobs or any(r["status"] != "completed" for r in results):
        sys.exit(f"sweep in {out} did not complete {jobs} jobs: {results}")
    return wall, [(r.get("threads"), r.get("device"), r["wall_s"]) for r in results]


def measure(sides: dict[str, list[str]], a, extra: list[str], work: Path):
    """Interleaved wall times of each side, and every job's (threads, device, seconds) per side."""
    from dlhw.bench import harness as bench

    runs = iter(range(10**6))
    jobs: dict[str, list] = {name: [] for name in sides}

    def side(name: str):
        def run() -> float:
            wall, per_job = sweep(work / f"{name}-{next(runs)}", a.jobs, a.epochs, sides[name], extra)
            jobs[name] += per_job
            return wall

        return run

    return bench.interleaved({name: side(name) for name in sides}, a.repeats), jobs


def report(t: dict, jobs: dict, base: str, label: str, target: str) -> list[str]:
    from dlhw.bench import harness as bench

    print("threads per job: " + ", ".join(f"{k} {sorted({j[0] for j in v})}" for k, v in jobs.items()))
    print("devices: " + ", ".join(f"{k} {sorted({str(j[1]) for j in v})}" for k, v in jobs.items()))
    print("seconds inside each job (fit + test, no process start): median "
          + ", ".join(f"{k} {statistics.median(j[2] for j in v):.2f}" for k, v in jobs.items()))
    lines = [bench.ratio_line(label, name, t[name], base, t[base], target, unit="s wall")
             for name in t if name != base]
    print(*lines, sep="\n")
    return lines


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--jobs", type=int, default=16)
    p.add_argument("--epochs", type=int, default=3, help="long enough that training, not start-up, counts")
    p.add_argument("--gpu", action="store_true", help="jobs_per_gpu 1, 4, 8 on one GPU (needs CUDA)")
    p.add_argument("--tiny", action="store_true", help="2 jobs of 1 epoch on 300 samples")
    a = p.parse_args(argv)
    import torch

    from dlhw.bench import harness as bench
    from dlhw.sweep.threads import available_cores

    extra = []
    if a.tiny:
        a.repeats, a.jobs, a.epochs = 1, 2, 1
        extra = ["data.max_train_samples=300"]
    print(bench.machine())
    work = Path(tempfile.mkdtemp(prefix="dlhw-bench-sweep-"))
    if a.gpu:
        if not torch.cuda.is_available():
            print("no CUDA device: skipped")
            return 0
        root = bench.write_cifar10(work / "data", *((600, 200) if a.tiny else ()))
        extra += ["trainer=gpu", "data=cifar10", "model=lenet", f"data.root={root}"]
        sides = {f"k{k}": ["hydra/launcher=ray_gpus", f"hydra.launcher.jobs_per_gpu={k}",
                           "hydra.launcher.ray.init.num_gpus=1"] for k in (1, 4, 8)}
        t, jobs = measure(sides, a, extra, work)
        report(t, jobs, "k1", f"{a.jobs} LeNet CIFAR-10 jobs x {a.epochs} epochs, one GPU", ">= 4x at k8")
        for k in ("k4", "k8"):
            speedup = statistics.median(t["k1"]) / statistics.median(t[k])
            print(f"sweep on one GPU: jobs_per_gpu={k[1:]} throughput {speedup:.2f}x one job at a time"
                  + (" (goal >= 4x)" if k == "k8" else ""))
        return 0
    cores = available_cores()
    sides = {"sequential": [], "joblib": ["hydra/launcher=joblib", f"hydra.launcher.n_jobs={cores}"],
             "ray": ["hydra/launcher=ray_gpus"]}
    t, jobs = measure(sides, a, extra, work)
    report(t, jobs, "sequential", f"{a.jobs} jobs x {a.epochs} epochs, {cores} cores", "<= 1.0")
    for name in ("joblib", "ray"):
        ratio = statistics.median(t[name]) / statistics.median(t["sequential"])
        print(f"sweep: {name}/sequential wall-time ratio {ratio:.3f} (target <= 1.0)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
