#!/usr/bin/env python
"""Memory layout: a training step of each conv model in NCHW vs channels_last (NHWC).

What ``channels_last=true`` buys on this machine, model by model: forward, loss, backward and an
Adam step on a fixed random batch, the two layouts interleaved round by round, medians printed
with their ratio. The models are the catalogue's, built from conf/model/*.yaml.

    python scripts/bench_layout.py [--repeats 3] [--steps 8] [--threads 2] [--tiny]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as dlhw-train does, before torch loads

CASES = {  # name -> (model overrides, input shape, batch size)
    "lenet_cifar10": (["model=lenet"], (3, 32, 32), 128),
    "lenet_width4": (["model=lenet", "model.width=4"], (3, 32, 32), 128),
    "lenet_batchnorm": (["model=lenet", "model.norm=batch"], (3, 32, 32), 128),
    "cnn_mnist": (["model=cnn"], (1, 28, 28), 100),
    "vgg11_small": (["model=vgg11_small"], (3, 32, 32), 128),
    "resnet_small_64px": (["model=resnet_small"], (3, 64, 64), 64),
}


def step_timer(net, shape: tuple[int, ...], batch: int, channels_last: bool):
    """A function timing ``steps`` training steps of ``net``; seconds per step."""
    import torch

    from dlhw.run.build import apply_speed_options

    apply_speed_options(net, channels_last=channels_last)
    x, y = torch.randn(batch, *shape), torch.randint(0, 10, (batch,))
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    loss_fn = torch.nn.CrossEntropyLoss()

    def run(steps: int) -> float:
        start = time.perf_counter()
        for _ in range(steps):
            opt.zero_grad(set_to_none=True)
            loss_fn(net(x), y).backward()
            opt.step()
        return (time.perf_counter() - start) / steps

    run(2)  # warm-up: oneDNN picks its kernels
    return run


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--steps", type=int, default=8, help="timed steps per repeat and side")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--cases", default=",".join(CASES), help="comma-separated subset of " + ", ".join(CASES))
    p.add_argument("--tiny", action="store_true", help="a smoke run: two cases, small batches")
    a = p.parse_args(argv)
    import torch
    from hydra.utils import instantiate

    from dlhw.bench import harness as bench

    torch.set_num_threads(a.threads)
    names = a.cases.split(",")
    unknown = sorted(set(names) - set(CASES))
    if unknown:
        p.error(f"unknown case(s) {', '.join(unknown)}; choose from {', '.join(CASES)}")
    if a.tiny:
        names, a.repeats, a.steps = names[:1] + ["cnn_mnist"], 1, 1
    print(bench.machine())
    work = Path(tempfile.mkdtemp(prefix="dlhw-bench-layout-"))
    for name in names:
        overrides, shape, batch = CASES[name]
        batch = 8 if a.tiny else batch
        cfg = bench.compose(overrides, work / name)
        sides = {}
        for layout, nhwc in (("nchw", False), ("nhwc", True)):
            torch.manual_seed(0)
            net = instantiate(cfg.model, in_shape=shape, num_classes=10)
            run = step_timer(net, shape, batch, nhwc)
            sides[layout] = lambda run=run: run(a.steps)
        t = bench.interleaved(sides, a.repeats)
        ms = {k: [v * 1e3 for v in vs] for k, vs in t.items()}
        print(bench.ratio_line(f"{name} (batch {batch}, {a.threads} threads)", "nhwc", ms["nhwc"],
                               "nchw", ms["nchw"], "informative: < 1 means channels_last is faster",
                               unit="ms/step"), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
