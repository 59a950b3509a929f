"""``hydra/launcher=packed``: the jobs of a sweep that share a model and data train as one
stacked model. The work is in ``dlhw.sweep.packed``; this class is where Hydra finds launchers."""

from __future__ import annotations

from collections.abc import Sequence

from hydra.core.utils import JobReturn
from hydra.plugins.launcher import Launcher
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig


class PackedLauncher(Launcher):
    """Packs of runs: in this process, or on a CPU side by side in forked ones (see
    conf/hydra/launcher/packed.yaml)."""

    def __init__(self, pack_size: int | None = None, processes: int | None = None) -> None:
        self.pack_size, self.processes = pack_size, processes
        self.config: DictConfig | None = None
        self.hydra_context: HydraContext | None = None
        self.task_function: TaskFunction | None = None
        self.ahead = self.preload = None

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction,
              config: DictConfig) -> None:
        self.config, self.hydra_context, self.task_function = config, hydra_context, task_function
        from dlhw.sweep.job_configs import ComposeAhead, Preload, keep_validated_configs

        # the sweeper composes each job once, in a helper, while this process loads the training code
        loader = hydra_context.config_loader
        if not hasattr(loader, "_dlhw_kept"):
            self.ahead = ComposeAhead.start(loader.load_sweep_config, config)
            self.preload = Preload("dlhw.sweep.packed") if self.ahead is not None else None
        keep_validated_configs(loader, self.ahead)

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        if self.ahead is not None:  # every job of the batch is composed: the helper's work is done
            self.ahead.close()
            self.preload.wait()
        from dlhw.sweep.packed import launch

        return launch(self, job_overrides, initial_job_idx)
