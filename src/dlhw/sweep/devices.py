"""Where a job runs: its share of a Ray cluster (GPU fraction, CPUs), its GPU memory cap, and DDP
in a sweep (``ddp_for_sweeps``).

Ray does the placing: a job asks for ``1/jobs_per_gpu`` of a GPU and a share of the CPUs, Ray
starts at most ``jobs_per_gpu`` such jobs on one GPU and sets each job's CUDA_VISIBLE_DEVICES.
This module computes what a job asks for (``task_resources``), and inside the job reads what it
got (``assigned_share``) to cap its GPU memory at its share (``memory_fraction``).
"""

from __future__ import annotations

import logging
import math
import os
import socket
from dataclasses import dataclass
from typing import Any

from dlhw.errors import UserError

CONTEXT_RESERVE_BYTES = 512 * 2**20  # a CUDA context outside the caching allocator, per process
_PRECISION = 1e-4  # Ray's resource granularity
# Strategies whose launcher re-runs sys.argv in new processes (Lightning's subprocess launcher).
_RELAUNCHING = {"ddp", "ddp_find_unused_parameters_false", "ddp_find_unused_parameters_true"}
log = logging.getLogger("dlhw")


@dataclass(frozen=True)
class Share:
    """What a Ray task was given: CPUs and a fraction of one GPU (0 when none)."""

    cpus: float
    gpu: float

    @property
    def threads(self) -> int:
        return max(1, math.floor(self.cpus + _PRECISION))


def _floor(x: float) -> float:
    return math.floor(x / _PRECISION) * _PRECISION


def task_resources(cluster: dict[str, float], gpus_per_job: int, jobs_per_gpu: int,
                   cpus_per_job: float | None) -> dict[str, float]:
    """``num_gpus`` and ``num_cpus`` of each job's Ray task, from the cluster's totals.

    With GPUs and a GPU trainer: ``gpus_per_job / jobs_per_gpu`` of a GPU per job (several GPUs
    per job need ``jobs_per_gpu=1``), and the CPUs split evenly over the GPU slots. Without: one
    CPU (or ``cpus_per_job``) per job and no GPU, so as many jobs run as the cluster has cores.
    """
    if isinstance(jobs_per_gpu, bool) or not isinstance(jobs_per_gpu, int) or jobs_per_gpu < 1:
        raise UserError(f"hydra.launcher.jobs_per_gpu={jobs_per_gpu!r} is not a positive whole "
                        "number of jobs per GPU; use e.g. hydra.launcher.jobs_per_gpu=4.")
    if cpus_per_job is not None and (isinstance(cpus_per_job, bool) or cpus_per_job <= 0):
        raise UserError(f"hydra.launcher.cpus_per_job={cpus_per_job!r} is not a positive number of "
                        "CPUs; use e.g. hydra.launcher.cpus_per_job=2, or null for an even share.")
    gpus, cpus = float(cluster.get("GPU", 0)), float(cluster.get("CPU", 1))
    if gpus_per_job == 0:
        return {"num_gpus": 0, "num_cpus": float(cpus_per_job or 1)}
    if gpus < gpus_per_job:
        raise UserError(
            f"the trainer asks for {gpus_per_job} GPU(s) per job but the Ray cluster has "
            f"{gpus:g}; use trainer=cpu, or connect to a cluster with GPUs "
            "(hydra.launcher.ray.init.address=HOST:PORT)."
        )
    if gpus_per_job > 1 and jobs_per_gpu > 1:
        raise UserError(
            f"hydra.launcher.jobs_per_gpu={jobs_per_gpu} shares a GPU between jobs, but each job "
            f"uses {gpus_per_job} GPUs (trainer.devices); use hydra.launcher.jobs_per_gpu=1 "
            "or trainer.devices=1."
        )
    slots = math.floor(gpus + _PRECISION) * jobs_per_gpu // gpus_per_job
    per_job = cpus_per_job if cpus_per_job is not None else max(_PRECISION, _floor(cpus / slots))
    return {"num_gpus": gpus_per_job / jobs_per_gpu, "num_cpus": float(per_job)}


def assigned_share() -> Share | None:
    """This process's share when it runs a Ray task, else None (Ray never imported here)."""
    import sys

    if "ray" not in sys.modules:
        return None
    import ray

    if not ray.is_initialized():
        return None
    context = ray.get_runtime_context()
    if context.worker.mode != ray.WORKER_MODE:
        return None
    got = context.get_assigned_resources()
    return Share(cpus=float(got.get("CPU", 0.0)), gpu=float(got.get("GPU", 0.0)))


def memory_fraction(gpu_share: float, total_bytes: int) -> float:
    """The allocator's cap for a job with ``gpu_share`` of a GPU (its CUDA context left out)."""
    fraction = _floor(gpu_share - CONTEXT_RESERVE_BYTES / total_bytes)
    if fraction <= 0:
        raise UserError(
            f"a {gpu_share:g} share of a {total_bytes / 2**30:.1f} GiB GPU leaves no memory once its "
            f"CUDA context ({CONTEXT_RESERVE_BYTES // 2**20} MiB) is counted; use a smaller "
            "hydra.launcher.jobs_per_gpu."
        )
    return fraction


def cap_gpu_memory(share: Share | None, device) -> int | None:
    """Cap this process's GPU memory at its share of the GPU; the cap in bytes (None: no cap)."""
    import torch

    if share is None or not 0 < share.gpu < 1 or getattr(device, "type", "cpu") != "cuda":
        return None
    total = torch.cuda.get_device_properties(device).total_memory
    fraction = memory_fraction(share.gpu, total)
    torch.cuda.set_per_process_memory_fraction(fraction, device)
    return int(fraction * total)


def out_of_share(exc: BaseException, cap_bytes: int | None, data_bytes: int) -> UserError | None:
    """The user error for a CUDA out-of-memory error inside a job's memory cap (else None)."""
    if cap_bytes is None or "out of memory" not in str(exc).lower():
        return None
    return UserError(
        f"this job ran out of its GPU memory share ({cap_bytes / 2**20:.0f} MiB, "
        f"{data_bytes / 2**20:.0f} MiB of it the data set on the device); the other jobs on the GPU "
        "go on. Use a smaller hydra.launcher.jobs_per_gpu, a smaller data.batch_size, or "
        "data.loader=torch (batches copied per step instead of the data set kept on the GPU)."
    )


def launcher_name() -> str:
    """The Hydra launcher of this job, e.g. RayGpusLauncher, JoblibLauncher ('none': a plain run)."""
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        return "none"
    hc = HydraConfig.get()
    if hc.mode is None or hc.mode.name != "MULTIRUN":
        return "none"
    target = (hc.get("launcher") or {}).get("_target_") or "unknown"
    return str(target).rsplit(".", 1)[-1]


def placement_fields(device, share: Share | None, cap_bytes: int | None) -> dict:
    """results.json's record of where the job ran."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    fields = {"device": str(device), "host": socket.gethostname(), "launcher": launcher_name()}
    if getattr(device, "type", "cpu") == "cuda" and visible is not None:
        fields["cuda_visible_devices"] = visible
    if share is not None:
        fields.update(ray_cpus=share.cpus, ray_gpu_share=share.gpu)
    if cap_bytes is not None:
        fields["gpu_memory_cap_mib"] = round(cap_bytes / 2**20)
    return fields


def ddp_for_sweeps(cfg: Any, multirun: bool) -> None:
    """Under a multirun, swap a re-launching ``ddp`` strategy for ``ddp_spawn``.

    Lightning's ``ddp`` starts ranks 1..N-1 by re-running the command line; in a multirun that
    command line is the whole sweep (with -m), so every rank would start the sweep again.
    ``ddp_spawn`` starts the ranks from inside the job instead. Where SLURM or torchrun already
    started one process per rank (SLURM_NTASKS > 1, or LOCAL_RANK set), nothing is re-launched
    and ``ddp`` stays.
    """
    trainer = cfg.get("trainer") or {}
    strategy = trainer.get("strategy")
    if not multirun or not isinstance(strategy, str) or strategy not in _RELAUNCHING:
        return
    devices, nodes = trainer.get("devices", 1), trainer.get("num_nodes", 1)
    many = nodes > 1 or devices == -1 or devices == "auto" or (isinstance(devices, int) and devices > 1) \
        or (not isinstance(devices, int) and len(str(devices).split(",")) > 1)
    external = int(os.environ.get("SLURM_NTASKS", "1") or 1) > 1 or "LOCAL_RANK" in os.environ
    if not many or external:
        return
    if nodes > 1:
        raise UserError(
            f"trainer.strategy={strategy} with trainer.num_nodes={nodes} in a multirun needs a "
            "cluster launcher that starts one process per rank: add hydra/launcher=slurm "
            "(tasks_per_node = GPUs per node), or run one job per command without -m."
        )
    log.warning(
        "trainer.strategy=%s would re-run the whole sweep in every rank; this sweep uses "
        "ddp_spawn instead (same training, ranks started from inside the job).", strategy,
    )
    from omegaconf import open_dict

    with open_dict(cfg):
        cfg.trainer.strategy = "ddp_spawn"
