"""Which jobs of a sweep can train together as one stacked model, and why the others cannot.

Jobs pack when their composed configs are equal outside the keys that can differ inside one
stacked model: ``seed``, ``init.*``, ``model.dropout``, the optimizer's per-run numbers (lr,
weight decay, momentum, betas, ...) and the scheduler's settings. Keys that say where a run
writes or how it is reported (its directory, ``resume``) never split a pack.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field

from omegaconf import DictConfig, OmegaConf

from dlhw.optim.stacked import KINDS
from dlhw.sweep import forked
from dlhw.sweep.threads import available_cores

# Dotted prefixes whose values may differ between the runs of one pack.
PER_RUN = ("seed", "data.seed", "init", "model.dropout", "optimizer.lr", "optimizer.weight_decay",
           "optimizer.momentum", "optimizer.betas", "optimizer.dampening", "optimizer.alpha",
           "optimizer.eps", "scheduler", "experiment_name", "paths", "resume", "ckpt_path",
           "task_name", "report")
# The first key that differs, in words, for the one line that says why a job trains alone.
WHY = (("model", "another model shape"), ("data.batch_size", "another batch size"),
       ("data", "another data set"), ("loss", "another loss"), ("trainer", "another trainer"))
OPTIMIZERS = tuple(f"torch.optim.{kind}" for kind in KINDS)
MONITORS = ("val/acc", "val/loss", "train/acc", "train/loss")  # what a pack's checkpoints can follow


@dataclass
class Job:
    """One job of the sweep: its index, name, composed config (without ``hydra``) and overrides."""

    idx: int
    name: str
    cfg: DictConfig
    overrides: list[str] = field(default_factory=list)


@dataclass
class Plan:
    """Packs of two or more jobs, and jobs that train alone with the reason."""

    packs: list[list[Job]]
    alone: list[tuple[Job, str]]


def cannot_pack(cfg: DictConfig) -> str | None:
    """Why a job can never train in a pack (None: it can)."""
    model = cfg.get("model") or {}
    if str(model.get("impl", "torch")) == "scratch":
        return "model.impl=scratch: the hand-written Functions have no vmap rule"
    if str((cfg.get("loss") or {}).get("impl", "torch")) == "scratch":
        return "loss.impl=scratch: the hand-written Functions have no vmap rule"
    target = str((cfg.get("optimizer") or {}).get("_target_", ""))
    if target not in OPTIMIZERS:
        return f"optimizer {target.rsplit('.', 1)[-1]} has no stacked form ({', '.join(o.rsplit('.', 1)[-1] for o in OPTIMIZERS)} do)"
    if str((cfg.get("data") or {}).get("loader", "tensor")) != "tensor":
        return "data.loader=torch: packs read batches from the tensor loader"
    trainer = cfg.get("trainer") or {}
    if str(trainer.get("strategy", "auto")) not in ("auto", "None") or int(trainer.get("num_nodes", 1) or 1) > 1:
        return f"trainer.strategy={trainer.get('strategy')}: packs train on one device"
    devices = trainer.get("devices", 1)
    if str(devices) not in ("1", "auto") and not (isinstance(devices, Sequence) and len(devices) == 1):
        return f"trainer.devices={devices}: packs train on one device"
    if cfg.get("compile"):
        return "compile=true: a compiled network does not stack"
    if cfg.get("channels_last"):
        return "channels_last=true: packs train in the default memory layout"
    if str(trainer.get("precision", "32-true")).startswith("16"):
        return ("trainer.precision=16-mixed: one loss scaler for the pack would skip every run's "
                "step when one run overflows (bf16-mixed packs)")
    monitor = ((cfg.get("callbacks") or {}).get("model_checkpoint") or {}).get("monitor")
    if monitor is not None and str(monitor) not in MONITORS:
        return f"callbacks.model_checkpoint.monitor={monitor}: packs follow {', '.join(MONITORS)}"
    return None


def _drop(container: dict, dotted: str) -> None:
    head, _, rest = dotted.partition(".")
    if head not in container:
        return
    if not rest:
        del container[head]
    elif isinstance(container[head], dict):
        _drop(container[head], rest)


def pack_key(cfg: DictConfig) -> dict:
    """The config with the per-run keys taken out: equal keys, one pack."""
    container = OmegaConf.to_container(cfg, resolve=True)
    run_dir = str(cfg.paths.output_dir) if "paths" in cfg else None
    text = json.dumps(container, sort_keys=True, default=str)
    if run_dir:
        text = text.replace(run_dir, "<RUN_DIR>")
    container = json.loads(text)
    dropout = (container.get("model") or {}).get("dropout")
    for key in PER_RUN:
        _drop(container, key)
    if isinstance(dropout, (int, float)):  # a rate of 0 builds no dropout layer: another shape
        container["model"]["dropout_layers"] = dropout > 0
    return container


def _flat(d: dict, prefix: str = "") -> dict[str, object]:
    out: dict[str, object] = {}
    for key, value in d.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(_flat(value, name + "."))
        else:
            out[name] = value
    return out


def difference(a: dict, b: dict) -> str:
    """The first key where two pack keys differ, in words (``another model shape (model.hidden)``)."""
    fa, fb = _flat(a), _flat(b)
    keys = sorted(k for k in set(fa) | set(fb) if fa.get(k) != fb.get(k))
    if not keys:
        return "nothing"
    key = keys[0]
    for prefix, words in WHY:
        if key == prefix or key.startswith(prefix + "."):
            return f"{words} ({key})"
    return f"another {key}"


def plan_packs(jobs: Sequence[Job], pack_size: int | None = None) -> Plan:
    """Group the jobs into packs (at most ``pack_size`` runs each, split evenly); say why the others
    train alone."""
    groups: list[tuple[str, dict, list[Job]]] = []
    alone: list[tuple[Job, str]] = []
    for job in jobs:
        reason = cannot_pack(job.cfg)
        if reason is not None:
            alone.append((job, reason))
            continue
        key = pack_key(job.cfg)
        text = json.dumps(key, sort_keys=True)
        for group_text, _, members in groups:
            if group_text == text:
                members.append(job)
                break
        else:
            groups.append((text, key, [job]))
    packs: list[list[Job]] = []
    for _, key, members in groups:
        if len(members) == 1:
            others = [k for _, k, m in groups if m is not members]
            why = difference(key, others[0]) if others else "no other job of the sweep"
            alone.append((members[0], f"it differs from the other jobs in {why}" if others else why))
            continue
        count = -(-len(members) // (pack_size or len(members)))  # packs of nearly equal size
        bounds = [len(members) * i // count for i in range(count + 1)]
        packs += [members[a:b] for a, b in zip(bounds, bounds[1:], strict=False)]
    for pack in [p for p in packs if len(p) == 1]:
        packs.remove(pack)
        alone.append((pack[0], "its pack was split by hydra.launcher.pack_size"))
    alone.sort(key=lambda item: item[0].idx)
    return Plan(packs, alone)


def on_cpu(cfg: DictConfig) -> bool:
    """Whether the job's trainer runs on this machine's CPU alone (one device)."""
    trainer = cfg.get("trainer") or {}
    accelerator = str(trainer.get("accelerator", "auto"))
    if str(trainer.get("devices", 1)) not in ("1", "auto"):
        return False
    if accelerator == "auto":
        import torch

        return not torch.cuda.is_available() and not torch.backends.mps.is_available()
    return accelerator == "cpu"


def pack_processes(setting: int | None, cfg: DictConfig, runs: int) -> int:
    """How many processes, one intra-op thread each, share out a CPU pack of ``runs`` runs
    (``hydra.launcher.processes``): ``setting``, else one per core, or 1 where the job asks for
    more than one thread a run (``threads``); always 1 off a CPU and where forking is unsafe."""
    if not (on_cpu(cfg) and forked.available()):
        return 1
    if setting is None:
        threads = cfg.get("threads")
        setting = 1 if isinstance(threads, int) and threads > 1 else available_cores()
    return max(1, min(setting, runs))


def split_evenly(items: Sequence, parts: int) -> list[list]:
    """``items`` in ``parts`` consecutive groups whose sizes differ by at most one."""
    size, extra = divmod(len(items), parts)
    groups, start = [], 0
    for i in range(parts):
        end = start + size + (1 if i < extra else 0)
        groups.append(list(items[start:end]))
        start = end
    return [g for g in groups if g]
