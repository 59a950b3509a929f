"""The packing launcher: compose every job, group them into packs, train each pack, run the rest
as ordinary jobs; every job gets its directory, .hydra/, train.log and a JobReturn as under
Hydra's own launcher. On a GPU a pack trains in this process; on a CPU it is shared out over
``hydra.launcher.processes`` processes forked from this one (one per core by default), each
training its share as one stacked model on its own core: two threads of one process step small
models more slowly than two processes (BENCHMARKS.md, section 6).
"""

from __future__ import annotations

import copy
import logging
import os
import signal
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from hydra.core.utils import (
    JobReturn,
    JobStatus,
    _save_config,
    configure_log,
    run_job,
    setup_globals,
)
from omegaconf import DictConfig, OmegaConf, open_dict, read_write

from dlhw.config.flatten import swept_overrides
from dlhw.config.validate import validate
from dlhw.errors import UserError
from dlhw.lit.guards import RunInterrupted
from dlhw.run.runner import find_user_error
from dlhw.sweep.forked import ChildLost, run_forked
from dlhw.sweep.job_configs import job_config
from dlhw.sweep.pack_train import PackJob, PackRefused, record_failure, train_pack
from dlhw.sweep.packing import Job, pack_processes, plan_packs, split_evenly

log = logging.getLogger("dlhw")


class _Prepared:
    """A job composed and given its directory: the Hydra config, the task config, its overrides."""

    def __init__(self, idx: int, sweep_config: DictConfig):
        self.idx = idx
        self.sweep_config = sweep_config
        HydraConfig.instance().set_config(sweep_config)
        out = Path(str(sweep_config.hydra.sweep.dir)) / str(sweep_config.hydra.sweep.subdir)
        with read_write(sweep_config.hydra.runtime), open_dict(sweep_config.hydra.runtime):
            sweep_config.hydra.runtime.output_dir = str(out.resolve())
        HydraConfig.instance().set_config(sweep_config)
        self.run_dir = out.resolve()
        self.task_cfg = copy.deepcopy(sweep_config)
        with read_write(self.task_cfg), open_dict(self.task_cfg):
            del self.task_cfg["hydra"]
        self.hydra_cfg = HydraConfig.instance().cfg  # set_config made it: no other job changes it
        self.overrides = list(OmegaConf.to_container(sweep_config.hydra.overrides.task))
        self.swept = swept_overrides()
        self.resolved = copy.deepcopy(self.task_cfg)  # resolved while this job's HydraConfig is set
        OmegaConf.resolve(self.resolved)

    def write_hydra_dir(self) -> None:
        """.hydra/config.yaml, hydra.yaml and overrides.yaml, as Hydra writes them for a job."""
        self.run_dir.mkdir(parents=True, exist_ok=True)
        subdir = self.sweep_config.hydra.output_subdir
        if subdir is not None:
            hydra_dir = self.run_dir / str(subdir)
            _save_config(self.task_cfg, "config.yaml", hydra_dir)
            _save_config(self.hydra_cfg, "hydra.yaml", hydra_dir)
            _save_config(self.sweep_config.hydra.overrides.task, "overrides.yaml", hydra_dir)

    def job_return(self, value, status: JobStatus) -> JobReturn:
        ret = JobReturn(overrides=self.overrides, cfg=self.task_cfg, hydra_cfg=self.hydra_cfg,
                        working_dir=os.getcwd(), task_name=str(self.sweep_config.hydra.job.name))
        ret.status, ret.return_value = status, value
        return ret


class _RunLogs:
    """One train.log per run of a pack: a record tagged ``dlhw_run`` goes to that run's file,
    an untagged one (about the whole pack) to every file."""

    def __init__(self, prepared: Sequence[_Prepared]):
        root = logging.getLogger()
        olds = [h for h in root.handlers if isinstance(h, logging.FileHandler)]
        formatter = olds[0].formatter if olds else logging.Formatter("[%(asctime)s][%(name)s][%(levelname)s] - %(message)s")
        for h in olds:
            root.removeHandler(h)
            h.close()
        self.handlers, self.idxs = [], [p.idx for p in prepared]
        for p in prepared:
            handler = logging.FileHandler(p.run_dir / "train.log")
            handler.setFormatter(formatter)
            handler.addFilter(lambda record, idx=p.idx: getattr(record, "dlhw_run", idx) == idx)
            root.addHandler(handler)
            self.handlers.append(handler)

    def note(self, message: str, idxs: Sequence[int] | None = None) -> None:
        """``message`` in the train.log of every run (of the runs ``idxs``) only, not the console."""
        record = log.makeRecord(log.name, logging.ERROR, __file__, 0, message, None, None)
        for idx, handler in zip(self.idxs, self.handlers, strict=True):
            if idxs is None or idx in idxs:
                handler.handle(record)

    def close(self) -> None:
        root = logging.getLogger()
        for h in self.handlers:
            root.removeHandler(h)
            h.close()


def _run_alone(launcher, p: _Prepared) -> JobReturn:
    return run_job(hydra_context=launcher.hydra_context, task_function=launcher.task_function,
                   config=p.sweep_config, job_dir_key="hydra.sweep.dir", job_subdir_key="hydra.sweep.subdir")


def launch(launcher, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> list[JobReturn]:
    """Hydra's launch(): a JobReturn per job, in the order of ``job_overrides``."""
    setup_globals()
    for key, null_means in (("pack_size", "every run that can share a pack"),
                            ("processes", "on a CPU, one process per core")):
        value = getattr(launcher, key)
        if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
            print(f"dlhw: error: hydra.launcher.{key}={value}: must be an integer >= 1, or null "
                  f"({null_means})", file=sys.stderr)
            raise SystemExit(2)
    config = launcher.config
    configure_log(config.hydra.hydra_logging, config.hydra.verbose)
    Path(str(config.hydra.sweep.dir)).mkdir(parents=True, exist_ok=True)
    prepared: dict[int, _Prepared] = {}
    for i, overrides in enumerate(job_overrides):
        idx = initial_job_idx + i
        sweep_config = job_config(launcher.hydra_context.config_loader, config, overrides)
        with open_dict(sweep_config):
            sweep_config.hydra.job.id = idx
            sweep_config.hydra.job.num = idx
        prepared[idx] = _Prepared(idx, sweep_config)
    getattr(launcher.hydra_context.config_loader, "_dlhw_kept", {}).clear()  # nothing outlives its batch
    jobs, invalid = [], []
    for idx, p in prepared.items():
        try:
            validate(p.resolved)
            jobs.append(Job(idx, p.run_dir.name, p.resolved, p.overrides))
        except UserError:
            invalid.append(idx)  # runs alone, where run() reports the mistake in its own way
    plan = plan_packs(jobs, launcher.pack_size)
    log.info("Packed launcher: %d job(s) in %d pack(s), %d alone", len(prepared),
             len(plan.packs), len(plan.alone) + len(invalid))
    returns: dict[int, JobReturn] = {}
    for job, reason in plan.alone:
        log.info("#%d %s trains alone: %s", job.idx, job.name, reason)
    for idx in invalid:
        returns[idx] = _run_alone(launcher, prepared[idx])
    for job, _ in plan.alone:
        returns[job.idx] = _run_alone(launcher, prepared[job.idx])
    for pack in plan.packs:
        returns.update(_launch_pack(launcher, [prepared[j.idx] for j in pack]))
    return [returns[initial_job_idx + i] for i in range(len(job_overrides))]


@dataclass
class _Outcome:
    """How a pack's training ended: ``values`` (one metric per run), ``refused`` (train alone),
    ``interrupted`` (by ``signal_number``), ``out_of_memory`` or ``failed`` (recorded already)."""

    kind: str
    values: list | None = None
    reason: str = ""
    signal_number: int = 0

    @classmethod
    def stopped_by(cls, signum: int) -> _Outcome:
        """Interrupted by the signal ``signum`` the launcher passed on to its processes."""
        return cls("interrupted", reason=f"interrupted by {signal.Signals(signum).name}", signal_number=signum)


def _train(members: list[_Prepared], progress: bool = True, threads: int | None = None) -> _Outcome:
    """Train ``members`` as one pack in this process, each run logging to its own train.log
    (``threads``: see ``train_pack``)."""
    logs = _RunLogs(members)
    jobs = [PackJob(p.run_dir.name, p.resolved, p.overrides, p.swept) for p in members]
    try:
        return _Outcome("values", train_pack(jobs, lambda i: {"dlhw_run": members[i].idx}, progress, threads))
    except PackRefused as refused:
        return _Outcome("refused", reason=str(refused))
    except RunInterrupted as stop:
        logs.note(f"dlhw: pack {stop}; the run kept its finished epochs (checkpoints/last.ckpt) and, "
                  "stopped inside an epoch, saved checkpoints/interrupted.ckpt.")
        return _Outcome("interrupted", reason=str(stop),
                        signal_number=int(stop.info.get("signal_number", signal.SIGINT)))
    except Exception as exc:
        if _out_of_memory(exc) and len(members) > 1:
            return _Outcome("out_of_memory")
        user_error = find_user_error(exc)
        if user_error is not None:
            log.error("dlhw: error: %s", user_error)
        else:
            log.exception("dlhw: the pack failed (the sweep goes on): %s", exc)
        _record_failure(members, exc)
        return _Outcome("failed", values=[float("nan")] * len(members))
    finally:
        logs.close()


def _launch_pack(launcher, members: list[_Prepared]) -> dict[int, JobReturn]:
    callbacks = launcher.hydra_context.callbacks
    for p in members:
        HydraConfig.instance().set_config(p.sweep_config)
        p.write_hydra_dir()
    configure_log(members[0].sweep_config.hydra.job_logging, members[0].sweep_config.hydra.verbose)
    for p in members:
        callbacks.on_job_start(config=p.sweep_config, task_function=launcher.task_function)
    processes = pack_processes(launcher.processes, members[0].resolved, len(members))
    received = None
    if processes > 1:
        groups = split_evenly(members, processes)
        outcomes, received = _train_side_by_side(groups)
    else:
        groups, outcomes = [members], [_train(members)]
    stops = [o for o in outcomes if o.kind == "interrupted"]
    if received is not None and not stops:  # every process had finished: the sweep stops all the same
        stops = [_Outcome.stopped_by(received)]
    returns: dict[int, JobReturn] = {}
    for group, outcome in zip(groups, outcomes, strict=True):
        if outcome.kind in ("values", "failed"):
            for p, value in zip(group, outcome.values, strict=True):
                HydraConfig.instance().set_config(p.sweep_config)
                ret = p.job_return(value, JobStatus.COMPLETED)  # a failed run is nan, as a run alone returns
                callbacks.on_job_end(config=p.sweep_config, job_return=ret)
                returns[p.idx] = ret
        elif stops:  # stopped by a signal: nothing more trains
            continue
        elif outcome.kind == "refused":
            log.info("These %d jobs train alone after all: %s", len(group), outcome.reason)
            returns.update({p.idx: _run_alone(launcher, p) for p in group})
        elif outcome.kind == "out_of_memory":
            log.warning("The pack of %d runs does not fit in the GPU's memory: trying two packs of "
                        "about %d.", len(group), len(group) // 2)
            returns.update(_retry_in_halves(launcher, group))
    if stops:
        sweep_dir = members[0].run_dir.parent
        message = (f"dlhw: pack {stops[0].reason}; every run kept its finished epochs (checkpoints/last.ckpt) "
                   f"and, stopped inside an epoch, saved checkpoints/interrupted.ckpt. "
                   f"Continue with: dlhw-train -m resume={sweep_dir}")
        print(message, file=sys.stderr)
        raise SystemExit(128 + stops[0].signal_number)
    return returns


def _train_side_by_side(groups: list[list[_Prepared]]) -> tuple[list[_Outcome], int | None]:
    """Each group trained as one pack in its own forked process, all at once (on a CPU); the
    outcomes, and the signal the launcher passed on meanwhile (a lost process then stopped)."""
    members = [p for g in groups for p in g]
    logs = _RunLogs(members)  # the launcher's lines go to every member's train.log
    try:
        log.info("The %d runs of this pack train as %d packs side by side, one process each "
                 "(hydra.launcher.processes=%d).", len(members), len(groups), len(groups))
        # one intra-op thread each: OpenMP hangs in a forked child that asks for more once the
        # parent has used it (an ordinary job of the sweep trained here, a script's own training)
        outcomes, received = run_forked([partial(_train, g, i == 0, 1) for i, g in enumerate(groups)])
        for i, (group, outcome) in enumerate(zip(groups, outcomes, strict=True)):
            if not isinstance(outcome, ChildLost):
                continue
            if received is not None:  # stopped by the signal outside the training loop
                outcomes[i] = _Outcome.stopped_by(received)
                continue
            exc = RuntimeError(f"the process training this pack ended without a result ({outcome.description})")
            message = f"dlhw: {', '.join(p.run_dir.name for p in group)}: {exc}"
            log.error(message, extra={"dlhw_run": -1})  # the console; the group's own files below
            logs.note(message, [p.idx for p in group])
            _record_failure(group, exc)
            outcomes[i] = _Outcome("failed", values=[float("nan")] * len(group))
        return outcomes, received
    finally:
        logs.close()


def _retry_in_halves(launcher, members: list[_Prepared]) -> dict[int, JobReturn]:
    """Two smaller packs, continuing from whatever epochs the failed attempt finished."""
    import gc

    import torch

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    for p in members:
        with open_dict(p.resolved):
            p.resolved.resume = True
    half = len(members) // 2
    return {**_launch_pack(launcher, members[:half]), **_launch_pack(launcher, members[half:])}


def _out_of_memory(exc: BaseException) -> bool:
    import torch

    return isinstance(exc, torch.OutOfMemoryError) or "out of memory" in str(exc).lower()


def _record_failure(members: list[_Prepared], exc: BaseException) -> None:
    """results.json failed for every run of a failed pack (a completed run is kept)."""
    for p in members:
        record_failure(p.run_dir, p.resolved.get("seed"), p.overrides, exc)
