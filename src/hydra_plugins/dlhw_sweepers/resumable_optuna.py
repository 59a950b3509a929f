"""The Optuna sweeper of hydra-optuna-sweeper with a study that survives an interruption.

The work is in ``dlhw.sweep.search``; this class is only where Hydra looks for sweepers. Importing
it needs neither Optuna nor the Optuna plugin (Hydra imports every plugin at start-up).
"""

from __future__ import annotations

from typing import Any

from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig


class ResumableOptunaSweeper(Sweeper):
    """hydra-optuna-sweeper's sweeper (same options), resumed from its storage when it has trials.

    Trials already in the study count towards ``n_trials``; a trial left unfinished (the search
    was interrupted during it) is run again in its own job directory, with its own parameters.
    """

    def __init__(self, **options: Any) -> None:
        from hydra_plugins.hydra_optuna_sweeper._impl import OptunaSweeperImpl

        self.sweeper = OptunaSweeperImpl(**options)

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        self.sweeper.setup(hydra_context=hydra_context, task_function=task_function, config=config)

    def sweep(self, arguments: list[str]) -> None:
        from dlhw.sweep.search import run_search

        return run_search(self.sweeper, arguments)
