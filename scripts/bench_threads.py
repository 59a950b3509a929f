#!/usr/bin/env python
"""Why dlhw sets OMP_WAIT_POLICY=PASSIVE: a LeNet training step (batch 128, CIFAR shape) timed with
1 and with all cores' threads, with OpenMP's default spin-waiting and with passive waiting, each
setting in a fresh process (the policy is read when torch loads), settings interleaved, medians.

Pass --busy N to add N busy-looping processes (a neighbour job) during the measurement.

    python scripts/bench_threads.py [--repeats 3] [--steps 40] [--busy 1] [--tiny]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys

STEP = r"""
import json, sys, time, torch
from dlhw.models import LeNet
torch.set_num_threads(int(sys.argv[1])); torch.manual_seed(0)
net = LeNet((3, 32, 32), 10); opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9)
x, y = torch.randn(128, 3, 32, 32), torch.randint(0, 10, (128,))
def step():
    opt.zero_grad(set_to_none=True)
    torch.nn.functional.cross_entropy(net(x), y).backward()
    opt.step()
for _ in range(3):
    step()
times = []
for _ in range(int(sys.argv[2])):
    t = time.perf_counter(); step(); times.append(time.perf_counter() - t)
print(json.dumps(sorted(times)[len(times) // 2]))
"""


def step_ms(threads: int, policy: str | None, steps: int) -> float:
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "OMP_NUM_THREADS")}
    if policy:
        env["OMP_WAIT_POLICY"] = policy
    out = subprocess.run([sys.executable, "-c", STEP, str(threads), str(steps)], env=env,
                         capture_output=True, text=True, check=True).stdout
    return json.loads(out) * 1e3


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--steps", type=int, default=40)
    p.add_argument("--busy", type=int, default=0, help="busy-looping neighbour processes")
    p.add_argument("--tiny", action="store_true")
    a = p.parse_args(argv)
    from dlhw.bench.harness import interleaved, machine
    from dlhw.sweep.threads import available_cores

    if a.tiny:
        a.repeats, a.steps = 1, 3
    cores = available_cores()
    busy = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(a.busy)]
    try:
        print(machine(), f"| busy neighbours: {a.busy}")
        settings = {f"{t} thread(s), {pol or 'spin (default)'}": (t, pol)
                    for t, pol in ((1, None), (cores, None), (cores, "PASSIVE"))}
        res = interleaved({k: (lambda t=t, pol=pol: step_ms(t, pol, a.steps))
                           for k, (t, pol) in settings.items()}, a.repeats)
    finally:
        for b in busy:
            b.kill()
            b.wait()
    for k, v in res.items():
        print(f"{k}: {statistics.median(v):.1f} ms/step  [{', '.join(f'{x:.1f}' for x in v)}]")
    spin, passive = (statistics.median(res[k]) for k in list(settings)[1:])
    print(f"threads: ratio spin/passive {spin / passive:.3f} with {cores} threads "
          f"(median of {a.repeats} interleaved repeats; > 1 means passive waiting is faster)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
