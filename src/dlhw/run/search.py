"""Hyperparameter search support: failed jobs become failed Optuna trials instead of ending the search.

A job of a sweep that fails returns nan (see ``dlhw.run.runner.run_safely``). The Optuna sweeper of
hydra-optuna-sweeper (optuna < 3) cannot record nan: ``study.tell`` rejects the value and the
sweeper's own error path then crashes the whole search. ``FailedTrials`` is a Hydra callback
(``hydra.callbacks`` in conf/hparams_search/*.yaml) that marks such a job as failed, so the
sweeper records a FAIL trial and goes on (with ``max_failure_rate: 1.0``).
"""

from __future__ import annotations

import logging
import math
from typing import Any

from hydra.core.utils import JobReturn, JobStatus
from hydra.experimental.callback import Callback
from omegaconf import DictConfig

log = logging.getLogger("dlhw")


class TrialFailed(RuntimeError):
    """A job of the search produced no objective value (its results.json says why)."""


def _no_value(value: Any) -> bool:
    if value is None:
        return True
    try:
        return math.isnan(float(value))
    except (TypeError, ValueError):
        return True


class FailedTrials(Callback):
    """Turns a job that returned no objective (nan / None) into a failed job for the sweeper."""

    def on_job_end(self, config: DictConfig, job_return: JobReturn, **kwargs: Any) -> None:
        if job_return.status != JobStatus.COMPLETED or not _no_value(job_return._return_value):
            return
        try:
            where = str(config.paths.output_dir)
        except Exception:  # no paths section, or not resolvable here
            where = "the job's directory"
        error = TrialFailed(
            f"job {' '.join(job_return.overrides or [])} gave no objective value "
            f"(see {where}/results.json); recorded as a failed trial"
        )
        job_return.status = JobStatus.FAILED
        job_return.return_value = error
        log.warning("dlhw: %s", error)
