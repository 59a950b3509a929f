"""The value types of the schema: pydantic types with bounds, each readable as a phrase.

A field's annotation is built from plain types (int, float, bool, str, None), ``Literal``
choices, lists, unions and the bounds of ``annotated_types`` (Ge, Gt, Le, Lt, MinLen, MaxLen).
``describe`` turns any of them into what the user reads after ``must be`` ("an integer >= 1",
"null or a number in [0, 1)"); ``counterexamples`` derives the values a field must refuse (a
value of the wrong type, values just out of range, null), which the fuzz test feeds back.
"""

from __future__ import annotations

import math
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from annotated_types import Ge, Gt, Le, Len, Lt, MaxLen, MinLen
from pydantic import AfterValidator, BaseModel
from pydantic_core import PydanticCustomError

SEED_MAX = 2**32 - 1  # what Lightning's seed_everything accepts


@dataclass(frozen=True)
class Says:
    """What a type is called in messages, where the generic phrase would say too little."""

    text: str


@dataclass(frozen=True)
class Rejects:
    """Values a custom check refuses although the plain type allows them (for the fuzz test)."""

    values: tuple


# ----------------------------------------------------------------------------- constructors
def at_least(low: int) -> Any:
    """An integer >= low."""
    return Annotated[int, Ge(low)]


def number(low: float | None = None, high: float | None = None, *, low_open: bool = False,
           high_open: bool = False) -> Any:
    """A finite number (an integer is a number too), optionally within [low, high] (or open ends)."""
    meta: list = []
    if low is not None:
        meta.append(Gt(low) if low_open else Ge(low))
    if high is not None:
        meta.append(Lt(high) if high_open else Le(high))
    return Annotated[(float, *meta)] if meta else float


def _same_type(allowed: tuple) -> Callable[[Any], Any]:
    def check(value: Any) -> Any:  # Literal[True] accepts 1, Literal[-1] accepts -1.0: not here
        if not any(value == a and type(value) is type(a) for a in allowed):
            raise PydanticCustomError("choice_type", "not one of the choices")
        return value

    return check


def one_of(*allowed: Any) -> Any:
    """Exactly one of ``allowed`` (equal and of the same type: true is not 1)."""
    return Annotated[Literal[allowed], AfterValidator(_same_type(allowed))]


def list_of(item: Any, length: int | None = None, min_length: int = 0) -> Any:
    """A list of values of type ``item`` (of exactly ``length`` items, or at least ``min_length``)."""
    if length is not None:
        return Annotated[list[item], Len(length, length)]
    return Annotated[list[item], MinLen(min_length)] if min_length else list[item]


def text(what: str = "a non-empty string") -> Any:
    """A non-empty string, called ``what`` in messages (a path, a metric name...)."""
    return Annotated[str, MinLen(1), Says(what)]


def _importable(target: str) -> str:
    from hydra._internal.utils import _locate  # what instantiate uses (get_object logs an error)

    try:
        obj = _locate(target)
    except Exception as exc:
        cause = str(exc.__cause__ or exc).strip().splitlines()[0][:200]
        raise PydanticCustomError("target", "cannot be imported: {cause}", {"cause": cause}) from None
    if not callable(obj):
        raise PydanticCustomError("target", "is not a class or function")
    return target


# The types most fields use.
Target = Annotated[str, MinLen(1), Says("an importable class or function"), AfterValidator(_importable)]
Count = at_least(1)                 # sizes, epochs, widths
Natural = at_least(0)               # counts that may be zero
Seed = Annotated[int, Ge(0), Le(SEED_MAX)]
Positive = number(0, low_open=True)
NonNegative = number(0)
Fraction = number(0, 1, high_open=True)  # probabilities and shares: [0, 1)
Unit = number(0, 1)                      # [0, 1]
Factor = number(0, 1, low_open=True)     # multiplicative decay: (0, 1]
Flag = bool
Path = text("a path")


# ----------------------------------------------------------------------------- reading a type
def _split(annotation: Any) -> tuple[Any, list]:
    """(the bare type, its Annotated metadata)."""
    meta: list = []
    while typing.get_origin(annotation) is Annotated:
        args = typing.get_args(annotation)
        annotation, meta = args[0], [*args[1:], *meta]
    return annotation, meta


def _members(annotation: Any) -> list:
    origin = typing.get_origin(annotation)
    if origin is typing.Union or origin is types.UnionType:
        return list(typing.get_args(annotation))
    return [annotation]


def members(annotation: Any) -> list:
    """The alternatives of a union (a single type: itself)."""
    bare, _ = _split(annotation)
    return _members(bare)


def show(value: Any) -> str:
    """A value as one would type it on the command line (strings unquoted where unambiguous)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e16:
        return f"{value:.1f}"
    if isinstance(value, (int, float)):
        return f"{value:g}" if isinstance(value, float) else str(value)
    if isinstance(value, str):
        plain = value and all(c.isalnum() or c in "_-./:" for c in value) and not _looks_typed(value)
        return value if plain else repr(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(show(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {show(v)}" for k, v in value.items()) + "}"
    return repr(value)


def _looks_typed(value: str) -> bool:
    """True when a bare string would read as a number, a boolean or null."""
    if value.lower() in ("true", "false", "null", "nan", "inf", "-inf"):
        return True
    try:
        float(value)
        return True
    except ValueError:
        return False


def _bounds(meta: list) -> str:
    low = next((m for m in meta if isinstance(m, (Ge, Gt))), None)
    high = next((m for m in meta if isinstance(m, (Le, Lt))), None)
    lo = None if low is None else (getattr(low, "ge", None) if isinstance(low, Ge) else low.gt)
    hi = None if high is None else (getattr(high, "le", None) if isinstance(high, Le) else high.lt)
    if low is not None and high is not None:
        return (f" in {'[' if isinstance(low, Ge) else '('}{show(lo)}, {show(hi)}"
                f"{']' if isinstance(high, Le) else ')'}")
    if low is not None:
        return f" {'>=' if isinstance(low, Ge) else '>'} {show(lo)}"
    if high is not None:
        return f" {'<=' if isinstance(high, Le) else '<'} {show(hi)}"
    return ""


def _lengths(meta: list) -> tuple[int, int | None]:
    low, high = 0, None
    for m in meta:
        if isinstance(m, Len):
            low, high = m.min_length, m.max_length
        elif isinstance(m, MinLen):
            low = m.min_length
        elif isinstance(m, MaxLen):
            high = m.max_length
    return low, high


def describe(annotation: Any) -> str:
    """What a value of this type is, as read after ``must be``."""
    bare, meta = _split(annotation)
    says = next((m.text for m in meta if isinstance(m, Says)), None)
    if says:
        return says
    alternatives = _members(bare)
    if len(alternatives) > 1:
        parts: list[str] = []
        for a in sorted(alternatives, key=lambda a: a is not type(None)):  # null first
            parts += ["true", "false"] if _split(a)[0] is bool else [describe(a)]
        return ", ".join(parts[:-1]) + " or " + parts[-1]
    if bare is type(None) or bare is None:
        return "null"
    if typing.get_origin(bare) is Literal:
        choices = typing.get_args(bare)
        return show(choices[0]) if len(choices) == 1 else "one of " + ", ".join(show(c) for c in choices)
    if bare is bool:
        return "true or false"
    if bare is int:
        return "an integer" + _bounds(meta)
    if bare is float:
        return "a number" + _bounds(meta)
    if bare is str:
        return "a non-empty string" if _lengths(meta)[0] else "a string"
    if typing.get_origin(bare) is list:
        (item,) = typing.get_args(bare) or (Any,)
        low, high = _lengths(meta)
        count = f"{low} " if low == high else ""
        lead = "a non-empty list" if low and low != high else "a list"
        return f"{lead} of {count}values, each {describe(item)}"
    if isinstance(bare, type) and issubclass(bare, BaseModel):
        return "a section of keys (" + ", ".join(bare.model_fields) + ")"
    if bare is dict or typing.get_origin(bare) is dict:
        return "a mapping of keys to values"
    if bare is Any:
        return "any value"
    return getattr(bare, "__name__", str(bare))


# ----------------------------------------------------------------------------- values to refuse
def _wrong_type_candidates() -> list:
    return ["abc", 1.5, 7, True, [1, 2], {"a": 1}]


def counterexamples(annotation: Any) -> dict[str, list]:
    """Values this type must refuse, by kind: ``wrong_type`` (candidates of other types, in order;
    the caller takes the first the key refuses), ``out_of_range`` (just past each bound, an unknown
    choice, a list of the wrong length or with a bad item: those the whole type refuses) and
    ``null`` (when null is not allowed)."""
    alternatives = members(annotation)
    outside: list = []
    for alt in alternatives:
        outside += [v for v in _outside(alt) if not any(v is o or v == o and type(v) is type(o) for o in outside)]
    return {
        "wrong_type": _wrong_type_candidates(),
        "out_of_range": [v for v in outside if refuses(annotation, v)],
        "null": [None] if refuses(annotation, None) else [],
    }


def refuses(annotation: Any, value: Any) -> bool:
    """True when a key of this type refuses ``value`` (as a schema section would: strict, finite)."""
    from pydantic import ConfigDict, ValidationError, create_model

    probe = create_model("Probe", __config__=ConfigDict(strict=True, allow_inf_nan=False), v=(annotation, ...))
    try:
        probe.model_validate({"v": value})
    except ValidationError:
        return True
    return False


def _outside(annotation: Any) -> list:
    bare, meta = _split(annotation)
    found: list = []
    for m in meta:
        if isinstance(m, Rejects):
            found += list(m.values)
    if typing.get_origin(bare) is Literal:
        choices = typing.get_args(bare)
        kinds = {type(c) for c in choices if c is not None}
        if str in kinds:
            found.append("not_a_choice")
        if int in kinds:
            ints = [c for c in choices if type(c) is int]
            found += [max(ints) + 1000, min(ints) - 1000]
        if bool in kinds and len([c for c in choices if type(c) is bool]) == 1:
            found.append(not next(c for c in choices if type(c) is bool))
        return found
    if bare in (int, float):
        step = 1 if bare is int else 1e-3
        for m in meta:
            if isinstance(m, Ge):
                found.append(m.ge - step if bare is int else m.ge - max(step, abs(m.ge) * 1e-3))
            elif isinstance(m, Gt):
                found.append(m.gt)
            elif isinstance(m, Le):
                found.append(m.le + step if bare is int else m.le + max(step, abs(m.le) * 1e-3))
            elif isinstance(m, Lt):
                found.append(m.lt)
        if bare is float:
            found.append(math.inf)
        return found
    if bare is str and _lengths(meta)[0]:
        return [*found, ""]
    if typing.get_origin(bare) is list:
        (item,) = typing.get_args(bare) or (Any,)
        low, high = _lengths(meta)
        good = _an_example(item)
        if good is not _NONE:
            if low:
                found.append([good] * (low - 1))
            if high is not None:
                found.append([good] * (high + 1))
            for bad in _outside(item):
                found.append([bad] * max(low, 1))
        return found
    return found


_NONE = object()


def _an_example(annotation: Any) -> Any:
    """A value this type accepts (for building lists around a bad item), or _NONE."""
    from pydantic import TypeAdapter

    candidates = [1, 0, 0.5, 2, "torch", True, False, None, "M", [1, 1], []]
    adapter = TypeAdapter(annotation)
    for c in candidates:
        try:
            adapter.validate_python(c, strict=True)
            return c
        except Exception:
            continue
    return _NONE
