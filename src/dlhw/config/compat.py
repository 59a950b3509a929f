"""Model x data x loss: checked from the shape contracts before a model is built or a batch drawn.

A data module says what it gives (``ClassificationData.gives()``: declared before loading, measured
after), a model class what it takes (``takes(**arguments)``, a ``dlhw.shapes.Takes``), a loss which
targets (``binary``: two classes only). ``check_combination`` refuses a pair that does not fit
with one ``UserError`` line naming both keys and values, why, and what would fit: the options of
the other group that do, read from the shipped configs.
"""

from __future__ import annotations

import copy
import functools
from importlib import resources
from typing import Any

from omegaconf import DictConfig, OmegaConf

from dlhw.errors import UserError
from dlhw.shapes import Gives, Takes


# ----------------------------------------------------------------------------- the shipped options
def options(group: str) -> list[str]:
    """The option names of a config group (conf/GROUP/*.yaml, without the _shared ones)."""
    folder = resources.files("dlhw.conf") / group
    return sorted(f.name[:-5] for f in folder.iterdir() if f.name.endswith(".yaml") and not f.name.startswith("_"))


@functools.cache
def _option(group: str, name: str) -> DictConfig:
    cfg = OmegaConf.load(str(resources.files("dlhw.conf") / group / f"{name}.yaml"))
    merged = OmegaConf.create()
    for entry in cfg.pop("defaults", None) or ["_self_"]:
        merged = OmegaConf.merge(merged, cfg if entry == "_self_" else _option(group, str(entry)))
    return merged


def option_config(group: str, name: str) -> DictConfig:
    """conf/GROUP/NAME.yaml with the files of its defaults list merged in (same group only)."""
    return copy.deepcopy(_option(group, name))


def _arguments(section: DictConfig) -> dict[str, Any]:
    """Constructor arguments of a config section, leaving out values that interpolate elsewhere."""
    out = {}
    for key in section:
        if (str(key).startswith("_") or OmegaConf.is_interpolation(section, key)
                or OmegaConf.is_missing(section, key)):
            continue
        value = section[key]
        out[key] = OmegaConf.to_container(value, resolve=True) if OmegaConf.is_config(value) else value
    return out


def _resolved_arguments(section: DictConfig) -> dict[str, Any]:
    container = OmegaConf.to_container(section, resolve=True)
    return {k: v for k, v in container.items() if not str(k).startswith("_")}


def _target(section: Any):
    from hydra.utils import get_object

    target = section.get("_target_") if isinstance(section, DictConfig) else None
    try:
        return get_object(target) if target else None
    except Exception:  # an unknown target is reported by instantiate itself
        return None


def model_takes(section: DictConfig, resolve: bool = True) -> Takes | None:
    """What the model of a config section takes; None for a model without a contract."""
    takes = getattr(_target(section), "takes", None)
    if takes is None:
        return None
    try:
        return takes(**(_resolved_arguments(section) if resolve else _arguments(section)))
    except Exception:  # bad argument values are validate's business
        return None


def loss_is_binary(section: DictConfig) -> bool:
    return bool(getattr(_target(section), "binary", False))


def declared_gives(section: DictConfig, resolve: bool = True) -> Gives | None:
    """What the data set of a config section gives, as declared before loading."""
    cls = _target(section)
    if cls is None or not hasattr(cls, "gives"):
        return None
    kwargs = _resolved_arguments(section) if resolve else _arguments(section)
    try:
        return cls(**kwargs).gives()
    except UserError:
        raise
    except Exception:  # constructor argument errors are reported when the run builds the data
        return None


def _options_that_fit(group: str, fits) -> list[str]:
    found = []
    for name in options(group):
        try:
            if fits(option_config(group, name)):
                found.append(name)
        except Exception:  # an option that cannot be described is left out of the suggestions
            continue
    return found


def models_for(gives: Gives) -> list[str]:
    """The shipped models (default settings) that take what ``gives`` describes."""
    def fits(c):
        takes = model_takes(c, resolve=False)
        return takes is not None and takes.problem(gives) is None

    return _options_that_fit("model", fits)


def data_for(takes: Takes) -> list[str]:
    """The shipped data sets (default settings) whose inputs ``takes`` reads."""
    def fits(c):
        gives = declared_gives(c, resolve=False)
        return gives is not None and takes.problem(gives) is None

    return _options_that_fit("data", fits)


def two_class_data() -> list[str]:
    """The shipped data sets that can have two classes (unknown until loaded counts as can)."""
    def fits(c):
        gives = declared_gives(c, resolve=False)
        return gives is not None and gives.classes in (None, 2)

    return _options_that_fit("data", fits)


def losses_for(classes: int) -> list[str]:
    return _options_that_fit("loss", lambda c: classes == 2 or not loss_is_binary(c))


# ----------------------------------------------------------------------------- the check
def choice(cfg: DictConfig, group: str) -> str:
    """``group=option`` as the user chose it (Hydra's runtime choices, else matched by target)."""
    from hydra.core.hydra_config import HydraConfig

    if HydraConfig.initialized():
        chosen = HydraConfig.get().runtime.choices.get(group)
        if chosen:
            return f"{group}={chosen}"
    section = cfg.get(group)
    target = section.get("_target_") if isinstance(section, DictConfig) else None
    candidates = [n for n in options(group) if option_config(group, n).get("_target_") == target]
    same = [n for n in candidates if all(section.get(k) == v for k, v in _arguments(option_config(group, n)).items()
                                         if not isinstance(v, (dict, list)))]
    name = (same or candidates or [str(target).rsplit(".", 1)[-1]])[0]
    return f"{group}={name}"


def _listed(names: list[str]) -> str:
    return ", ".join(names) if names else "none of the shipped ones"


def model_problem(cfg: DictConfig, gives: Gives) -> str | None:
    takes = model_takes(cfg.model)
    reason = takes.problem(gives) if takes is not None else None
    if reason is None:
        return None
    model, data = choice(cfg, "model"), choice(cfg, "data")
    ways = []
    if gives.kind == "image" and takes.kind == "image" and "size" in cfg.data:
        ways.append(f"data.size={max(takes.min_size)}")
    ways.append(f"a data set that fits {model} ({_listed(data_for(takes))})")
    ways.append(f"a model that fits {data} ({_listed(models_for(gives))})")
    return f"{model} does not fit {data}: {reason}. Use " + ", or ".join(ways) + "."


def loss_problem(cfg: DictConfig, gives: Gives) -> str | None:
    classes, binary = gives.classes, loss_is_binary(cfg.loss)
    if classes is None or (classes >= 2 and (classes == 2 or not binary)):
        return None
    loss, data = choice(cfg, "loss"), choice(cfg, "data")
    if gives.classes < 2:
        return (f"{loss} does not fit {data}: a classifier needs at least two classes and the data "
                f"has {gives.classes}. Use a data set with two or more classes.")
    return (f"{loss} does not fit {data}: the loss takes two classes (one score per sample) and the "
            f"data has {gives.classes}. Use a loss for {gives.classes} classes ({_listed(losses_for(gives.classes))}), "
            f"or a two-class data set ({_listed(two_class_data())}; an image folder with two class folders).")


def check_combination(cfg: DictConfig, datamodule: Any = None) -> None:
    """Refuse a model, data set and loss that do not fit together, in one UserError line.

    Without ``datamodule`` the data set's declared shape is used (nothing is loaded); with one,
    what it measured after loading (sizes and classes a folder or a pickle only know then).
    """
    if not isinstance(cfg.get("data"), DictConfig) or not isinstance(cfg.get("model"), DictConfig):
        return
    if datamodule is not None:
        gives = datamodule.gives() if hasattr(datamodule, "gives") else None
    else:
        gives = declared_gives(cfg.data)
    if gives is None:
        return
    problems = [p for p in (model_problem(cfg, gives), loss_problem(cfg, gives) if cfg.get("loss") else None) if p]
    if problems:
        raise UserError(" Also: ".join(problems))


# ----------------------------------------------------------------------------- shipped options' pairs
def pair_mismatch(data: str, model: str | None = None, loss: str | None = None) -> str | None:
    """Short reason why shipped options (default settings) do not fit; None when they do."""
    gives = declared_gives(option_config("data", data), resolve=False)
    if gives is None:
        return None
    if model is not None:
        takes = model_takes(option_config("model", model), resolve=False)
        found = takes.mismatch(gives) if takes is not None else None
        if found:
            return found[0]
    if loss is not None and gives.classes not in (None, 2) and loss_is_binary(option_config("loss", loss)):
        return "two classes only"
    return None
