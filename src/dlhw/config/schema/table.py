"""The keys as people read them, from the schema: the key table of docs/compatibility.md (every
key of every shipped option) and the keys of ``dlhw-train --help`` (those of the chosen options)."""

from collections.abc import Iterator
from typing import Any

from omegaconf import DictConfig, OmegaConf

from dlhw.config.schema.base import Collection, Section, _nested, allowed, sections, type_of
from dlhw.config.schema.root import Train
from dlhw.config.schema.types import show

# The groups whose options the table lists, in the order of conf/train.yaml's defaults.
GROUPS = ("data", "model", "init", "loss", "optimizer", "scheduler", "trainer", "logger", "callbacks")
_HIDDEN = ("_target_", "_partial_")  # the option's own (checked, not tuned)


def _declared_by(schema: type[Section], name: str) -> type[Section]:
    """The nearest class that declares a field: options that share a key share its row."""
    for cls in schema.__mro__:
        if isinstance(cls, type) and issubclass(cls, Section) and name in cls.__dict__.get("__annotations__", {}):
            return cls
    return schema


def _plain(cfg: Any) -> Any:
    return OmegaConf.to_container(cfg, resolve=False) if isinstance(cfg, DictConfig) else cfg


def _rows_of(tree: dict) -> Iterator[tuple[str, type[Section], str, Any, bool]]:
    """(dotted key, declaring class, key, value, set in the config) of every key the schema has for
    the sections of ``tree``. A key the config leaves out is there too (the class's own default);
    a section's keys are rows of their own; ``_target_`` and ``_partial_`` are the option's."""
    for prefix, schema, node in sections(Train, tree):
        if issubclass(schema, Collection):
            continue
        for name, field in schema.keys().items():
            if name in _HIDDEN:
                continue
            if _nested_section(field) and (schema is Train or isinstance(node.get(name), dict)):
                continue
            yield f"{prefix}{name}", _declared_by(schema, field_name(schema, name)), name, node.get(name), name in node


def field_name(schema: type[Section], key: str) -> str:
    for name, field in schema.model_fields.items():
        if (field.alias or name) == key:
            return name
    return key


def _nested_section(field: Any) -> bool:
    return _nested(type_of(field)) is not None


def _about(schema: type[Section], key: str) -> tuple[str, str]:
    field = schema.keys()[key]
    return allowed(type_of(field)), field.description or ""


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def _value(value: Any, is_set: bool) -> str:
    if not is_set:
        return "(unset)"
    return value if isinstance(value, str) and ("${" in value or value == "???") else show(value)


def key_table() -> str:
    """docs/compatibility.md's "Keys": every key of conf/train.yaml and of every shipped option,
    with what it must be, its default in the shipped files, the options that have it, and what it
    does. Keys no shipped file sets are listed with ``(unset)``: the class's own default."""
    from dlhw.config.compat import option_config, options
    from dlhw.config.compose import compose

    base = _plain(compose([]))
    lines = [
        "## Keys",
        "",
        "Generated from the schema (`dlhw.config.schema`), as `dlhw-train` checks them: what each key",
        "must be, its value in the shipped files (`(unset)`: not set there, the class's own default",
        "applies; set it with `+KEY=VALUE`), the options that have it and what it does. A value that",
        "is not allowed ends in `dlhw: error: KEY=VALUE: must be ...` and exit status 2, every wrong",
        "value listed, before anything is loaded. `dlhw-train [GROUP=OPTION ...] --help` lists the",
        "keys of the options chosen.",
        "",
        "### conf/train.yaml",
        "",
        "| key | must be | default | what |",
        "|---|---|---|---|",
    ]
    for key, owner, name, value, is_set in _rows_of({k: v for k, v in base.items() if k not in GROUPS}):
        must, what = _about(owner, name)
        lines.append(f"| `{key}` | {_cell(must)} | `{_cell(_value(value, is_set))}` | {_cell(what)} |")
    for group in GROUPS:
        rows: dict[tuple[str, type], dict] = {}
        for option in options(group):
            tree = {**base, group: _plain(option_config(group, option))}
            for key, owner, name, value, is_set in _rows_of({group: tree[group], "paths": base["paths"]}):
                if not key.startswith(f"{group}."):
                    continue
                row = rows.setdefault((key, owner), {"name": name, "values": {}})
                row["values"][option] = _value(value, is_set)
        lines += ["", f"### {group}", "", "| key | options | must be | default | what |", "|---|---|---|---|---|"]
        all_options = options(group)
        for (key, owner), row in rows.items():
            must, what = _about(owner, row["name"])
            having = list(row["values"])
            where = "all" if having == all_options else ", ".join(having)
            lines.append(f"| `{key}` | {where} | {_cell(must)} | {_cell(_defaults(row['values']))} | {_cell(what)} |")
    return "\n".join(lines) + "\n"


def _defaults(values: dict[str, str]) -> str:
    """The most common value, and the options that differ from it."""
    counts: dict[str, int] = {}
    for v in values.values():
        counts[v] = counts.get(v, 0) + 1
    common = max(counts, key=lambda v: (counts[v], v != "(unset)"))
    others = [f"{option}: `{v}`" for option, v in values.items() if v != common]
    return f"`{common}`" + (f" ({'; '.join(others)})" if others else "")


def help_keys(cfg: Any) -> str:
    """The keys of a composed config, one a line: ``KEY=VALUE   what it must be; what it does``
    (``dlhw-train --help``, for the options chosen on its command line)."""
    tree = {k: v for k, v in _plain(cfg).items() if k != "hydra"}
    rows = []
    for key, owner, name, value, is_set in _rows_of(tree):
        must, what = _about(owner, name)
        rows.append((f"{key}={_value(value, is_set)}", f"{must}; {what}" if what else must))
    width = min(max((len(r[0]) for r in rows), default=0), 40)
    return "\n".join(f"  {left:<{width}}  {right}" for left, right in rows)

