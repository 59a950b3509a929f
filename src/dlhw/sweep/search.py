"""The Optuna search of a sweep (``hparams_search=NAME``): failed trials, and a study that resumes.

Failed trials. A job of a sweep that fails returns nan (see ``dlhw.run.runner.run_safely``). The
Optuna sweeper of hydra-optuna-sweeper (optuna < 3) cannot record nan: ``study.tell`` rejects the
value and the sweeper's own error path then crashes the whole search. ``FailedTrials`` is a Hydra
callback (``hydra.callbacks`` in conf/hparams_search/*.yaml) that marks such a job as failed, so
the sweeper records a FAIL trial and goes on (with ``max_failure_rate: 1.0``).

A study that resumes: it lives in SWEEP_DIR/optuna.db (SQLite); ``hydra.sweeper.storage`` of
conf/hparams_search/*.yaml is ``sqlite:///${hydra.sweep.dir}/optuna.db``. Before the sweeper's
loop, :func:`continue_study` reads what the study already holds: finished trials (complete or
failed) count towards ``n_trials`` and are not run again; a trial that was running when the
search stopped runs again with its own parameters in its own job directory (``resume=true``
continues it from its last checkpoint); new jobs are numbered after the existing trials, so job N
is trial N. ``dlhw-train -m hparams_search=NAME resume=SWEEP_DIR`` therefore continues an
interrupted search, and ``hydra.sweeper.n_trials=M`` with it extends a finished one.

hydra-optuna-sweeper 1.2 needs optuna < 3, whose SQLite storage needs SQLAlchemy < 2 (pinned in
the ``sweep`` extra).
"""

from __future__ import annotations

import logging
import math
import sys
from pathlib import Path
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


def _sqlite_file(storage: Any) -> Path | None:
    url = storage if isinstance(storage, str) else ""
    return Path(url[len("sqlite:///"):]) if url.startswith("sqlite:///") else None


def load_existing_study(storage: Any, study_name: str | None):
    """The study of an earlier run of this search, or None (new search, or storage in memory)."""
    import optuna

    if storage is None:
        return None
    db = _sqlite_file(storage)
    if db is not None:
        db.parent.mkdir(parents=True, exist_ok=True)  # SQLite creates the file, not its folder
        if not db.is_file():
            return None
    try:
        return optuna.load_study(study_name=study_name, storage=storage)
    except KeyError:  # the storage holds no study of this name
        return None


def continue_study(impl, arguments: list[str]) -> None:
    """Prepare hydra-optuna-sweeper's ``OptunaSweeperImpl`` to continue the study it will load.

    Also saves SWEEP_DIR/multirun.yaml (Hydra's basic sweeper does, the Optuna one does not):
    ``resume=SWEEP_DIR`` reads the search's command line from it.
    """
    from omegaconf import OmegaConf

    sweep_dir = Path(str(impl.config.hydra.sweep.dir))
    sweep_dir.mkdir(parents=True, exist_ok=True)
    OmegaConf.save(impl.config, sweep_dir / "multirun.yaml")
    study = load_existing_study(impl.storage, impl.study_name)
    if study is None:
        return
    trials = study.get_trials(deepcopy=False)
    unfinished = [t for t in trials if not t.state.is_finished()]
    log.info("Resuming the search %s: %d trial(s) in %s, %d unfinished; %d of n_trials=%d to go.",
             study.study_name, len(trials), impl.storage, len(unfinished),
             max(0, impl.n_trials - len(trials)), impl.n_trials)
    for frozen in unfinished:
        _run_again(impl, study, frozen, arguments)
    impl.n_trials = max(0, impl.n_trials - len(trials))
    impl.job_idx = len(trials)


def _run_again(impl, study, frozen, arguments: list[str]) -> None:
    """Run an unfinished trial with its parameters as job ``frozen.number`` and record the result."""
    import optuna
    from hydra_plugins.hydra_optuna_sweeper._impl import create_params_from_overrides

    impl._process_searchspace_config()
    distributions, fixed = create_params_from_overrides(impl._parse_sweeper_params_config() + list(arguments))
    for name in fixed:
        distributions.pop(name, None)
    trial = optuna.trial.Trial(study, frozen._trial_id)
    overrides = impl._configure_trials([trial], distributions, fixed)
    log.info("Trial %d was not finished: running it again (%s).", frozen.number, " ".join(overrides[0]))
    (job,) = impl.launcher.launch(overrides, initial_job_idx=frozen.number)
    try:
        value = job.return_value
        values = [float(v) for v in value] if isinstance(value, (list, tuple)) else [float(value)]
        study.tell(trial, values=values if len(values) > 1 else values[0])
    except Exception as exc:  # a failed job (FailedTrials) is a failed trial
        study.tell(trial, state=optuna.trial.TrialState.FAIL)
        log.warning("Failed experiment: %s", exc)


def run_search(impl, arguments: list[str]) -> Any:
    """The search: continue the study it finds (:func:`continue_study`), then the sweeper's loop.

    A Ctrl+C between two trials (outside a run, which handles its own) ends like every other
    interruption: one ``dlhw:`` line saying how to go on, exit status 130, no traceback. The
    trial asked for but not started stays unfinished in the study and runs first on resume.
    """
    try:
        continue_study(impl, arguments)
        return impl.sweep(arguments)
    except KeyboardInterrupt:
        sweep_dir = str(impl.config.hydra.sweep.dir)
        db = _sqlite_file(impl.storage)
        kept = (f"the finished trials are kept in {db}. Continue with: dlhw-train -m resume={sweep_dir}"
                if db is not None else "the study was not stored (hydra.sweeper.storage), so it "
                "cannot be continued; the finished jobs keep their results.")
        print(f"dlhw: search interrupted between trials; {kept}", file=sys.stderr)
        raise SystemExit(130) from None
