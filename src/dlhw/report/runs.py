"""Find run directories and read what they hold: results.json, overrides, TensorBoard scalars."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from dlhw.results import RESULTS_FILE, RunResult, read_results

# Overrides that say where or how a run executed, not what it computed.
PLUMBING = re.compile(r"^(threads|paths\.|hydra\.|callbacks\.progress_bar|trainer\.enable_|"
                      r"trainer\.log_every_n_steps|data\.root|data\.path|data\.num_workers)")


def _natural(path: Path) -> list:
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", str(path))]


@dataclass
class Run:
    """One run directory and what the report needs from it."""

    path: Path
    results: RunResult
    overrides: dict[str, str]
    _scalars: dict[str, list[tuple[int, float]]] | None = field(default=None, repr=False)

    @property
    def status(self) -> str:
        return self.results.status or "unknown"

    @property
    def completed(self) -> bool:
        return self.results.completed

    def scalars(self) -> dict[str, list[tuple[int, float]]]:
        """Every scalar series of the run's TensorBoard events: tag -> [(step, value)]."""
        if self._scalars is None:
            self._scalars = read_scalars(event_dir(self.path))
        return self._scalars

    def epoch_series(self, tag: str) -> tuple[list[float], list[float]]:
        """(epochs, values) of an epoch-level scalar; epochs counted from 1 ("after epoch n")."""
        scalars = self.scalars()
        series = scalars.get(tag, [])
        epoch_at = {step: value for step, value in scalars.get("epoch", [])}
        xs = [epoch_at.get(step, i) + 1 for i, (step, _) in enumerate(series)]
        return xs, [v for _, v in series]

    def json_file(self, name: str) -> dict | None:
        try:
            return json.loads((self.path / name).read_text())
        except (OSError, ValueError):
            return None


def parse_overrides(items) -> dict[str, str]:
    """["model=mlp", "+x=1", "optimizer.lr=0.1"] -> {"model": "mlp", "x": "1", ...}."""
    out: dict[str, str] = {}
    for item in items or []:
        key, sep, value = str(item).partition("=")
        if sep:
            out[key.lstrip("+~")] = value
    return out


def _overrides_of(path: Path, results: RunResult) -> dict[str, str]:
    items = results.overrides
    if items is None:
        try:
            items = yaml.safe_load((path / ".hydra" / "overrides.yaml").read_text())
        except (OSError, yaml.YAMLError):
            items = []
    return {k: v for k, v in parse_overrides(items).items() if not PLUMBING.match(k)}


def find_runs(root: Path) -> list[Run]:
    """Every run under ``root`` (itself included): directories with results.json, plus Hydra job
    directories without one (a job killed before it could write it), in natural order."""
    root = Path(root)
    dirs = {p.parent for p in root.rglob(RESULTS_FILE)}
    dirs |= {p.parent.parent for p in root.rglob(".hydra/overrides.yaml")}
    runs = []
    for d in sorted(dirs, key=_natural):
        if d.name.startswith("report") or (d == root and len(dirs) > 1 and
                                           not (d / RESULTS_FILE).is_file()):
            continue  # a sweep's own .hydra folder (multirun root) is not a run
        results = read_results(d)
        if results is None:
            results = RunResult(status="unknown", error="no results.json (killed or still running?)")
        runs.append(Run(d, results, _overrides_of(d, results)))
    return runs


def event_dir(run_dir: Path) -> Path:
    """The folder of a run's TensorBoard event files: the run directory itself, or its
    ``tensorboard/`` folder in runs written before the events moved up (and with
    ``logger.tensorboard.name=tensorboard``)."""
    run_dir = Path(run_dir)
    if not any(run_dir.glob("events.out.tfevents.*")) and (run_dir / "tensorboard").is_dir():
        return run_dir / "tensorboard"
    return run_dir


def read_scalars(logdir: Path) -> dict[str, list[tuple[int, float]]]:
    """tag -> [(step, value)] of every scalar in the event files of ``logdir`` (last write wins
    for a repeated step)."""
    if not Path(logdir).is_dir():
        return {}
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    ea = EventAccumulator(str(logdir), size_guidance={"scalars": 0, "images": 1, "histograms": 1,
                                                      "tensors": 1, "compressedHistograms": 1})
    ea.Reload()
    out = {}
    for tag in ea.Tags().get("scalars", []):
        by_step = {e.step: e.value for e in ea.Scalars(tag)}
        out[tag] = sorted(by_step.items())
    return out


def differing_keys(runs: list[Run]) -> list[str]:
    """Override keys whose value is not the same in every run (absent counts as a value)."""
    keys = sorted({k for r in runs for k in r.overrides})
    return [k for k in keys if len({r.overrides.get(k) for r in runs}) > 1]


def first_conv_weight(run: Run):
    """The first 4-D weight (conv filters) in the run's best (else last) checkpoint, or None."""
    import torch

    candidates = []
    best = run.results.best_ckpt
    if best:
        candidates += [Path(best), run.path / "checkpoints" / Path(best).name]
    candidates += sorted((run.path / "checkpoints").glob("best*.ckpt")) + [run.path / "checkpoints" / "last.ckpt"]
    for ckpt in candidates:
        if not ckpt.is_file():
            continue
        try:
            state = torch.load(ckpt, map_location="cpu", weights_only=True).get("state_dict", {})
        except Exception:  # an unreadable checkpoint: try the next one
            continue
        for name, tensor in state.items():
            if name.endswith("weight") and tensor.dim() == 4:
                return name, tensor
        return None
    return None
