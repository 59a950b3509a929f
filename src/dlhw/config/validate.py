"""Config checks that run before any data is loaded or model built.

The values are checked against the schema (dlhw.config.schema): one pydantic model per section and
per option, with the type and the bounds of every key. All problems are reported together in one
``UserError`` whose parts read ``KEY=VALUE: must be ...``; what only the machine can say (a GPU
that is not there) is checked here, and what needs the loaded data in ``check_data``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

from omegaconf import DictConfig

from dlhw.errors import UserError


def config_problems(cfg: DictConfig) -> list[str]:
    """Every wrong value of ``cfg``, one ``KEY=VALUE: must be ...`` each (empty when it is fine)."""
    from dlhw.config.schema import check

    return [*(p.line for p in check(cfg)), *_machine_problems(cfg)]


def _machine_problems(cfg: DictConfig) -> list[str]:
    """What the schema cannot know: whether this machine has the GPUs the trainer asks for."""
    trainer = cfg.get("trainer") if isinstance(cfg, DictConfig) else None
    if not isinstance(trainer, DictConfig):
        return []
    accel = trainer.get("accelerator")
    if accel not in ("gpu", "cuda"):
        return []
    import torch

    have = torch.cuda.device_count() if torch.cuda.is_available() else 0
    want = trainer.get("devices")
    if have == 0:
        return [f"trainer.accelerator={accel}: must be cpu on this machine, which has no usable "
                "CUDA GPU (use trainer=cpu, or trainer=ddp_cpu for two CPU processes)"]
    if isinstance(want, int) and not isinstance(want, bool) and want > have:
        return [f"trainer.devices={want}: must be <= {have}, the GPUs visible here"]
    return []


def problems_message(problems: list[str]) -> str:
    """One line listing every problem (the runner prints it after ``dlhw: error:``)."""
    return "; ".join(problems)


def check_output_dir(path: str | os.PathLike) -> None:
    """Refuse an output directory that cannot be created or written, before any work starts."""
    from pathlib import Path

    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / f".dlhw-write-test-{os.getpid()}"
        probe.write_text("")
        probe.unlink()
    except OSError as exc:
        raise UserError(
            f"Cannot write to the output directory {path} ({exc.strerror or exc}). Choose a writable "
            "place: hydra.run.dir=DIR (sweeps: hydra.sweep.dir=DIR) or the DLHW_OUTPUT variable."
        ) from None


def validate(cfg: DictConfig) -> None:
    """Raise one UserError listing every bad value of ``cfg`` (types, ranges, choices: the
    schema), then refuse a model, data set and loss that do not fit together (dlhw.config.compat)."""
    from dlhw.config.compat import check_combination

    problems = config_problems(cfg)
    if problems:
        raise UserError(problems_message(problems))
    check_combination(cfg)


def check_data(cfg: DictConfig, datamodule: Any) -> None:
    """Checks that need the loaded data: the combination with what it measured (sizes and classes
    known only now), and the batch must fit in the training split."""
    from dlhw.config.compat import check_combination

    check_combination(cfg, datamodule)
    n = getattr(datamodule, "num_train_samples", None)
    bs = cfg.get("data", {}).get("batch_size")
    if _is_int(n) and _is_int(bs) and bs > n:
        raise UserError(f"data.batch_size={bs}: must be <= {n}, the samples of the training split")


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _all_keys(node: Any, prefix: str = "") -> Iterator[str]:
    """Every dotted key of a config (sections and leaves), values left unresolved."""
    if isinstance(node, DictConfig):
        for key in node.keys():
            path = f"{prefix}{key}"
            yield path
            yield from _all_keys(node._get_node(key), f"{path}.")


def config_groups() -> dict[str, list[str]]:
    """The config groups of conf/ and their options (``FAMILY/NAME`` in nested groups such as arm)."""
    from importlib import resources

    root = resources.files("dlhw.conf")
    groups = {}
    for folder in root.iterdir():
        if folder.is_dir() and not folder.name.startswith(("_", "hydra", "paths")):
            found, todo = [], [(folder, "")]
            while todo:
                where, prefix = todo.pop()
                for f in where.iterdir():
                    if f.is_dir() and not f.name.startswith("_"):
                        todo.append((f, f"{prefix}{f.name}/"))
                    elif f.name.endswith(".yaml") and not f.name.startswith("_"):
                        found.append(prefix + f.name[:-5])
            groups[folder.name] = sorted(found)
    return groups


def _nearest(name: str, candidates: list[str], cutoff: float = 0.6) -> list[str]:
    """The closest candidate, and any other nearly as close (at most three)."""
    import difflib

    scored = sorted(((difflib.SequenceMatcher(None, name, c).ratio(), c) for c in candidates), reverse=True)
    best = scored[0][0] if scored else 0.0
    return [c for score, c in scored[:3] if score >= cutoff and score >= best - 0.05]


def unknown_key_hint(overrides: list[str]) -> str | None:
    """One line with the nearest valid names for the keys and group options of ``overrides`` that
    the config does not have (``optimizer.lrr`` -> ``optimizer.lr``); None when all exist.

    Shown after Hydra's own error for an unknown key or option, which stays as it is. Keys added
    with ``+`` or removed with ``~``, and hydra's own, are Hydra's business.
    """
    from dlhw.config.compose import compose

    groups = config_groups()
    pairs = [o.split("=", 1) for o in overrides if "=" in o and not o.startswith(("-", "+", "~"))]
    pairs = [(k, v) for k, v in pairs if not k.startswith("hydra") and k != "resume"]
    chosen = [f"{k}={v}" for k, v in pairs if v in groups.get(k, ())]
    try:
        cfg = compose(chosen)
    except Exception:  # the chosen options themselves do not compose: Hydra said why
        return None
    keys = [k for k in _all_keys(cfg) if not k.startswith("hydra")]
    hints = []
    for key, value in pairs:
        if key in groups:
            for option in (o for o in value.split(",") if o not in groups[key] and o != "null"):
                near = _nearest(option, groups[key], cutoff=0.5)
                hints.append(f"{key}={option} is not an option of {key}" + (
                    f"; did you mean {' or '.join(f'{key}={n}' for n in near)}?" if near
                    else f" (options: {', '.join(groups[key])})."))
        elif key not in keys:
            depth = key.count(".")
            same_depth = sorted({k for k in [*keys, *groups] if k.count(".") == depth})
            taking_value = [g for g, names in groups.items() if value in names]  # modle=mlp: model
            near = _nearest(key, taking_value or same_depth)
            hints.append(f"{key} is not a key of this config" + (
                f"; did you mean {' or '.join(near)}?" if near
                else " (dlhw-train --cfg job prints every key)."))
    return "dlhw: " + " ".join(hints) if hints else None
