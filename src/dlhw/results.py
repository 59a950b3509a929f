"""results.json: the contract between a run and the report (written atomically)."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

RESULTS_FILE = "results.json"


def _plain(value: Any) -> Any:
    if hasattr(value, "item") and callable(value.item):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def write_results(run_dir: str | Path, results: dict[str, Any]) -> Path:
    """Write results.json into run_dir via a temporary file, so a reader never sees half a file."""
    path = Path(run_dir) / RESULTS_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".json.tmp{os.getpid()}")
    tmp.write_text(json.dumps({k: _plain(v) for k, v in results.items()}, indent=2, default=str))
    os.replace(tmp, path)
    return path


def read_results(run_dir: str | Path) -> dict[str, Any] | None:
    """The results of a run directory, or None when it has none (or an unreadable one)."""
    path = Path(run_dir) / RESULTS_FILE
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None
