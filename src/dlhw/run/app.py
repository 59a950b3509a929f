"""dlhw-train inside this Python process (the Python API, notebooks).

Hydra composes conf/ and runs ``run_safely`` once, or sweeps it with the configured sweeper and
launcher, exactly as the console script does: the same validation, run directories (``.hydra/``,
``train.log``), TensorBoard logs, results.json and sweep report. What a run changes in the process
is put back afterwards (logging handlers, torch threads, environment variables, random states,
warning filters), so that a notebook kernel can call it again and get the same result.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from dlhw.config.overrides import composition_error, quote
from dlhw.errors import UserError

CONFIG_MODULE = "dlhw.conf"
JOB_NAME = "train"  # what dlhw-train's Hydra app is called (dlhw/cli/train.py)


class RunFailed(UserError):
    """A run that ended with dlhw-train's one message (already printed on stderr) and its exit
    status: a user error (2), a divergence (3)."""

    shown = True

    def __init__(self, message: str, exit_code: int):
        super().__init__(message)
        self.exit_code = exit_code


def run_in_process(overrides: list[str]) -> Path:
    """One run, as ``dlhw-train OVERRIDES``; its run directory. ``resume=RUN_DIR`` continues it."""
    from dlhw.run.resume import resume_argv
    from dlhw.run.runner import run_safely

    overrides = resume_argv(list(overrides))
    if "-m" in overrides:
        raise UserError("resume= names a sweep directory here: resume a sweep with dlhw.sweep(resume=...).")
    overrides = _with_mode(overrides, "RUN")
    started: list[bool] = []

    def task(cfg):
        started.append(True)
        return run_safely(cfg)

    with _hydra_app() as hydra:
        try:
            ret = hydra.run(config_name="train", task_function=task, overrides=overrides)
        except SystemExit as exc:
            raise _failure(exc) from None
        except Exception as exc:
            if started or not _is_composition_error(exc):
                raise
            raise composition_error(exc, overrides) from None
    return Path(ret.hydra_cfg.hydra.runtime.output_dir)


def sweep_in_process(overrides: list[str]) -> Path:
    """A sweep, as ``dlhw-train -m OVERRIDES`` (the launcher and sweeper of the config); its sweep
    directory, which holds the jobs and the report. ``resume=SWEEP_DIR`` continues one."""
    from hydra.types import RunMode

    from dlhw.run.resume import override_key, resume_argv
    from dlhw.run.runner import run_safely

    overrides = [o for o in resume_argv(list(overrides)) if o not in ("-m", "--multirun")]
    overrides = _with_mode(overrides, "MULTIRUN")
    with _hydra_app() as hydra:
        try:  # the sweep directory, resolved now (it names the time) and passed on
            cfg = hydra.compose_config("train", overrides, run_mode=RunMode.MULTIRUN,
                                       with_log_configuration=False)
            sweep_dir = Path(str(cfg.hydra.sweep.dir)).absolute()
            overrides = [o for o in overrides if override_key(o) != "hydra.sweep.dir"]
            overrides.append(f"hydra.sweep.dir={quote(str(sweep_dir))}")
            hydra.multirun(config_name="train", task_function=run_safely, overrides=overrides)
        except SystemExit as exc:
            raise _failure(exc) from None
        except Exception as exc:
            if not _is_composition_error(exc):
                raise
            raise composition_error(exc, overrides) from None
    return sweep_dir


def _with_mode(overrides: list[str], mode: str) -> list[str]:
    """``hydra.mode=MODE`` added as Hydra's command line adds it (a job reads it: is_multirun)."""
    from dlhw.run.resume import override_key

    if any(override_key(o) == "hydra.mode" for o in overrides):
        return overrides
    return [*overrides, f"hydra.mode={mode}"]


def _is_composition_error(exc: BaseException) -> bool:
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    return isinstance(exc, (HydraException, OmegaConfBaseException))


def _failure(exit_: SystemExit) -> BaseException:
    """What dlhw-train's exit became: an interrupt stays an interrupt; otherwise the message that
    was printed (the user error behind the exit, found in its context) and the exit status."""
    from dlhw.run.runner import find_user_error

    code = exit_.code if isinstance(exit_.code, int) else 1
    cause = exit_.__context__
    if code >= 128 or isinstance(cause, KeyboardInterrupt):
        return KeyboardInterrupt()
    user_error = find_user_error(cause) if cause is not None else None
    message = str(user_error or cause or f"the run ended with exit status {code}")
    return RunFailed(message, code)


@contextmanager
def _hydra_app() -> Iterator:
    """Hydra set up for dlhw's configs as dlhw-train's app, and the process state kept."""
    from hydra import initialize_config_module
    from hydra.core.global_hydra import GlobalHydra

    import dlhw.config.resolvers  # noqa: F401  (registers the resolvers the configs use)

    GlobalHydra.instance().clear()  # an earlier composition in this process
    with kept_process_state(), initialize_config_module(CONFIG_MODULE, version_base="1.3",
                                                        job_name=JOB_NAME):
        yield GlobalHydra.instance().hydra


@contextmanager
def kept_process_state() -> Iterator[None]:
    """Put back what a run changes in its process: root logging handlers and level (Hydra's
    console and train.log handlers are closed), environment variables (seed, threads, the sweep's
    keys), torch's thread count, the random states (Python, NumPy, torch) and warning filters."""
    import logging
    import random
    import warnings

    import numpy as np
    import torch

    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    env = dict(os.environ)
    threads = torch.get_num_threads()
    states = random.getstate(), np.random.get_state(), torch.get_rng_state()
    cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else None
    try:
        with warnings.catch_warnings():
            yield
    finally:
        for handler in root.handlers:
            if handler not in handlers:
                handler.close()
        root.handlers[:] = handlers
        root.setLevel(level)
        for key in set(os.environ) - set(env):
            del os.environ[key]
        os.environ.update(env)
        torch.set_num_threads(threads)
        random.setstate(states[0])
        np.random.set_state(states[1])
        torch.set_rng_state(states[2])
        if cuda is not None:
            torch.cuda.set_rng_state_all(cuda)
