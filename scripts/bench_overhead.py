#!/usr/bin/env python
"""Benchmark 1, framework overhead: a dlhw-train epoch vs a hand-written PyTorch loop doing the same work.

Same composed config on every side: model, init, optimizer, batch size, train/val split, data in
memory. `dlhw` runs its own pipeline with the default callbacks (Lightning trainer, per-epoch
metrics, checkpoints, TensorBoard, progress bar and every dashboard); `minimal` the same with
`callbacks=minimal` (checkpoints and epoch timing only); the plain loop trains and validates with
nothing else. dlhw epochs are timed from one epoch's start to the next, so every callback's
epoch-end work counts. Two ratios per case: dlhw/plain (the framework) and dlhw/minimal (what
the dashboards cost). Data: synthetic CIFAR-10 and MNIST files in the official formats (values
do not change the work). CPU, 2 threads by default.

    python scripts/bench_overhead.py [--repeats 3] [--epochs 3] [--threads 2] [--tiny]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as dlhw-train does, before torch loads

CASES = {  # name -> (data files, overrides)
    "lenet_cifar10": ("cifar10", ["data=cifar10", "model=lenet"]),
    "lenet_mnist": ("mnist", ["data=mnist", "model=lenet"]),
    "lstm64_mnist_rows": ("mnist", ["data=mnist_rows", "model=rnn", "model.cell=lstm", "model.hidden=64"]),
}


def measure(bench, name: str, overrides: list[str], runs: Path, epochs: int, repeats: int):
    """Interleaved steady-state epoch times of dlhw (default and minimal callbacks) and the plain loop."""
    counter = iter(range(10**6))

    def dlhw_side(*extra: str):
        def side() -> float:
            cfg = bench.compose([*overrides, *extra], runs / f"{name}-{next(counter)}")
            return bench.steady(bench.dlhw_epoch_times(cfg, wall=True))

        return side

    def plain_side() -> float:
        cfg = bench.compose(overrides, runs / f"{name}-plain")
        return bench.steady(bench.plain_epoch_times(cfg, epochs))

    sides = {"dlhw": dlhw_side(), "minimal": dlhw_side("callbacks=minimal"), "plain": plain_side}
    return bench.interleaved(sides, repeats)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--epochs", type=int, default=3, help="per run; the first (warm-up) is dropped")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--cases", default=",".join(CASES), help="comma-separated subset of " + ", ".join(CASES))
    p.add_argument("--tiny", action="store_true", help="a smoke run on a few hundred samples")
    a = p.parse_args(argv)
    import torch

    from dlhw.bench import harness as bench

    torch.set_num_threads(a.threads)
    n_train, n_test = (600, 200) if a.tiny else (None, None)
    if a.tiny:
        a.repeats, a.epochs = 1, 2
    print(bench.machine())
    work = Path(tempfile.mkdtemp(prefix="dlhw-bench-overhead-"))
    roots = {
        "cifar10": bench.write_cifar10(work / "data", *(x for x in (n_train, n_test) if x)),
        "mnist": bench.write_mnist(work / "data", *(x for x in (n_train, n_test) if x)),
    }
    ratios, dash_ratios, lines = [], [], []
    for name in a.cases.split(","):
        data, overrides = CASES[name]
        common = [*overrides, f"data.root={roots[data]}", f"trainer.max_epochs={a.epochs}",
                  f"threads={a.threads}"]
        t = measure(bench, name, common, work / "runs", a.epochs, a.repeats)
        lines.append(bench.ratio_line(name, "dlhw", t["dlhw"], "plain", t["plain"], "<= 1.10"))
        print(lines[-1], flush=True)
        lines.append(bench.ratio_line(f"{name} dashboards", "dlhw", t["dlhw"], "minimal", t["minimal"],
                                      "<= 1.05"))
        print(lines[-1], flush=True)
        ratios.append(statistics.median(t["dlhw"]) / statistics.median(t["plain"]))
        dash_ratios.append(statistics.median(t["dlhw"]) / statistics.median(t["minimal"]))
    print("\n== summary ==", bench.machine(), *lines, sep="\n")
    print(f"overhead: worst ratio {max(ratios):.3f} (target <= 1.10)")
    print(f"dashboards: worst ratio dlhw/minimal {max(dash_ratios):.3f} (target <= 1.05)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
