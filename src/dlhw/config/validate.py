"""Config checks that run before any data is loaded or model built.

Each rule names a dotted key (shell-style wildcards allowed) and a check; a check returns None for a
good value or a phrase saying what is allowed. All problems are reported together in one
``UserError`` whose lines read ``KEY=VALUE is not allowed: must be ...``. Keys a config does not
have are skipped, so new models and optimizers need no entry here unless they add a rule.
"""

from __future__ import annotations

import fnmatch
import math
import os
from collections.abc import Callable, Iterator
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf

from dlhw.errors import UserError

Check = Callable[[Any], "str | None"]


# ----------------------------------------------------------------------------- checks
def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v: Any) -> bool:
    return (isinstance(v, (int, float)) and not isinstance(v, bool)) and math.isfinite(v)


def integer(v: Any) -> str | None:
    return None if _is_int(v) else "an integer"


def int_at_least(low: int) -> Check:
    return lambda v: None if _is_int(v) and v >= low else f"an integer >= {low}"


def number_above(low: float) -> Check:
    return lambda v: None if _is_number(v) and v > low else f"a number > {low:g}"


def number_at_least(low: float) -> Check:
    return lambda v: None if _is_number(v) and v >= low else f"a number >= {low:g}"


def in_range(low: float, high: float, low_open: bool = False, high_open: bool = True) -> Check:
    def check(v: Any) -> str | None:
        ok = _is_number(v) and (v > low if low_open else v >= low) and (v < high if high_open else v <= high)
        return None if ok else f"a number in {'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"

    return check


fraction = in_range(0.0, 1.0)  # probabilities: [0, 1)


def boolean(v: Any) -> str | None:
    return None if isinstance(v, bool) else "true or false"


def choice(*allowed: Any) -> Check:
    shown = ", ".join("null" if a is None else str(a) for a in allowed)

    def check(v: Any) -> str | None:
        ok = not isinstance(v, bool) and any(v == a and type(v) is type(a) for a in allowed)
        return None if ok or (v is None and None in allowed) else f"one of {shown}"

    return check


def optional(check: Check) -> Check:
    return lambda v: None if v is None else (None if check(v) is None else f"null or {check(v)}")


def either(*checks: Check) -> Check:
    def check(v: Any) -> str | None:
        reasons = [c(v) for c in checks]
        return None if any(r is None for r in reasons) else " or ".join(reasons)

    return check


def list_of(item: Check, length: int | None = None, min_length: int = 0) -> Check:
    def check(v: Any) -> str | None:
        what = f"a list of {length or ''}{' ' if length else ''}values, each {item(object())}"
        if not isinstance(v, (list, tuple)):
            return what
        if (length is not None and len(v) != length) or len(v) < min_length:
            return what
        return None if all(item(x) is None for x in v) else what

    return check


def limit_batches(v: Any) -> str | None:
    """Lightning's limit_*_batches: a share in [0, 1] (float) or a number of batches (int >= 0)."""
    if v is None or (_is_int(v) and v >= 0) or (isinstance(v, float) and 0.0 <= v <= 1.0):
        return None
    return "null, a share in [0.0, 1.0] or a whole number of batches >= 0"


def devices(v: Any) -> str | None:
    if (_is_int(v) and (v >= 1 or v == -1)) or v == "auto":
        return None
    if isinstance(v, (list, tuple)) and v and all(_is_int(d) and d >= 0 for d in v):
        return None
    if isinstance(v, str) and v.replace(",", "").replace(" ", "").isdigit():
        return None
    return "a number of devices >= 1, -1 (all), auto, or a list of device indices"


def resume_value(v: Any) -> str | None:
    return None if isinstance(v, bool) or (isinstance(v, str) and v.strip()) else \
        "true, false, or the path of a run (or sweep) directory"


PRECISIONS = ("64", "32", "16", "bf16", "64-true", "32-true", "16-true", "bf16-true",
              "16-mixed", "bf16-mixed", "transformer-engine", "transformer-engine-float16")
ACCELERATORS = ("cpu", "gpu", "cuda", "mps", "tpu", "auto")


def precision(v: Any) -> str | None:
    return None if str(v) in PRECISIONS and not isinstance(v, bool) else f"one of {', '.join(PRECISIONS)}"


def strategy(v: Any) -> str | None:
    if not isinstance(v, str):
        return None  # an instantiated strategy object (``_target_``) is Lightning's business
    from pytorch_lightning.strategies import StrategyRegistry

    names = ["auto", *StrategyRegistry.available_strategies()]
    return None if v in names else "one of " + ", ".join(sorted(set(names), key=names.index))


def _lazy_choice(import_path: str) -> Check:
    """A choice whose allowed values live in a module constant (imported on first use)."""

    def check(v: Any) -> str | None:
        module, name = import_path.rsplit(".", 1)
        allowed = getattr(__import__(module, fromlist=[name]), name)
        return choice(*allowed)(v)

    return check


# ----------------------------------------------------------------------------- rules
RULES: list[tuple[str, Check]] = [
    ("seed", integer),
    ("threads", optional(int_at_least(1))),
    ("resume", resume_value),
    ("nan_check_every", optional(int_at_least(1))),
    ("channels_last", boolean), ("compile", boolean),  # the speed flags (dlhw.run.speed)
    ("ckpt_path", optional(lambda v: None if isinstance(v, str) and v else "a checkpoint path or last")),
    # data
    ("data.batch_size", int_at_least(1)),
    ("data.eval_batch_size", int_at_least(1)),
    ("data.val_fraction", fraction),
    ("data.test_fraction", in_range(0.0, 1.0, low_open=True)),
    ("data.loader", _lazy_choice("dlhw.data.datamodule.LOADERS")),
    ("data.num_workers", int_at_least(0)),
    ("data.max_train_samples", optional(int_at_least(1))),
    ("data.augment.crop_padding", int_at_least(0)),
    ("data.augment.rotation", number_at_least(0)),
    ("data.augment.scale", fraction),
    ("data.augment.hflip", boolean),
    ("data.size", either(int_at_least(1), list_of(int_at_least(1), length=2))),
    ("data.n_train", int_at_least(1)),
    ("data.n_val", int_at_least(0)),
    ("data.*seed", integer),
    ("data.binarize", boolean), ("data.as_sequence", boolean), ("data.download", boolean),
    ("data.standardize", boolean), ("data.cache", boolean),
    # model
    ("model.*dropout", fraction),
    ("model.impl", _lazy_choice("dlhw.models.layers.IMPLS")),
    ("model.width", number_above(0)),
    ("model.hidden", either(int_at_least(1), list_of(int_at_least(1)))),
    ("model.channels", list_of(int_at_least(1), min_length=1)),
    ("model.layers", int_at_least(1)), ("model.blocks", int_at_least(1)),
    ("model.filters", int_at_least(1)), ("model.kernel_size", int_at_least(1)),
    ("model.fc_width", int_at_least(1)),
    ("model.batch_norm", boolean),
    # optimizer
    ("optimizer.lr", number_above(0)),
    ("optimizer.momentum", fraction),
    ("optimizer.dampening", fraction),
    ("optimizer.weight_decay", number_at_least(0)),
    ("optimizer.betas", list_of(fraction, length=2)),
    ("optimizer.alpha", fraction),
    ("optimizer.eps", number_above(0)),
    ("optimizer.nesterov", boolean),
    # scheduler
    ("scheduler.step_size", int_at_least(1)),
    ("scheduler.gamma", in_range(0.0, 1.0, low_open=True, high_open=False)),
    ("scheduler.milestones", list_of(int_at_least(1))),
    ("scheduler.T_max", int_at_least(1)),
    ("scheduler.eta_min", number_at_least(0)),
    ("scheduler.factor", in_range(0.0, 1.0, low_open=True)),
    ("scheduler.patience", int_at_least(0)),
    ("scheduler.warmup_epochs", int_at_least(0)),
    ("scheduler.start_factor", in_range(0.0, 1.0, low_open=True, high_open=False)),
    # loss, init
    ("loss.label_smoothing", fraction),
    ("loss.margin", number_above(0)),
    ("init.scheme", _lazy_choice("dlhw.nn.init.SCHEMES")),
    ("init.std", number_above(0)),
    ("init.gain", number_above(0)),
    # trainer
    ("trainer.max_epochs", either(int_at_least(1), choice(-1))),
    ("trainer.min_epochs", optional(int_at_least(0))),
    ("trainer.max_steps", either(int_at_least(1), choice(-1))),
    ("trainer.devices", devices),
    ("trainer.num_nodes", int_at_least(1)),
    ("trainer.accelerator", choice(*ACCELERATORS)),
    ("trainer.precision", precision),
    ("trainer.strategy", strategy),
    ("trainer.check_val_every_n_epoch", optional(int_at_least(1))),
    ("trainer.log_every_n_steps", int_at_least(1)),
    ("trainer.gradient_clip_val", optional(number_at_least(0))),
    ("trainer.gradient_clip_algorithm", choice("norm", "value")),
    ("trainer.deterministic", either(boolean, choice("warn"))),
    ("trainer.limit_*_batches", limit_batches),
    ("trainer.accumulate_grad_batches", int_at_least(1)),
    ("trainer.num_sanity_val_steps", int_at_least(-1)),
    # module
    ("module.scheduler_interval", choice("epoch", "step")),
    ("module.log_step_loss", boolean),
]


def _leaves(node: DictConfig, prefix: str = "") -> Iterator[tuple[str, Any]]:
    """(dotted key, resolved value) of every leaf; lists are leaves; unresolvable keys are skipped."""
    for key in node.keys():
        if prefix == "" and key == "hydra":
            continue
        path = f"{prefix}{key}"
        try:
            value = node[key]
        except Exception:  # e.g. ${hydra:...} outside a Hydra app
            continue
        if isinstance(value, DictConfig):
            yield from _leaves(value, f"{path}.")
        elif isinstance(value, ListConfig):
            try:
                yield path, OmegaConf.to_container(value, resolve=True)
            except Exception:
                continue
        else:
            yield path, value


def _show(value: Any) -> str:
    return "null" if value is None else repr(value) if isinstance(value, str) else str(value)


def config_problems(cfg: DictConfig) -> list[str]:
    """Every rule violation of ``cfg``, one line each (empty when the config is fine)."""
    problems = []
    values = dict(_leaves(cfg))
    for key, value in values.items():
        for pattern, check in RULES:
            if fnmatch.fnmatchcase(key, pattern):
                allowed = check(value)
                if allowed is not None:
                    problems.append(f"{key}={_show(value)} is not allowed: must be {allowed}.")
                break
    problems += _cross_checks(values)
    problems += _target_problems(values)
    return problems


def _target_problems(values: dict[str, Any]) -> list[str]:
    """Every ``_target_`` must name a class or function that imports (a typo in a target is the
    user's mistake, reported before anything is built, not as a traceback from instantiate)."""
    from hydra._internal.utils import _locate  # what instantiate uses (get_object logs an error)

    out = []
    for key, target in values.items():
        if key != "_target_" and not key.endswith("._target_"):
            continue
        try:
            _locate(str(target))
        except Exception as exc:
            section = key.rsplit(".", 1)[0] if "." in key else "the config"
            cause = str(exc.__cause__ or exc).strip().splitlines()[0][:200]
            out.append(f"{key}={_show(target)} cannot be imported ({cause}): check its spelling, or "
                       f"choose one of the shipped options of {section}.")
    return out


def _cross_checks(v: dict[str, Any]) -> list[str]:
    """Rules that relate two keys, or a key and the machine."""
    out = []
    lo, hi = v.get("trainer.min_epochs"), v.get("trainer.max_epochs")
    if _is_int(lo) and _is_int(hi) and hi >= 1 and lo > hi:
        out.append(f"trainer.min_epochs={lo} is larger than trainer.max_epochs={hi}: lower min_epochs.")
    n, bs, frac = v.get("data.max_train_samples"), v.get("data.batch_size"), v.get("data.val_fraction", 0)
    if _is_int(n) and n >= 1 and _is_int(bs) and _is_number(frac) and 0 <= frac < 1:
        n_train = n - int(round(n * frac))
        if bs > n_train:
            out.append(
                f"data.batch_size={bs} is larger than the training split ({n_train} samples of "
                f"data.max_train_samples={n}): use data.batch_size <= {max(n_train, 1)}."
            )
    accel = v.get("trainer.accelerator")
    if accel in ("gpu", "cuda"):
        import torch

        have = torch.cuda.device_count() if torch.cuda.is_available() else 0
        want = v.get("trainer.devices")
        if have == 0:
            out.append(
                f"trainer.accelerator={accel} but this machine has no usable CUDA GPU: "
                "use trainer=cpu (or trainer=ddp_cpu for two CPU processes)."
            )
        elif _is_int(want) and want > have:
            out.append(f"trainer.devices={want} but only {have} GPU(s) are visible: use trainer.devices<={have}.")
    return out


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
    """Raise one UserError listing every bad value of ``cfg`` (types, ranges, choices), then
    refuse a model, data set and loss that do not fit together (dlhw.config.compat)."""
    from dlhw.config.compat import check_combination

    problems = config_problems(cfg)
    if problems:
        sep = "\n  " if len(problems) > 1 else " "
        raise UserError("invalid configuration:" + sep + sep.join(problems))
    check_combination(cfg)


def check_data(cfg: DictConfig, datamodule: Any) -> None:
    """Checks that need the loaded data: the combination with what it measured (sizes and classes
    known only now), and the batch must fit in the training split."""
    from dlhw.config.compat import check_combination

    check_combination(cfg, datamodule)
    n = getattr(datamodule, "num_train_samples", None)
    bs = cfg.get("data", {}).get("batch_size")
    if _is_int(n) and _is_int(bs) and bs > n:
        raise UserError(
            f"data.batch_size={bs} is larger than the training split ({n} samples): "
            f"use data.batch_size <= {n}."
        )


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
