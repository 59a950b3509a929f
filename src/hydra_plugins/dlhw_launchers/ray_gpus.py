"""``hydra/launcher=ray_gpus``: every job of a sweep a Ray task with 1/jobs_per_gpu of a GPU.

The work is in ``dlhw.sweep.ray_launcher``; this class is only where Hydra looks for launchers.
Importing it needs neither Ray nor Hydra's Ray plugin (Hydra imports every plugin at start-up).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from hydra.core.utils import JobReturn
from hydra.plugins.launcher import Launcher
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig


class RayGpusLauncher(Launcher):
    """Hydra's Ray launcher with GPU shares: ``jobs_per_gpu`` jobs on each GPU, CPUs split evenly."""

    def __init__(self, ray: DictConfig, jobs_per_gpu: int = 1, cpus_per_job: Any = None) -> None:
        self.ray_cfg = ray
        self.jobs_per_gpu = jobs_per_gpu
        self.cpus_per_job = cpus_per_job
        self.config: DictConfig | None = None
        self.hydra_context: HydraContext | None = None
        self.task_function: TaskFunction | None = None

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction,
              config: DictConfig) -> None:
        self.config, self.hydra_context, self.task_function = config, hydra_context, task_function

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        from dlhw.sweep.ray_launcher import launch

        return launch(self, job_overrides, initial_job_idx)
