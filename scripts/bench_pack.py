#!/usr/bin/env python
"""Benchmark: 16-run studies trained packed (``hydra/launcher=packed``) against joblib and against
one run after another.

Three studies of 16 runs (4 seeds x 4 learning rates): LeNet on CIFAR-10, the MLP of mlp_mnist
and LSTM-64 reading MNIST rows. Each is a real ``dlhw-train -m`` multirun, on synthetic data in
the official file formats (or the real data with ``--data DATA``), in interleaved repeats; the
wall time of the whole sweep is printed for each launcher, with the ratios. Targets: on a CPU,
packed <= 0.7 of joblib (n_jobs=2) for the MLP and LSTM studies; on a GPU (``--gpu``), 16 LeNets
packed >= 8x the throughput of one after another.

    python scripts/bench_pack.py [--studies lenet,mlp,lstm] [--repeats 2] [--epochs 1]
                                 [--train-samples 6000] [--gpu] [--json OUT.json]
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

STUDIES = {  # name -> (data files, overrides, learning rates)
    "lenet": ("cifar10", ["experiment=lenet_cifar10"], "0.004,0.002,0.001,0.0005"),
    "mlp": ("mnist", ["experiment=mlp_mnist"], "0.1,0.05,0.02,0.01"),
    "lstm": ("mnist", ["experiment=rnn_rows_mnist"], "0.004,0.002,0.001,0.0005"),
}
LAUNCHERS = {
    "packed": ["hydra/launcher=packed"],
    "joblib": ["hydra/launcher=joblib", "hydra.launcher.n_jobs=2"],
    "sequential": [],
}


def sweep(out: Path, study: str, launcher: str, root: Path, a) -> tuple[float, list[dict]]:
    """Wall seconds of one multirun and the results.json of its jobs."""
    _, overrides, lrs = STUDIES[study]
    data = [f"data.root={root}"] if root else []
    if study == "lenet" and a.data:
        data = ["data=cifar10_jpeg", f"data.root={root}", f"data.archive={Path(a.data) / 'cifar10-jpeg.tar.gz'}"]
    cmd = [
        sys.executable, "-m", "dlhw.cli.train", "-m", *overrides, *data,
        "seed=0,1,2,3", f"optimizer.lr={lrs}", f"trainer.max_epochs={a.epochs}",
        "callbacks=minimal", "report=false",
        f"trainer={'gpu' if a.gpu else 'cpu'}", f"hydra.sweep.dir={out}", *LAUNCHERS[launcher],
    ]
    if a.train_samples:
        cmd.append(f"data.max_train_samples={a.train_samples}")
    start = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        sys.exit(f"{study}/{launcher} failed (exit {done.returncode}):\n{done.stderr[-3000:]}")
    results = [json.loads(p.read_text()) for p in sorted(out.glob("*/results.json"))]
    bad = [r for r in results if r.get("status") != "completed"]
    if len(results) != 16 or bad:
        sys.exit(f"{study}/{launcher}: {len(results)} results, {len(bad)} not completed:\n{done.stderr[-3000:]}")
    return wall, results


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    p.add_argument("--studies", default="lenet,mlp,lstm")
    p.add_argument("--launchers", default=None, help="default: packed,joblib,sequential (GPU: packed,sequential)")
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--train-samples", type=int, default=None, help="data.max_train_samples of every run")
    p.add_argument("--data", default=None, help="the real data folder DATA (else synthetic data)")
    p.add_argument("--gpu", action="store_true", help="trainer=gpu (fails without a CUDA device)")
    p.add_argument("--json", default=None, help="also write the figures to this file")
    a = p.parse_args(argv)
    import torch

    from dlhw.bench import harness as bench

    if a.gpu and not torch.cuda.is_available():
        sys.exit("bench_pack --gpu: no CUDA device")
    launchers = (a.launchers or ("packed,sequential" if a.gpu else "packed,joblib,sequential")).split(",")
    work = Path(tempfile.mkdtemp(prefix="dlhw-bench-pack-"))
    roots = {"cifar10": Path(a.data) if a.data else bench.write_cifar10(work / "data", 50_000, 10_000),
             "mnist": Path(a.data) if a.data else bench.write_mnist(work / "data", 60_000, 10_000)}
    print(bench.machine(), flush=True)
    figures: dict[str, dict] = {}
    for study in a.studies.split(","):
        walls: dict[str, list[float]] = {name: [] for name in launchers}
        accs: dict[str, list[float]] = {}
        for r in range(a.repeats):
            for name in launchers if r % 2 == 0 else reversed(launchers):
                out = work / "runs" / f"{study}-{name}-{r}"
                wall, results = sweep(out, study, name, roots[STUDIES[study][0]], a)
                walls[name].append(wall)
                accs[name] = [res["test_acc"] for res in results]
                load = os.getloadavg()[0]
                print(f"{study} {name:<10} repeat {r}: {wall:7.1f} s (load {load:.2f})", flush=True)
        med = {name: statistics.median(v) for name, v in walls.items()}
        line = {"wall_s": med, "all_s": walls, "load_end": os.getloadavg()[0]}
        for other in launchers[1:]:
            line[f"packed/{other}"] = med["packed"] / med[other]
            print(f"== {study}: packed/{other} wall ratio {med['packed'] / med[other]:.3f} "
                  f"({med['packed']:.1f} s vs {med[other]:.1f} s, median of {a.repeats}); "
                  f"throughput {med[other] / med['packed']:.2f}x", flush=True)
        for other in launchers[1:]:  # joblib's workers run one thread each, as every run of a CPU pack
            gap = max(abs(x - y) for x, y in zip(accs["packed"], accs[other], strict=True))
            line[f"max_test_acc_gap_pp_{other}"] = 100 * gap
            print(f"== {study}: largest test-accuracy gap packed vs {other} over 16 runs: "
                  f"{100 * gap:.2f} pp", flush=True)
        figures[study] = line
    if a.json:
        Path(a.json).write_text(json.dumps({"machine": bench.machine(), "args": vars(a), "studies": figures}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
