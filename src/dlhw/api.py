"""The Python API: ``train``, ``sweep``, ``runs``, ``scalars`` and ``compose``, as dlhw-train and
dlhw-report do them (the same validation, run directories, logs, results.json and reports).

Overrides are given as on the command line (``"optimizer.lr=0.01"``), as a dict, or as keywords
(``seed=1``, ``optimizer__lr=0.01``; see dlhw.config.overrides). In IPython a user's mistake
shows as one ``dlhw: error: ...`` line and the kernel lives on; elsewhere it raises
``dlhw.errors.UserError`` with that message.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dlhw.errors import UserError
from dlhw.notebook import show_errors_as_messages
from dlhw.results import RunResult, read_results

if TYPE_CHECKING:
    import pandas as pd
    import pytorch_lightning as pl
    import torch
    from omegaconf import DictConfig

__all__ = ["train", "sweep", "runs", "scalars", "compose", "TrainResult", "SweepResult"]


@dataclass
class TrainResult:
    """One finished run: its results.json record, directory, resolved config, and the trained
    network (best checkpoint, CPU, eval mode) with the data module it was trained on."""

    result: RunResult
    run_dir: Path
    config: DictConfig
    model: torch.nn.Module | None = field(repr=False)
    data: pl.LightningDataModule | None = field(repr=False)

    @property
    def metrics(self) -> dict[str, Any]:
        """What the run measured: test and validation accuracy and loss, epochs, times, parameters."""
        from dlhw.report.table import METRICS

        return {m: getattr(self.result, m) for m in METRICS if getattr(self.result, m) is not None}

    def __fspath__(self) -> str:  # dlhw.runs(result), dlhw.scalars(result)
        return str(self.run_dir)


@dataclass
class SweepResult:
    """One finished sweep: its directory, the results.json record of every job (in job order; a
    failed job is recorded, not raised) and its report (None when ``report=false``)."""

    sweep_dir: Path
    results: list[RunResult]
    report: Path | None

    def __fspath__(self) -> str:
        return str(self.sweep_dir)


def train(*overrides: Any, **options: Any) -> TrainResult:
    """Train and test one run, as ``dlhw-train OVERRIDES``; ``resume=RUN_DIR`` continues one."""
    from dlhw.config.overrides import to_overrides
    from dlhw.run.app import run_in_process
    from dlhw.run.evaluate import load_trained

    show_errors_as_messages()
    run_dir = run_in_process(to_overrides(overrides, options))
    result = read_results(run_dir) or RunResult(status="unknown")
    model = data = None
    if result.completed and (run_dir / "checkpoints").is_dir():
        model, data = load_trained(run_dir)
    return TrainResult(result, run_dir, _saved_config(run_dir), model, data)


def sweep(*overrides: Any, **options: Any) -> SweepResult:
    """Run a sweep, as ``dlhw-train -m OVERRIDES`` (``experiment=STUDY`` carries its own; the
    launcher is ``hydra/launcher=...``), then its report; ``resume=SWEEP_DIR`` continues one."""
    from dlhw.config.overrides import to_overrides
    from dlhw.run.app import sweep_in_process
    from dlhw.sweep.callback import job_dirs

    show_errors_as_messages()
    sweep_dir = sweep_in_process(to_overrides(overrides, options))
    results = [read_results(job) or RunResult(status="missing", run_dir=str(job))
               for job in job_dirs(sweep_dir)]
    report = sweep_dir / "report.md"
    return SweepResult(sweep_dir, results, report if report.is_file() else None)


def runs(path: str | os.PathLike | None = None) -> pd.DataFrame:
    """One row per run under ``path`` (a run, a sweep, a folder of sweeps; default: the output
    folder): the run's name, its overrides as columns, seed, status, metrics, error and path."""
    from dlhw.report.table import runs_table

    root, found = _runs_under(path)
    return runs_table(found, root)


def scalars(path: str | os.PathLike | None = None, *tags: str) -> pd.DataFrame:
    """The TensorBoard scalars of the runs under ``path``, one row per (run, tag, step, value);
    ``tags`` picks some (``"train/loss_every_step"``, ``"val/acc"``), none takes every tag."""
    from dlhw.report.table import scalars_table

    root, found = _runs_under(path)
    return scalars_table(found, root, tags or None)


def compose(*overrides: Any, **options: Any) -> DictConfig:
    """The config that ``train`` would run with these overrides, checked as ``train`` checks it
    (``paths.output_dir`` stays ``${hydra:runtime.output_dir}``: a run's directory is made when
    it starts)."""
    from omegaconf import open_dict

    from dlhw.config.compose import compose as compose_config
    from dlhw.config.overrides import composition_error, to_overrides
    from dlhw.config.validate import validate

    show_errors_as_messages()
    given = to_overrides(overrides, options)
    try:
        cfg = compose_config(given, return_hydra_config=True)
    except Exception as exc:
        from hydra.errors import HydraException
        from omegaconf.errors import OmegaConfBaseException

        if not isinstance(exc, (HydraException, OmegaConfBaseException)):
            raise
        raise composition_error(exc, given) from None
    with open_dict(cfg):
        cfg.experiment_name = cfg.hydra.runtime.choices.get("experiment")
        del cfg.hydra
    from hydra.core.hydra_config import HydraConfig

    hydra_config = HydraConfig.instance()
    saved, hydra_config.cfg = hydra_config.cfg, None  # no job here: ${hydra:...} stays unresolved
    try:
        validate(cfg)
    finally:
        hydra_config.cfg = saved
    return cfg


def _runs_under(path: str | os.PathLike | None) -> tuple[Path, list]:
    """(root, runs) under ``path``; a missing path is the user's mistake."""
    from dlhw.report.runs import find_runs

    show_errors_as_messages()
    root = Path(os.fspath(path)) if path is not None else _output_root()
    if not root.exists():
        raise UserError(f"{root} does not exist; pass a run directory, a sweep directory "
                        "(outputs/multirun/DATE/TIME) or a folder of them.")
    return root, find_runs(root)


def _output_root() -> Path:
    """Where runs go by default: the config's ``paths.log_root`` (DLHW_OUTPUT, else outputs)."""
    from dlhw.config.compose import compose as compose_config

    return Path(compose_config([]).paths.log_root)


def _saved_config(run_dir: Path) -> DictConfig:
    """The run's resolved config (config.yaml), else what Hydra saved (.hydra/config.yaml)."""
    from omegaconf import OmegaConf

    for saved in (run_dir / "config.yaml", run_dir / ".hydra" / "config.yaml"):
        if saved.is_file():
            return OmegaConf.load(saved)
    return OmegaConf.create()
