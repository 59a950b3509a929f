"""Sweep plumbing: a Hydra callback (output directory check, end-of-sweep summary) and DDP in sweeps.

The callback is registered in conf/hydra/default.yaml (``hydra.callbacks.dlhw``).
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, open_dict

from dlhw.errors import UserError
from dlhw.run.results import read_results

log = logging.getLogger("dlhw")

# Strategies whose launcher re-runs sys.argv in new processes (Lightning's subprocess launcher).
_RELAUNCHING = {"ddp", "ddp_find_unused_parameters_false", "ddp_find_unused_parameters_true"}


def _fail(message: str) -> None:
    print(f"dlhw: error: {message}", file=sys.stderr)
    raise SystemExit(2)


class DlhwCallback(Callback):
    """Refuses an unwritable output directory before Hydra writes to it; summarises a sweep."""

    def _check_dir(self, path: str) -> None:
        from dlhw.run.validate import check_output_dir

        try:
            check_output_dir(path)
        except UserError as exc:
            _fail(str(exc))

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        self._check_dir(str(config.hydra.run.dir))

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        self._check_dir(str(config.hydra.sweep.dir))

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        summary = summarize_sweep(Path(str(config.hydra.sweep.dir)))
        if summary:
            log.info(summary)


def summarize_sweep(sweep_dir: Path) -> str:
    """One line per job that did not complete, after a count of the statuses of the sweep's jobs."""
    jobs = sorted((p for p in sweep_dir.iterdir() if p.is_dir() and p.name.isdigit()), key=lambda p: int(p.name)) \
        if sweep_dir.is_dir() else []
    if not jobs:
        return ""
    counts: dict[str, int] = {}
    bad = []
    for job in jobs:
        res = read_results(job) or {"status": "missing"}
        status = res.get("status", "unknown")
        counts[status] = counts.get(status, 0) + 1
        if status != "completed":
            why = res.get("error") or res.get("reason") or "no results.json"
            bad.append(f"  job {job.name} {status}: {str(why).splitlines()[0][:200]}  ({job})")
    head = f"Sweep {sweep_dir}: {len(jobs)} jobs, " + ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))
    tail = "" if not bad else "\n" + "\n".join(bad) + (
        f"\nRe-run what did not complete (completed jobs are skipped): dlhw-train -m resume={sweep_dir}"
    )
    return head + tail


def gpus_per_job(accelerator: str, devices: Any, minimum: int = 0) -> int:
    """GPUs one job of a sweep asks the cluster for: the trainer's devices, 0 on CPU (at least minimum)."""
    if str(accelerator) not in ("gpu", "cuda", "auto"):
        return max(minimum, 0)
    if isinstance(devices, int) and devices > 0:
        return max(devices, minimum)
    if isinstance(devices, (list, tuple)) or (isinstance(devices, str) and "," in devices):
        return max(len([d for d in str(devices).strip("[]").split(",") if d.strip()]), minimum)
    return max(1, minimum)  # -1 / auto: one GPU unless trainer.devices says how many


def ddp_for_sweeps(cfg: DictConfig, multirun: bool) -> None:
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
    with open_dict(cfg):
        cfg.trainer.strategy = "ddp_spawn"
