#!/usr/bin/env python
"""Speed of the hand-written layers vs torch.nn: LeNet epoch-equivalent on CIFAR-shaped random data.

Both models start from the same weights and train with the same SGD; runs are interleaved
(alternating which goes first) and the median over ``--repeats`` is reported, together with the
forward and backward time of the two LeNet convolutions alone.

    python scripts/bench_scratch.py [--batches 50] [--batch-size 64] [--repeats 5] [--tiny]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F

from dlhw.nn import functional as SF
from dlhw.theory.counting import build_model


def _epoch(model, loss_fn, opt, data) -> float:
    """Seconds for one pass over ``data`` (forward, loss, backward, SGD step per batch)."""
    start = time.perf_counter()
    for x, y in data:
        opt.zero_grad(set_to_none=True)
        loss_fn(model(x), y).backward()
        opt.step()
    return time.perf_counter() - start


def _interleaved(fns: dict[str, Callable[[], float]], repeats: int) -> dict[str, float]:
    """Median time of each function over ``repeats`` rounds, alternating the order every round."""
    times: dict[str, list[float]] = {k: [] for k in fns}
    names = list(fns)
    for r in range(repeats):
        for name in names if r % 2 == 0 else names[::-1]:
            times[name].append(fns[name]())
    return {k: statistics.median(v) for k, v in times.items()}


def _conv_timer(conv, x, w, b, iters: int, backward: bool) -> Callable[[], float]:
    """Seconds per call of conv's forward (or backward only) on fixed inputs."""

    def run() -> float:
        total = 0.0
        for _ in range(iters):
            if backward:
                y = conv(x, w, b)
                g = torch.ones_like(y)
                inputs = [t for t in (x, w, b) if t.requires_grad]
                t0 = time.perf_counter()
                torch.autograd.grad(y, inputs, g)
            else:
                t0 = time.perf_counter()
                with torch.no_grad():
                    conv(x, w, b)
            total += time.perf_counter() - t0
        return total / iters

    return run


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark and print the scratch/torch ratios."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batches", type=int, default=50)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--conv-iters", type=int, default=20, help="calls per conv timing round")
    p.add_argument("--threads", type=int, default=None, help="torch.set_num_threads")
    p.add_argument("--tiny", action="store_true", help="a few-second smoke run")
    a = p.parse_args(argv)
    if a.tiny:
        a.batches, a.batch_size, a.repeats, a.conv_iters = 3, 8, 1, 2
    if min(a.batches, a.batch_size, a.repeats, a.conv_iters) < 1:
        p.error("--batches, --batch-size, --repeats and --conv-iters must be positive")
    if a.threads:
        torch.set_num_threads(a.threads)

    torch.manual_seed(0)
    ref, _ = build_model("lenet", (3, 32, 32), 10, impl="torch")
    mine, source = build_model("lenet", (3, 32, 32), 10, impl="scratch")
    mine.load_state_dict(ref.state_dict())
    data = [
        (torch.randn(a.batch_size, 3, 32, 32), torch.randint(0, 10, (a.batch_size,)))
        for _ in range(a.batches)
    ]
    with torch.no_grad():
        l_ref = F.cross_entropy(ref(data[0][0]), data[0][1]).item()
        l_mine = SF.cross_entropy(mine(data[0][0]), data[0][1]).item()
    print(
        f"LeNet ({source}), {a.batches} batches x {a.batch_size} images 3x32x32, "
        f"{a.repeats} interleaved repeats, {torch.get_num_threads()} threads"
    )
    print(f"same weights: initial loss torch {l_ref:.6f}, scratch {l_mine:.6f}")

    opts = {
        "torch": torch.optim.SGD(ref.parameters(), lr=0.01, momentum=0.9),
        "scratch": torch.optim.SGD(mine.parameters(), lr=0.01, momentum=0.9),
    }
    _epoch(ref, F.cross_entropy, opts["torch"], data[:1])  # warm-up
    _epoch(mine, SF.cross_entropy, opts["scratch"], data[:1])
    epoch = _interleaved(
        {
            "torch": lambda: _epoch(ref, F.cross_entropy, opts["torch"], data),
            "scratch": lambda: _epoch(mine, SF.cross_entropy, opts["scratch"], data),
        },
        a.repeats,
    )
    print(
        f"scratch/torch epoch time ratio: {epoch['scratch'] / epoch['torch']:.2f}x "
        f"(torch {epoch['torch']:.3f} s, scratch {epoch['scratch']:.3f} s)"
    )

    # The two LeNet convolutions alone: conv1 on the images (no input gradient), conv2 on 6x14x14.
    n = a.batch_size
    layers = [
        (torch.randn(n, 3, 32, 32), torch.randn(6, 3, 5, 5, requires_grad=True)),
        (
            torch.randn(n, 6, 14, 14, requires_grad=True),
            torch.randn(16, 6, 5, 5, requires_grad=True),
        ),
    ]
    for phase, backward in (("forward", False), ("backward", True)):
        fns = {}
        for impl, conv in (("torch", F.conv2d), ("scratch", SF.conv2d)):
            timers = [
                _conv_timer(
                    conv, x, w, torch.zeros(w.shape[0], requires_grad=True), a.conv_iters, backward
                )
                for x, w in layers
            ]
            fns[impl] = lambda timers=timers: sum(t() for t in timers)
        for f in fns.values():
            f()  # warm-up
        t = _interleaved(fns, a.repeats)
        print(
            f"scratch/torch conv {phase} ratio: {t['scratch'] / t['torch']:.2f}x "
            f"(torch {t['torch'] * 1e3:.2f} ms, scratch {t['scratch'] * 1e3:.2f} ms per batch)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
