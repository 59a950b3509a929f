"""CPU thread hygiene: how many intra-op threads a run (or one job of a parallel sweep) uses.

Small models run many tiny parallel regions per step. With more OpenMP threads than free cores,
a spinning thread waits for a descheduled one at every barrier: on a shared 2-core machine a
LeNet step with 2 threads was 5-30x slower than with 1 (see BENCHMARKS.md, Threads). Hence:

- ``threads: null`` means every core this job owns, divided among the jobs that a parallel
  launcher (hydra/launcher=joblib, ``n_jobs``) runs at once: two jobs on two cores get one each.
  A Ray task (hydra/launcher=ray_gpus) uses the CPUs Ray gave it.
- ``dlhw-train`` asks OpenMP to sleep instead of spin while waiting (OMP_WAIT_POLICY=PASSIVE)
  unless the environment already says otherwise, so that a busy neighbour costs a little, not 10x.
"""

from __future__ import annotations

import os

from dlhw.errors import UserError

THREAD_ENV = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


def available_cores() -> int:
    """Cores this process may run on (its CPU affinity), not the machine's total."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def parallel_jobs(n_jobs: int | None, cores: int) -> int:
    """How many jobs a joblib-style ``n_jobs`` runs at once on ``cores`` (-1 all, -2 all but one)."""
    if n_jobs is None or n_jobs == 0:
        return 1
    if n_jobs < 0:
        return max(1, cores + 1 + n_jobs)
    return n_jobs


def job_threads(threads: int | None, cores: int, n_jobs: int = 1) -> int:
    """Threads for one job: ``threads`` if given, else ``cores // n_jobs`` (at least 1)."""
    if threads is not None:
        if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
            raise UserError(
                f"threads={threads!r} is not a positive number of CPU threads; use e.g. threads=1, "
                "or threads=null for every core this job owns."
            )
        return threads
    return max(1, cores // max(1, n_jobs))


def sweep_parallel_jobs() -> int:
    """Jobs running side by side in this Hydra multirun (the joblib launcher's n_jobs), else 1."""
    try:
        from hydra.core.hydra_config import HydraConfig
        from hydra.types import RunMode
    except ImportError:  # pragma: no cover - hydra is a dependency
        return 1
    if not HydraConfig.initialized():
        return 1
    hc = HydraConfig.get()
    if hc.mode != RunMode.MULTIRUN:
        return 1
    launcher = hc.get("launcher") or {}
    return parallel_jobs(launcher.get("n_jobs"), available_cores())


def configure_threads(threads: int | None) -> int:
    """Set torch's intra-op threads for this job (and the env its child processes inherit)."""
    import torch

    from dlhw.sweep.devices import assigned_share

    share = assigned_share()
    if share is not None:  # a Ray task: the CPUs Ray gave it
        n = job_threads(threads, share.threads)
    else:
        n = job_threads(threads, available_cores(), sweep_parallel_jobs())
    torch.set_num_threads(n)
    for name in THREAD_ENV:
        os.environ[name] = str(n)
    return n


def prefer_passive_wait() -> None:
    """Let idle OpenMP threads sleep rather than spin (before torch loads; the user's value wins)."""
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
