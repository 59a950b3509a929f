"""``hydra/launcher=packed``: the jobs of a sweep that share a model and data train as one
stacked model. The work is in ``dlhw.sweep.packed``; this class is where Hydra finds launchers."""

from __future__ import annotations

from collections.abc import Sequence

from hydra.core.utils import JobReturn
from hydra.plugins.launcher import Launcher
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig


class PackedLauncher(Launcher):
    """Packs of runs in this process (see conf/hydra/launcher/packed.yaml)."""

    def __init__(self, pack_size: int | None = None) -> None:
        self.pack_size = pack_size
        self.config: DictConfig | None = None
        self.hydra_context: HydraContext | None = None
        self.task_function: TaskFunction | None = None

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction,
              config: DictConfig) -> None:
        self.config, self.hydra_context, self.task_function = config, hydra_context, task_function
        from dlhw.sweep.packed import keep_validated_configs

        keep_validated_configs(hydra_context.config_loader)  # the sweeper's validation composes each job once

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        from dlhw.sweep.packed import launch

        return launch(self, job_overrides, initial_job_idx)
