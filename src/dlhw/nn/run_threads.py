"""The per-run work of a pack spread over a CPU's cores, one intra-op thread per worker.

A pack on a CPU computes each run by itself: its whole training step in
``dlhw.lit.packed.PackedClassifier``, its evaluation through ``dlhw.nn.stackable.per_run``. One
run after another, every kernel would get all intra-op threads, which small kernels use poorly
(PyTorch's fused LSTM at batch 256 runs 1.4x faster on two threads than on one). Here the K runs are dealt
to ``torch.get_num_threads()`` threads instead, each running whole runs on one intra-op thread,
as the workers of a joblib sweep do. PyTorch's kernels and the autograd engine release Python's
interpreter lock; the Python between them does not, which is what two processes avoid.
"""

from __future__ import annotations

import concurrent.futures
import os
import threading
from collections.abc import Callable
from typing import TypeVar

import torch

T = TypeVar("T")
_pool: concurrent.futures.ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()
_inside = threading.local()


def _forget_pool() -> None:  # a forked child has none of the parent's threads
    global _pool
    _pool = None


os.register_at_fork(after_in_child=_forget_pool)


def _executor(workers: int) -> concurrent.futures.ThreadPoolExecutor:
    global _pool
    with _pool_lock:
        if _pool is None or _pool._max_workers < workers:
            _pool = concurrent.futures.ThreadPoolExecutor(workers, thread_name_prefix="dlhw-run")
        return _pool


def map_runs(fn: Callable[[int], T], k: int) -> list[T]:
    """``[fn(0), ..., fn(k - 1)]``, run k dealt to thread ``k % threads``; grad mode carries over.

    One thread (or a call made from inside another ``map_runs``) runs them in order here."""
    threads = min(torch.get_num_threads(), k)
    if threads <= 1 or getattr(_inside, "active", False):
        return [fn(i) for i in range(k)]
    grad = torch.is_grad_enabled()

    def deal(first: int) -> list[T]:
        torch.set_num_threads(1)
        _inside.active = True
        try:
            with torch.set_grad_enabled(grad):
                return [fn(i) for i in range(first, k, threads)]
        finally:
            _inside.active = False

    pool = _executor(threads - 1)
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    futures = [pool.submit(deal, first) for first in range(1, threads)]
    try:
        parts = [deal(0)] + [f.result() for f in futures]
    finally:
        concurrent.futures.wait(futures)  # no thread still runs when the thread count comes back
        torch.set_num_threads(before)
    out: list = [None] * k
    for first, part in enumerate(parts):
        out[first::threads] = part
    return out
