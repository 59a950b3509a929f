#!/usr/bin/env python
"""Benchmark 5, one GPU: dlhw-train epoch times of LeNet, VGG11 (bf16) and LSTM-64 rows vs their goals.

Goals: LeNet CIFAR-10 < 0.5 s/epoch, VGG11 CIFAR-10 (bf16-mixed, channels_last) < 5 s/epoch,
LSTM-64 MNIST rows < 1 s/epoch. Each case runs dlhw's own pipeline (trainer=gpu: cudnn benchmark,
tensor loader with the data on the GPU) on synthetic data in the official file formats; the
first epoch (cudnn autotuning, allocator warm-up) is dropped and the median of the rest printed.
Without a CUDA device it prints "no CUDA device: skipped".

    python scripts/bench_gpu.py [--epochs 4] [--cases lenet,vgg11,lstm64] [--tiny]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as dlhw-train does, before torch loads

CASES = {  # name -> (data files, overrides, goal in s/epoch)
    "lenet": ("cifar10", ["data=cifar10", "model=lenet"], 0.5),  # batch 128 (the study uses 32)
    "vgg11": ("cifar10", ["experiment=vgg11_cifar10", "trainer.precision=bf16-mixed",
                          "channels_last=true"], 5.0),
    "lstm64": ("mnist", ["experiment=rnn_rows_mnist"], 1.0),
}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    p.add_argument("--epochs", type=int, default=4, help="per case; the first (warm-up) is dropped")
    p.add_argument("--cases", default=",".join(CASES))
    p.add_argument("--batch-size", type=int, default=None, help="override each case's batch size")
    p.add_argument("--tiny", action="store_true", help="a few hundred samples, 2 epochs")
    p.add_argument("--cpu", action="store_true", help="same cases on the CPU (checks the script)")
    a = p.parse_args(argv)
    import torch

    if not torch.cuda.is_available() and not a.cpu:
        print("no CUDA device: skipped")
        return 0
    from dlhw.bench import harness as bench

    sizes = (600, 200) if a.tiny else (50_000, 10_000)
    epochs = 2 if a.tiny else a.epochs
    print(bench.machine())
    work = Path(tempfile.mkdtemp(prefix="dlhw-bench-gpu-"))
    roots = {"cifar10": bench.write_cifar10(work / "data", *sizes),
             "mnist": bench.write_mnist(work / "data", sizes[0] + 10_000 * (not a.tiny), sizes[1])}
    lines = []
    for name in a.cases.split(","):
        data, overrides, goal = CASES[name]
        extra = [f"data.batch_size={a.batch_size}"] if a.batch_size else []
        trainer = "trainer=cpu" if a.cpu else "trainer=gpu"
        cfg = bench.compose([*overrides, trainer, f"data.root={roots[data]}",
                             f"trainer.max_epochs={epochs}", "callbacks.progress_bar=null", *extra],
                            work / "runs" / name)
        times = bench.dlhw_epoch_times(cfg)
        t = bench.steady(times)
        lines.append(f"{name}: {t:.3f} s/epoch | goal {goal:.1f} s/epoch | ratio time/goal "
                     f"{t / goal:.3f} (median of epochs 2..{len(times)}; all: "
                     f"{', '.join(f'{x:.3f}' for x in times)})")
        print(lines[-1], flush=True)
    print("\n== summary ==", bench.machine(), *lines, sep="\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
