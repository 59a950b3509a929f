"""The runs under a path as pandas tables: one row per run (``runs_table``: ``dlhw.runs``, the
report's Runs section and runs.csv), one row per configuration with mean, sd, min and max over its
seeds (``configurations_table``: configurations.csv and the report's section), and TensorBoard
scalars in long form (``scalars_table``: ``dlhw.scalars``)."""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from dlhw.report.runs import Run

# results.json fields that a run measured, in the order of the table's columns
METRICS = ("test_acc", "test_loss", "best_val_acc", "final_val_acc", "final_val_loss",
           "final_train_loss", "epochs", "wall_s", "epoch_s", "train_samples_per_s", "params")
# summarised per configuration in configurations.csv
SUMMARISED = ("test_acc", "test_loss", "best_val_acc", "epoch_s")


@dataclass
class Summary:
    """Mean, standard deviation, range and count of one metric over the completed runs of a
    configuration."""

    values: list[float]

    @property
    def n(self) -> int:
        return len(self.values)

    @property
    def mean(self) -> float | None:
        return statistics.fmean(self.values) if self.values else None

    @property
    def sd(self) -> float | None:
        if not self.values:
            return None
        return statistics.stdev(self.values) if len(self.values) > 1 else 0.0

    @property
    def min(self) -> float | None:
        return min(self.values, default=None)

    @property
    def max(self) -> float | None:
        return max(self.values, default=None)

    def pct(self) -> str:
        """``mean ± sd%`` (one run: ``mean%``)."""
        if not self.values:
            return "—"
        return f"{self.mean * 100:.2f} ± {self.sd * 100:.2f}%" if self.n > 1 else f"{self.mean * 100:.2f}%"

    def spread(self, pct: bool) -> str:
        """``mean ± sd (min–max)``, in percent for accuracies."""
        if not self.values:
            return "—"
        if pct:
            return f"{self.mean * 100:.2f} ± {self.sd * 100:.2f}% ({self.min * 100:.2f}–{self.max * 100:.2f})"
        return f"{self.mean:.4f} ± {self.sd:.4f} ({self.min:.4f}–{self.max:.4f})"


def summarize(runs: list[Run], key: str) -> Summary:
    """``key`` of results.json over the completed runs (numbers only)."""
    return Summary([r.results.get(key) for r in runs
                    if r.completed and isinstance(r.results.get(key), (int, float))])


def run_name(run: Run, root: Path) -> str:
    """The run's path below ``root`` (``3_init=kaiming,seed=1``), or its folder name."""
    root, path = Path(root).resolve(), run.path.resolve()
    return str(path.relative_to(root)) if path != root and path.is_relative_to(root) else path.name


def override_keys(runs: Iterable[Run]) -> list[str]:
    """Every override key of the runs, in the order they first appear."""
    return list(dict.fromkeys(k for r in runs for k in r.overrides))


def typed(column: pd.Series) -> pd.Series:
    """Override values as numbers where every value of the column is one (``0.01``, ``1e-3``)."""
    try:
        return pd.to_numeric(column)
    except (TypeError, ValueError):
        return column


def runs_table(runs: list[Run], root: Path) -> pd.DataFrame:
    """One row per run: its name, its overrides as columns (numbers typed), the seed, status, the
    measured metrics (accuracies as fractions, wall time in seconds), the error and the path."""
    keys = override_keys(runs)
    extra = [] if "seed" in keys else ["seed"]
    columns = ["run", *keys, *extra, "status", *METRICS, "error", "path"]
    rows = []
    for run in runs:
        row = {"run": run_name(run, root), **{k: run.overrides.get(k) for k in keys}}
        row.update({"seed": run.results.seed} if extra else {})
        row.update(status=run.status, error=run.results.error, path=str(run.path))
        row.update({m: run.results.get(m) for m in METRICS})
        rows.append(row)
    frame = pd.DataFrame(rows, columns=columns)
    for key in keys:
        frame[key] = typed(frame[key])
    for column in ("seed", "epochs", "params"):  # counts stay integers next to missing values
        try:
            frame[column] = frame[column].astype("Int64")
        except (TypeError, ValueError):  # a seed that is no integer: left as it is
            pass
    return frame


def configurations_table(groups: Mapping[str, list[Run]], keys: list[str]) -> pd.DataFrame:
    """One row per configuration (runs that differ only in their seed): its ``keys`` values, how
    many runs it has and how many completed, and mean, sd, min, max of each summarised metric over
    the completed runs (sd empty for a single run)."""
    rows = []
    for name, runs in groups.items():
        row = {"configuration": name, **{k: runs[0].overrides.get(k) for k in keys},
               "runs": len(runs), "completed": sum(r.completed for r in runs)}
        for metric in SUMMARISED:
            summary = summarize(runs, metric)
            row[f"{metric}_mean"] = summary.mean
            row[f"{metric}_sd"] = summary.sd if summary.n > 1 else None
            row[f"{metric}_min"] = summary.min
            row[f"{metric}_max"] = summary.max
        rows.append(row)
    frame = pd.DataFrame(rows)
    for key in keys:
        if key in frame:
            frame[key] = typed(frame[key])
    return frame


def scalars_table(runs: list[Run], root: Path, tags: Iterable[str] | None = None) -> pd.DataFrame:
    """TensorBoard scalars in long form: one row per (run, tag, step) with the epoch (from 1) where
    the value was logged at an epoch's end, and the value; ``tags`` picks some
    (``train/loss_every_step``, ``val/acc``), None takes all."""
    wanted = None if tags is None else set(tags)
    rows = []
    for run in runs:
        scalars = run.scalars()
        epoch_at = {step: int(value) + 1 for step, value in scalars.get("epoch", [])}
        rows += [(run_name(run, root), tag, step, epoch_at.get(step), value)
                 for tag, series in scalars.items() if wanted is None or tag in wanted
                 for step, value in series]
    frame = pd.DataFrame(rows, columns=["run", "tag", "step", "epoch", "value"])
    frame["epoch"] = frame["epoch"].astype("Int64")
    return frame
