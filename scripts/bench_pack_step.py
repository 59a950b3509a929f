#!/usr/bin/env python
"""Benchmark: one training step of 16 packed runs against the step of one run, without the
process, data loading or Lightning around them (``scripts/bench_pack.py`` measures whole sweeps).

For LeNet on CIFAR-10 shapes (batch 32, SGD), the MLP of mlp_mnist (batch 64, SGD) and LSTM-64
on MNIST rows (batch 256, Adam), it times the forward, backward and optimizer step of one run
alone and of a ``PackedClassifier`` of K runs, on synthetic batches, in interleaved repeats (the
order alternating every round), and prints the throughput of the pack against one run after
another. On a CPU it also times the run
alone on one intra-op thread and prints the pack against K runs spread over the cores (what a
joblib sweep with one thread per worker does), and times the pack as the packed launcher trains
it on a CPU: split over one forked process per core, each stepping its share on one thread, all
at once. ``--profile`` prints the pack's top operators.
``--rnn-kernel each-run`` makes a pack on a GPU run each run's fused (cuDNN) recurrent kernel
instead of the matrix-product cells.

    python scripts/bench_pack_step.py [--cases lenet,mlp,lstm] [--k 16] [--steps 30] [--gpu]
                                      [--profile] [--rnn-kernel matmul|each-run] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from functools import partial
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as dlhw-train does, before torch loads

CASES = {  # name -> (input shape, batch, optimizer)
    "lenet": ((3, 32, 32), 32, "sgd"),
    "mlp": ((1, 28, 28), 64, "sgd"),
    "lstm": ((28, 28), 256, "adam"),
}


def build(name: str):
    from dlhw.models import MLP, LeNet, RNNClassifier

    shape = CASES[name][0]
    if name == "lenet":
        return LeNet(shape, 10)
    if name == "mlp":
        return MLP(shape, 10, hidden=[300])
    return RNNClassifier(shape, 10, cell="lstm", hidden=64, head="mlp")


def optimizer(name: str, params):
    import torch

    if CASES[name][2] == "sgd":
        return torch.optim.SGD(params, lr=0.01, momentum=0.9, weight_decay=5e-4)
    return torch.optim.Adam(params, lr=1e-3)


def timed(step, steps: int, sync) -> float:
    """Median seconds of one step over ``steps`` steps, after three warm-up steps."""
    for _ in range(3):
        step()
    sync()
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        step()
        sync()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def one_thread(measure, threads: int) -> float:
    """``measure()`` with one intra-op thread, then ``threads`` again."""
    import torch

    torch.set_num_threads(1)
    try:
        return measure()
    finally:
        torch.set_num_threads(threads)


def alone_step(name: str, device, batch):
    import torch.nn.functional as F

    net = build(name).to(device)
    opt = optimizer(name, net.parameters())
    x, y = batch

    def step():
        loss = F.cross_entropy(net(x[0]), y[0])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return step


def packed_step(name: str, k: int, device, batch):
    import torch
    from torch import nn

    from dlhw.lit.packed import PackedClassifier

    nets = [build(name) for _ in range(k)]
    module = PackedClassifier(nets, nn.CrossEntropyLoss(), [optimizer(name, n.parameters()) for n in nets],
                              [None] * k, [torch.Generator().manual_seed(i) for i in range(k)]).to(device)
    opt = module.configure_optimizers()
    module.check_every = 10**9  # outside Lightning global_step stays 0: no look for diverged runs every step
    module.train()

    def step():
        loss = module.training_step(batch, 0)  # None on a CPU: every run has taken its own step
        if loss is not None:
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()

    return step, module


def side_by_side_step(name: str, k: int, processes: int, batch, steps: int) -> float:
    """Seconds of one step of all K runs when ``processes`` forked processes each step a pack of
    their share on one thread, at the same time (the slowest process's median)."""
    import multiprocessing

    import torch

    from dlhw.sweep.forked import ChildLost, run_forked
    from dlhw.sweep.packing import split_evenly

    x, y = batch
    shares = split_evenly(list(range(k)), processes)
    start = multiprocessing.get_context("fork").Barrier(len(shares))

    def share(runs: list[int]):
        def measure() -> float:
            torch.set_num_threads(1)
            step, _ = packed_step(name, len(runs), torch.device("cpu"), (x[runs].clone(), y[runs].clone()))
            step()
            start.wait(timeout=120)  # every process times its steps while the others step too
            return timed(step, steps, lambda: None)
        return measure

    times, _ = run_forked([share(runs) for runs in shares])
    lost = [t for t in times if isinstance(t, ChildLost)]
    if lost:
        sys.exit(f"bench_pack_step: a process stepping a share of the {name} pack was lost ({lost[0].description})")
    return max(times)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    p.add_argument("--cases", default=",".join(CASES))
    p.add_argument("--k", type=int, default=16, help="runs in the pack")
    p.add_argument("--steps", type=int, default=30, help="timed steps per measurement")
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--gpu", action="store_true")
    p.add_argument("--profile", action="store_true", help="print the pack's top operators")
    p.add_argument("--rnn-kernel", choices=("matmul", "each-run"), default="matmul",
                   help="recurrent layers of a pack on a GPU (a CPU pack always runs each run's kernel)")
    p.add_argument("--json", default=None)
    a = p.parse_args(argv)
    import torch

    from dlhw.bench import harness as bench
    from dlhw.nn.stackable import PackedRecurrent

    if a.gpu and not torch.cuda.is_available():
        sys.exit("bench_pack_step --gpu: no CUDA device")
    device = torch.device("cuda" if a.gpu else "cpu")
    sync = torch.cuda.synchronize if a.gpu else (lambda: None)
    PackedRecurrent.accelerator_kernel = a.rnn_kernel
    threads = torch.get_num_threads()
    print(bench.machine(), f"| torch threads {threads}", flush=True)
    figures = {}
    for name in a.cases.split(","):
        shape, size, _ = CASES[name]
        torch.manual_seed(0)
        x = torch.rand(a.k, size, *shape, device=device)
        if name == "lstm":
            x = (x > 0.5).float()
        batch = (x, torch.randint(0, 10, (a.k, size), device=device))
        pack, module = packed_step(name, a.k, device, batch)
        alone = alone_step(name, device, batch)
        sides = {"alone": partial(timed, alone, a.steps, sync), "pack": partial(timed, pack, max(a.steps // 4, 5), sync)}
        if not a.gpu:
            sides["alone_1_thread"] = partial(one_thread, sides["alone"], threads)
            sides["side_by_side"] = partial(side_by_side_step, name, a.k, threads, batch, max(a.steps // 2, 5))
        t = bench.interleaved(sides, a.repeats)  # the order of the sides alternates every round
        med = {side: statistics.median(v) for side, v in t.items()}
        line = {"ms": {side: 1e3 * v for side, v in med.items()},
                "pack_vs_one_after_another": a.k * med["alone"] / med["pack"]}
        print(f"{name}: one run {1e3 * med['alone']:.2f} ms/step, pack of {a.k} {1e3 * med['pack']:.1f} ms/step: "
              f"throughput {line['pack_vs_one_after_another']:.2f}x one after another", flush=True)
        if not a.gpu:
            spread = a.k * med["alone_1_thread"] / threads
            line["pack_vs_runs_on_the_cores"] = spread / med["pack"]
            print(f"{name}: one run on 1 thread {1e3 * med['alone_1_thread']:.2f} ms/step; {a.k} runs spread over "
                  f"{threads} cores {1e3 * spread:.1f} ms per step of all: pack time / that = "
                  f"{med['pack'] / spread:.3f}", flush=True)
            line["side_by_side_vs_runs_on_the_cores"] = spread / med["side_by_side"]
            print(f"{name}: the pack split over {threads} processes side by side (one thread each) "
                  f"{1e3 * med['side_by_side']:.1f} ms per step of all: / runs spread = "
                  f"{med['side_by_side'] / spread:.3f}", flush=True)
        if a.profile:
            from torch.profiler import ProfilerActivity, profile

            activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if a.gpu else [])
            with profile(activities=activities) as prof:
                for _ in range(5):
                    pack()
                sync()
            key = "self_cuda_time_total" if a.gpu else "self_cpu_time_total"
            print(prof.key_averages().table(sort_by=key, row_limit=15), flush=True)
        figures[name] = line
        del module
    if a.json:
        Path(a.json).write_text(json.dumps({"machine": bench.machine(), "args": vars(a), "cases": figures}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
