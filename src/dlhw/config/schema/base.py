"""The machinery of the schema: sections, options chosen by ``_target_``, collections, and the
walk that checks a resolved config against them and says what is wrong, key by key.

- ``Section``: a pydantic model of one config section (``module``, ``paths``, ``data.augment``):
  strict types (``true`` is no number, ``"3"`` no integer), finite numbers, unknown keys refused.
- ``Option``: a section built with ``_target_``. Each subclass that sets ``targets`` checks the
  sections whose ``_target_`` is one of them (``dlhw.models.LeNet``: ``LeNet``); the family base
  (``Model``, ``Optimizer``, ...) is what a field names, and the walk picks the subclass by the
  section's ``_target_``. A target no subclass claims (a user's own class) gets the family's own
  keys checked and the rest passed through.
- ``Collection``: a section of named entries, each null or an option (``callbacks``, ``logger``).

The walk hands pydantic one section at a time (its leaves), so every error names one key.
"""

from __future__ import annotations

import difflib
import functools
import re
import typing
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Annotated, Any, ClassVar

from omegaconf import DictConfig, ListConfig, OmegaConf
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic.fields import FieldInfo

from dlhw.config.schema.types import Target, describe, members, one_of, show


@dataclass(frozen=True)
class Problem:
    """One wrong value: ``KEY=VALUE: what it must be``."""

    key: str
    shown: str   # the value as typed on the command line
    text: str    # "must be an integer >= 1", "is not a key of ..."

    @property
    def line(self) -> str:
        return f"{self.key}={self.shown}: {self.text}"

    def __str__(self) -> str:
        return self.line


def key(description: str, **kwargs: Any) -> Any:
    """A field of a section: its description (the key table, ``dlhw-train --help``). No default is
    validated: a key the config leaves out is the constructor's default."""
    return Field(None, description=description, **kwargs)


class Section(BaseModel):
    """One config section; subclasses declare its keys as fields."""

    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False, validate_default=False)
    says: ClassVar[str | None] = None  # what a value of this section is called in messages

    def relations(self, prefix: str) -> list[Problem]:
        """Rules between keys of this section, checked once each key is fine on its own."""
        return []

    @classmethod
    def keys(cls) -> dict[str, FieldInfo]:
        """The keys of this section as written in the config (aliases: ``_target_``)."""
        return {(f.alias or name): f for name, f in cls.model_fields.items()}

    @classmethod
    def types(cls) -> dict[str, Any]:
        """The type of each key, with its bounds (pydantic keeps those apart from the annotation)."""
        return {name: type_of(f) for name, f in cls.keys().items()}


def type_of(field: FieldInfo) -> Any:
    """A field's whole type: its annotation with the bounds pydantic moved to ``metadata``."""
    return Annotated[(field.annotation, *field.metadata)] if field.metadata else field.annotation


TARGETS: dict[str, type[Option]] = {}


class Option(Section):
    """A section built with ``_target_``. Set ``targets`` in a subclass to check those classes."""

    targets: ClassVar[tuple[str, ...]] = ()

    target_: Target = key("the class or function that builds this section", alias="_target_")
    partial_: one_of(False) = key("Hydra builds the object itself (only optimizers, schedules and "
                                  "init are passed on unbuilt)", alias="_partial_")

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        for target in cls.__dict__.get("targets", ()):
            TARGETS[target] = cls

    @classmethod
    def option_name(cls) -> str:
        return cls.targets[0] if cls.targets else cls.__name__


class Collection(Section):
    """Named entries, each null (switched off) or an option of ``item``'s family. An entry without
    ``_target_`` is off too (build skips it): a preset's settings for a callback it leaves off."""

    model_config = ConfigDict(extra="allow")
    item: ClassVar[type[Option]] = Option
    says: ClassVar[str | None] = "a section of named entries, each null (off) or a section with _target_"


@functools.cache
def _unchecked(family: type[Option]) -> type[Option]:
    """The family's own keys checked, any other key passed through (a target without a schema)."""
    return type(f"Any{family.__name__}", (family,), {
        "__module__": family.__module__, "model_config": ConfigDict(extra="allow"),
        "__doc__": f"A {family.__name__} whose _target_ has no schema of its own.",
    })


def schema_for(family: type[Option], target: Any) -> type[Option]:
    """The schema of a section of ``family`` built by ``target``."""
    found = TARGETS.get(target) if isinstance(target, str) else None
    if found is not None and issubclass(found, family):
        return found
    if isinstance(target, str) and found is None:
        obj = _locate(target)
        if obj is not None:  # the same class under another import path
            for name, schema in TARGETS.items():
                if issubclass(schema, family) and _locate(name) is obj:
                    return schema
    return _unchecked(family)


@functools.cache
def _locate(target: str) -> Any:
    from hydra._internal.utils import _locate as locate

    try:
        return locate(target)
    except Exception:
        return None


# ----------------------------------------------------------------------------- resolved values
class _Unset:
    """A value that is not there to check: ``???`` (must be set) or an interpolation that fails
    (``reason`` None: one that needs Hydra's runtime, outside a Hydra job: not checked)."""

    def __init__(self, shown: str, reason: str | None = None):
        self.shown, self.reason = shown, reason


_REFERENCE = re.compile(r"^\$\{(\.*)([\w.]+)\}$")


def resolve(cfg: Any) -> tuple[Any, dict[str, str]]:
    """A plain copy of ``cfg`` with every interpolation resolved (one that cannot be is kept as an
    ``_Unset``), and for each key that merely copies another (``${seed}``) the key it copies."""
    copies: dict[str, str] = {}

    def walk(node: Any, path: str) -> Any:
        if not isinstance(node, DictConfig):
            return node
        out = {}
        for name in node.keys():
            where = f"{path}{name}"
            child = node._get_node(name)
            raw = child._value() if child is not None else None
            if isinstance(raw, str) and OmegaConf.is_interpolation(node, name):
                m = _REFERENCE.match(raw)
                if m:
                    up = path.rstrip(".").split(".") if path else []
                    base = up[: len(up) - max(len(m.group(1)) - 1, 0)] if m.group(1) else []
                    copies[where] = ".".join([*base, m.group(2)])
            if OmegaConf.is_missing(node, name):
                out[name] = _Unset("???")
                continue
            try:
                value = node[name]
                if isinstance(value, ListConfig):
                    value = OmegaConf.to_container(value, resolve=True)
            except Exception as exc:
                reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                hydra_only = "hydra:" in str(raw) or "HydraConfig was not set" in str(exc)
                out[name] = _Unset(str(raw), None if hydra_only else reason)
                continue
            out[name] = walk(value, f"{where}.") if isinstance(value, DictConfig) else value
        return out

    if isinstance(cfg, DictConfig):
        return walk(cfg, ""), copies
    return cfg, copies


# ----------------------------------------------------------------------------- the walk
def _nested(annotation: Any) -> type[Section] | None:
    """The section type a field holds (``Augment``, the family ``Model``, ``Callbacks``), if any."""
    for member in members(annotation):
        bare = typing.get_args(member)[0] if typing.get_origin(member) is typing.Annotated else member
        if isinstance(bare, type) and issubclass(bare, Section):
            return bare
    return None


def allowed(annotation: Any) -> str:
    """What a value of a field's type is (a section named by what it holds)."""
    section = _nested(annotation)
    if section is None:
        return describe(annotation)
    nullable = any(m is type(None) for m in members(annotation))
    what = section.says or (f"a section with _target_ ({section.__name__})" if issubclass(section, Option)
                            else describe(section))
    return ("null or " if nullable else "") + what


def must_be(annotation: Any) -> str:
    return "must be " + allowed(annotation)


def nearest(name: str, candidates: list[str]) -> str | None:
    found = difflib.get_close_matches(name, candidates, n=1, cutoff=0.6)
    return found[0] if found else None


def check_node(schema: type[Section], node: Any, prefix: str) -> list[Problem]:
    """The problems of one section (and the sections below it) against ``schema``."""
    where = prefix.rstrip(".") or "the config"
    if issubclass(schema, Collection):
        problems = []
        for name, entry in node.items():
            if entry is None or isinstance(entry, dict) and "_target_" not in entry:
                continue  # off (settings a preset keeps for an entry it does not switch on)
            if isinstance(entry, dict):
                problems += check_node(schema.item, entry, f"{prefix}{name}.")
            else:
                problems.append(Problem(f"{prefix}{name}", _shown(entry),
                                        "must be null (off) or a section with _target_"))
        return problems
    if issubclass(schema, Option):
        if "_target_" not in node:  # instantiate would hand back a dict
            return [Problem(f"{prefix}_target_", "null", f"must be set: the class that builds {where} "
                            "(or choose an option of its group)")] if node else []
        schema = schema_for(schema, node["_target_"])
    fields = schema.keys()
    problems: list[Problem] = []
    plain: dict[str, Any] = {}
    for name, value in node.items():
        path = f"{prefix}{name}"
        if isinstance(value, _Unset):
            if value.shown == "???":
                field = fields.get(name)
                problems.append(Problem(path, "???", "must be set: " + (
                    allowed(type_of(field)) if field else "a value")))
            elif value.reason is not None:  # ${hydra:...} resolves inside a Hydra job only
                problems.append(Problem(path, value.shown, f"cannot be resolved ({value.reason})"))
            continue
        field = fields.get(name)
        if field is None:
            if schema.model_config.get("extra") == "allow":
                continue
            problems.append(unknown_key(schema, prefix, name, value))
            continue
        sub = _nested(type_of(field))
        if sub is not None and isinstance(value, dict):
            problems += check_node(sub, value, f"{path}.")
        else:
            plain[name] = value
    try:
        instance = schema.model_validate(plain)
    except ValidationError as exc:
        seen = set()
        for error in exc.errors():
            name = error["loc"][0] if error["loc"] else None
            if name in seen or name not in plain:
                continue
            seen.add(name)
            text = must_be(type_of(fields[name]))
            if error["type"] == "target":  # why it does not import
                text += f" ({error['msg']})"
            problems.append(Problem(f"{prefix}{name}", _shown(plain[name]), text))
        return problems
    return problems + instance.relations(prefix)


def unknown_key(schema: type[Section], prefix: str, name: str, value: Any) -> Problem:
    """A key the section's schema does not have, with the nearest one that it has."""
    names = [k for k in schema.keys() if not k.startswith("_")]
    near = nearest(str(name), names)
    owner = schema.option_name() if issubclass(schema, Option) else schema.__name__
    where = prefix.rstrip(".") or "the config"
    return Problem(f"{prefix}{name}", _shown(value), f"is not a key of {where} ({owner}); " + (
        f"did you mean {prefix}{near}?" if near else f"its keys: {', '.join(names) or 'none'}"))


def _shown(value: Any) -> str:
    return show(value)


def sections(schema: type[Section], node: dict, prefix: str = "") -> Iterator[tuple[str, type[Section], dict]]:
    """Every section of a resolved config with the schema that checks it (options picked by their
    ``_target_``, entries of collections by theirs): (key prefix, schema, the section's values)."""
    if issubclass(schema, Collection):
        for name, entry in node.items():
            if isinstance(entry, dict):
                yield from sections(schema.item, entry, f"{prefix}{name}.")
        return
    if issubclass(schema, Option):
        if "_target_" not in node:
            return
        schema = schema_for(schema, node["_target_"])
    yield prefix, schema, node
    fields = schema.keys()
    for name, value in node.items():
        field = fields.get(name)
        sub = _nested(type_of(field)) if field is not None else None
        if sub is not None and isinstance(value, dict):
            yield from sections(sub, value, f"{prefix}{name}.")


def has_own_schema(schema: type[Section]) -> bool:
    """False for the stand-in of a ``_target_`` that no schema claims."""
    return not (issubclass(schema, Option) and schema.model_config.get("extra") == "allow")


def check(cfg: Any, root: type[Section]) -> list[Problem]:
    """Every problem of ``cfg`` (a DictConfig, resolved here, or a plain dict) against ``root``;
    a key that only copies another key with a problem (``data.seed: ${seed}``) is not repeated."""
    tree, copies = resolve(cfg)
    if not isinstance(tree, dict):
        return [Problem("config", show(tree), "must be a section of keys")]
    tree = {k: v for k, v in tree.items() if k != "hydra"}  # Hydra checks its own section
    problems = check_node(root, tree, "")
    wrong = {p.key for p in problems}
    return [p for p in problems if copies.get(p.key) not in wrong]
