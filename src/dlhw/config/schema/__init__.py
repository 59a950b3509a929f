"""The schema of the configuration: one pydantic model per config section and per option.

``check(cfg)`` lists every wrong value of a composed config as ``KEY=VALUE: must be ...``; the key
table of docs/compatibility.md and ``dlhw-train --help`` read the same fields. A new option is a
class in the module of its group whose ``targets`` names what it builds and whose fields are its
keys: nothing else is edited (see docs/architecture.md, "The config schema").
"""

from typing import Any

from dlhw.config.schema.base import (
    TARGETS,
    Collection,
    Option,
    Problem,
    Section,
    allowed,
    has_own_schema,
    resolve,
    schema_for,
    sections,
    type_of,
)
from dlhw.config.schema.root import Train


def check(cfg: Any) -> list[Problem]:
    """Every wrong value of ``cfg`` (composed, resolved here) against the schema of conf/train.yaml."""
    from dlhw.config.schema.base import check as check_against

    return check_against(cfg, Train)


__all__ = ["TARGETS", "Collection", "Option", "Problem", "Section", "Train", "allowed", "check",
           "has_own_schema", "resolve", "schema_for", "sections", "type_of"]
