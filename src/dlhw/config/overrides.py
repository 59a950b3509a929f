"""Overrides from Python (what ``dlhw.train("model=mlp", seed=1)`` passes to Hydra), and a failed
composition told in one line.

A positional argument is an override as typed on the command line (``"optimizer.lr=0.01"``) or a
mapping of keys to values; a keyword is a key, with ``__`` for a dot (``optimizer__lr=0.01``).
Values become Hydra's grammar: booleans ``true``/``false``, None ``null``, lists ``[a,b]``,
mappings ``{k:v}``, paths quoted; a tuple or range is a sweep (``seed=(0, 1)`` -> ``seed=0,1``);
a string is passed as typed (``model="lenet,mlp"`` sweeps in ``dlhw.sweep``).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import Any

from dlhw.errors import UserError

_SAFE = re.compile(r"^[\w./:@%+\-~]*$")


def quote(text: str) -> str:
    """``text`` as one Hydra value: as it is when plain, else single-quoted."""
    return text if _SAFE.match(text) else "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def value_text(value: Any) -> str:
    """A Python value in Hydra's override grammar."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, os.PathLike):
        return quote(os.fspath(value))
    if isinstance(value, (tuple, range)):  # the values of a sweep
        return ",".join(value_text(v) for v in value)
    if isinstance(value, list):
        return "[" + ",".join(value_text(v) for v in value) + "]"
    if isinstance(value, Mapping):
        return "{" + ",".join(f"{k}:{value_text(v)}" for k, v in value.items()) + "}"
    return str(value)


def to_overrides(args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> list[str]:
    """Command-line overrides from positional overrides or mappings, then keywords."""
    out: list[str] = []
    for arg in args:
        if isinstance(arg, Mapping):
            out += [f"{k}={value_text(v)}" for k, v in arg.items()]
        elif isinstance(arg, str):
            out.append(arg)
        elif isinstance(arg, (list, tuple)):
            out += to_overrides(tuple(arg), {})
        else:
            raise UserError(f"{arg!r} is not an override; pass strings such as 'optimizer.lr=0.01', "
                            "a dict {'optimizer.lr': 0.01} or keywords (optimizer__lr=0.01).")
    out += [f"{k.replace('__', '.')}={value_text(v)}" for k, v in kwargs.items()]
    return out


def composition_error(exc: BaseException, overrides: list[str]) -> UserError:
    """Hydra's composition error as one line, led by the nearest valid names of a mistyped key or
    option (``optimizer.lrr`` -> ``optimizer.lr``), as dlhw-train prints them."""
    from dlhw.config.validate import unknown_key_hint

    hint = unknown_key_hint(overrides)
    if hint:
        return UserError(hint.removeprefix("dlhw: "))
    lines = []
    for line in str(exc).splitlines():
        if line.startswith("Config search path"):
            break
        if line.strip():
            lines.append(line.strip().rstrip("."))
    text = "; ".join(lines) or type(exc).__name__
    override = getattr(exc, "override", None)  # OverrideParseException: the override it could not read
    if override and override not in text:
        text = f"cannot parse the override {override!r}: {text}"
    text = text.replace("add --multirun to your command line", "use dlhw.sweep (dlhw-train -m)")
    return UserError(text + ".")
