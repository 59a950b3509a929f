"""results.json: the contract between a run and the report, as a typed record (``RunResult``).

A run writes it (``write_results``, atomically: a reader never sees half a file); the report, the
sweep summary, resume and dlhw-eval read it (``read_results``). Every field is written, ``null``
when the run did not get that far; a field a file lacks reads as None, and a key this version does
not know is kept in ``RunResult.extra`` and written back unchanged. Files carry ``version``;
those written before it existed (dlhw 0.1, no ``version`` key) read the same way, as version
``0.1``.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

RESULTS_FILE = "results.json"
VERSION = "0.2"  # 0.1: no version key (dlhw 0.1.0); 0.2: every field of RunResult written
OLD_VERSION = "0.1"


@dataclass
class RunResult:
    """What one run left in its directory. ``status`` is completed, failed, interrupted or
    diverged; the other fields are None when unknown (a failed run has no test accuracy)."""

    status: str | None = None
    # what the run measured (accuracies are fractions in [0, 1])
    test_acc: float | None = None
    test_loss: float | None = None
    best_val_acc: float | None = None
    final_val_acc: float | None = None
    final_val_loss: float | None = None
    final_train_loss: float | None = None
    epochs: int | None = None
    global_steps: int | None = None
    wall_s: float | None = None
    epoch_s: float | None = None
    train_samples_per_s: float | None = None
    params: int | None = None
    # what it ran
    seed: int | None = None
    experiment: str | None = None
    overrides: list[str] | None = None
    run_dir: str | None = None
    # where it ran
    threads: int | None = None
    device: str | None = None
    host: str | None = None
    launcher: str | None = None
    cuda_visible_devices: str | None = None
    ray_cpus: float | None = None
    ray_gpu_share: float | None = None
    gpu_memory_cap_mib: int | None = None
    # checkpoints
    best_ckpt: str | None = None
    last_ckpt: str | None = None
    interrupted_ckpt: str | None = None
    resumed_from: str | None = None
    # a run trained in a pack (hydra/launcher=packed): the other jobs of its pack
    packed_with: list[str] | None = None
    pack_size: int | None = None
    # why it did not complete, and how to go on
    error: str | None = None
    reason: str | None = None
    previous_status: str | None = None
    signal: str | None = None
    signal_number: int | None = None
    epoch: int | None = None
    global_step: int | None = None
    epochs_completed: int | None = None
    diverged_step: int | None = None
    loss: str | None = None
    resume: str | None = None
    # keys this version does not know (a newer dlhw, another writer): kept and written back
    extra: dict[str, Any] = field(default_factory=dict)
    version: str = VERSION  # the format it was read from; always written as VERSION

    @property
    def completed(self) -> bool:
        return self.status == "completed"

    def get(self, key: str, default: Any = None) -> Any:
        """The field or extra key named ``key`` (for code that picks a metric by name), else
        ``default``; a field that is None gives ``default`` too."""
        if key in _FIELDS:
            value = getattr(self, key)
            return default if value is None else value
        return self.extra.get(key, default)

    def __getitem__(self, key: str) -> Any:
        """``result["test_acc"]``: a field (None when unknown) or an extra key (KeyError when absent)."""
        if key in _FIELDS:
            return getattr(self, key)
        return self.extra[key]

    def to_dict(self) -> dict[str, Any]:
        """The JSON object of results.json: this version, every field, then the extra keys."""
        out: dict[str, Any] = {"version": VERSION}
        out.update((name, _plain(getattr(self, name))) for name in _FIELDS)
        out.update((k, _plain(v)) for k, v in self.extra.items() if k not in out)
        return out

    @classmethod
    def create(cls, **values: Any) -> RunResult:
        """A record of this version from keyword values; a key that is no field goes to ``extra``
        (what a stop or a launcher adds, e.g. ``packed_with``)."""
        known = {k: values.pop(k) for k in list(values) if k in _FIELDS}
        if known.get("overrides") is not None:
            known["overrides"] = [str(o) for o in known["overrides"]]
        return cls(**known, extra=values)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RunResult:
        """A record from a results.json object of any version: missing fields None, unknown keys
        in ``extra``; no ``version`` key means a file of dlhw 0.1."""
        values = dict(data)
        version = str(values.pop("version", OLD_VERSION))
        return dataclasses.replace(cls.create(**values), version=version)


_FIELDS = [f.name for f in dataclasses.fields(RunResult) if f.name not in ("extra", "version")]


def _plain(value: Any) -> Any:
    """A JSON value: tensors and numpy scalars as numbers, nan and inf as null."""
    if hasattr(value, "item") and callable(value.item):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def write_results(run_dir: str | Path, result: RunResult | Mapping[str, Any]) -> Path:
    """Write RUN_DIR/results.json via a temporary file, so a reader never sees half a file.
    A mapping is taken as ``RunResult.create(**mapping)`` (keys that are no field kept as extra)."""
    if not isinstance(result, RunResult):
        result = RunResult.create(**result)
    path = Path(run_dir) / RESULTS_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".json.tmp{os.getpid()}")
    tmp.write_text(json.dumps(result.to_dict(), indent=2, default=str))
    os.replace(tmp, path)
    return path


def read_results(run_dir: str | Path) -> RunResult | None:
    """The record of a run directory, or None when it has no results.json (or an unreadable one:
    not JSON, or not a JSON object)."""
    path = Path(run_dir) / RESULTS_FILE
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return RunResult.from_dict(data) if isinstance(data, dict) else None
