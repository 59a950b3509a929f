#!/usr/bin/env python
"""Benchmark 4, sweep throughput: 4 short jobs with the joblib launcher (2 at a time) vs one after another.

Both are real ``dlhw-train -m`` multiruns (LeNet on the bundled digits, ``threads`` left at null):
one after another, each job uses every core; with ``hydra/launcher=joblib hydra.launcher.n_jobs=2``
each job gets cores // 2 threads (dlhw.run.threads), so the jobs do not oversubscribe the cores.
Wall time of the whole sweep, interleaved repeats, median; target ratio parallel/sequential <= 1.0.
The sequential launcher imports torch and Lightning once, joblib once per worker process, so
jobs must train long enough (``--epochs``) for the comparison to be about training.

    python scripts/bench_sweep.py [--repeats 3] [--jobs 4] [--n-jobs 2] [--epochs 3] [--tiny]
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


def sweep(out: Path, jobs: int, epochs: int, n_jobs: int | None, extra: list[str]) -> tuple[float, list]:
    """Wall seconds of one multirun, and (threads, seconds inside the job) of each job."""
    cmd = [
        sys.executable, "-m", "dlhw.cli.train", "-m", f"seed={','.join(map(str, range(jobs)))}",
        f"trainer.max_epochs={epochs}", "logger=none", "callbacks.progress_bar=null",
        f"hydra.sweep.dir={out}", *extra,
    ]
    if n_jobs:
        cmd += ["hydra/launcher=joblib", f"hydra.launcher.n_jobs={n_jobs}"]
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    start = time.perf_counter()
    done = subprocess.run(cmd, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        sys.exit(f"sweep failed ({' '.join(cmd)}):\n{done.stderr[-3000:]}")
    results = [json.loads(p.read_text()) for p in sorted(out.glob("*/results.json"))]
    if len(results) != jobs or any(r["status"] != "completed" for r in results):
        sys.exit(f"sweep in {out} did not complete {jobs} jobs: {results}")
    return wall, [(r.get("threads"), r["wall_s"]) for r in results]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--jobs", type=int, default=4)
    p.add_argument("--n-jobs", type=int, default=2, help="joblib jobs running at once")
    p.add_argument("--epochs", type=int, default=10, help="long enough that training, not start-up, counts")
    p.add_argument("--tiny", action="store_true", help="2 jobs of 1 epoch on 300 samples")
    a = p.parse_args(argv)
    from dlhw.bench import harness as bench

    extra = []
    if a.tiny:
        a.repeats, a.jobs, a.epochs = 1, 2, 1
        extra = ["data.max_train_samples=300"]
    print(bench.machine())
    work = Path(tempfile.mkdtemp(prefix="dlhw-bench-sweep-"))
    runs = iter(range(10**6))
    jobs: dict[str, list] = {"joblib": [], "sequential": []}

    def side(name: str, n_jobs: int | None):
        def run() -> float:
            wall, per_job = sweep(work / f"{name}-{next(runs)}", a.jobs, a.epochs, n_jobs, extra)
            jobs[name] += per_job
            return wall

        return run

    t = bench.interleaved({"joblib": side("joblib", a.n_jobs), "sequential": side("sequential", None)},
                          a.repeats)
    line = bench.ratio_line(f"{a.jobs} jobs x {a.epochs} epochs, n_jobs={a.n_jobs}", "joblib",
                            t["joblib"], "sequential", t["sequential"], "<= 1.0", unit="s wall")
    threads = {k: sorted({t for t, _ in v}) for k, v in jobs.items()}
    print(f"threads per job: joblib {threads['joblib']}, sequential {threads['sequential']}")
    print("seconds inside each job (fit + test, no process start): median "
          + ", ".join(f"{k} {statistics.median(w for _, w in v):.2f}" for k, v in jobs.items()))
    print(line)
    ratio = statistics.median(t["joblib"]) / statistics.median(t["sequential"])
    print(f"sweep: parallel/sequential wall-time ratio {ratio:.3f} (target <= 1.0)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
