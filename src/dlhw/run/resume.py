"""Resuming runs and sweeps, and never overwriting finished work.

- ``dlhw-train resume=RUN_DIR`` re-runs RUN_DIR's own overrides (from its .hydra/hydra.yaml) in
  RUN_DIR with ``resume=true``; extra overrides on the command line replace the saved ones
  (``resume=RUN_DIR trainer.max_epochs=20`` trains on). ``dlhw-train -m resume=SWEEP_DIR`` does
  the same for a sweep (from SWEEP_DIR/multirun.yaml). See :func:`resume_argv`.
- ``resume=true`` (or ``ckpt_path=last``) in a run's own directory: a completed run is skipped,
  otherwise training continues from checkpoints/last.ckpt (or starts, if there is none).
  See :func:`plan_resume`.
- Without resume, a directory that already holds a run is refused rather than overwritten.
"""

from __future__ import annotations

import logging
import os
import pickle
import re
from dataclasses import dataclass, field
from pathlib import Path

from omegaconf import OmegaConf

from dlhw.errors import UnsafeFileError, UserError
from dlhw.results import RunResult, read_results

log = logging.getLogger("dlhw")

_NOT_A_PATH = {"true", "false", "null", "none", "yes", "no", "1", "0", ""}
_IGNORED_KEYS = {"resume", "ckpt_path"}  # keys that may differ between a run and its resume
_SAFE_VALUE = re.compile(r"^[\w./:@%+,\-~]*$")


def override_key(override: str) -> str:
    """The key an override sets: ``+a.b=1`` -> ``a.b``; ``hydra/launcher=joblib`` -> itself."""
    return override.split("=", 1)[0].lstrip("+~")


def comparable(overrides: list[str] | None) -> list[str]:
    """Overrides without the keys that say how to resume, sorted: what defines a job."""
    return sorted(o for o in overrides or [] if override_key(o) not in _IGNORED_KEYS)


def _quote(value: str) -> str:
    return value if _SAFE_VALUE.match(value) else "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def resume_argv(argv: list[str]) -> list[str]:
    """Rewrite ``resume=DIR`` on a command line into DIR's saved overrides + its dir + resume=true."""
    values = [a.split("=", 1)[1] for a in argv if override_key(a) == "resume" and "=" in a]
    if not values or values[-1].strip().lower() in _NOT_A_PATH:
        return argv
    target = Path(os.path.expanduser(values[-1]))
    if not target.is_dir():
        raise UserError(
            f"resume={values[-1]}: no such run directory. Give the directory of an earlier run "
            "(outputs/DATE/TIME) or sweep (outputs/multirun/DATE/TIME), or resume=true."
        )
    flags = [a for a in argv if a.startswith("-")]
    multirun = "-m" in flags or "--multirun" in flags or (target / "multirun.yaml").is_file()
    saved_file = target / "multirun.yaml" if multirun else target / ".hydra" / "hydra.yaml"
    if not saved_file.is_file():
        raise UserError(
            f"resume={values[-1]}: {saved_file} is missing, so this is not the directory of a dlhw "
            f"{'sweep' if multirun else 'run'} (a run holds .hydra/hydra.yaml, a sweep multirun.yaml)."
        )
    saved_cfg = OmegaConf.load(saved_file)
    saved = list(saved_cfg.hydra.overrides.hydra) + list(saved_cfg.hydra.overrides.task)
    dir_key = "hydra.sweep.dir" if multirun else "hydra.run.dir"
    user = [a for a in argv if not a.startswith("-") and override_key(a) != "resume"]
    user_keys = {override_key(a) for a in user}
    drop = {"resume", "hydra.run.dir", "hydra.sweep.dir", "hydra.job.name", "hydra.output_subdir"}
    if not multirun:  # one job of a sweep resumed alone: a single run in the job's directory
        drop.add("hydra.mode")
    kept = [o for o in saved if override_key(o) not in drop and override_key(o) not in user_keys]
    if multirun and "-m" not in flags and "--multirun" not in flags:
        flags = ["-m", *flags]
    return [*flags, *kept, *user, f"{dir_key}={_quote(str(target.resolve()))}", "resume=true"]


@dataclass
class ResumePlan:
    """What run() does in its directory: skip (already completed), or fit from ``ckpt_path``."""

    skip: bool = False
    ckpt_path: str | None = None
    previous: RunResult | None = field(default=None, repr=False)


def wants_resume(cfg) -> bool:
    """resume=true, ckpt_path=last, or a SLURM job that was requeued (preempted or timed out)."""
    resume = cfg.get("resume", False)
    if isinstance(resume, str) and resume.strip().lower() in _NOT_A_PATH:
        resume = resume.strip().lower() in ("true", "yes", "1")
    return bool(resume) or cfg.get("ckpt_path") == "last" or os.environ.get("SLURM_RESTART_COUNT", "0") not in ("", "0")


def plan_resume(cfg, run_dir: Path, overrides: list[str], multirun: bool) -> ResumePlan:
    """Decide from the run directory what this run does; refuse to overwrite a finished run."""
    resume = cfg.get("resume", False)
    if isinstance(resume, str) and resume.strip().lower() not in _NOT_A_PATH:
        if Path(resume).resolve() != run_dir.resolve():
            raise UserError(
                f"resume={resume} names another directory than this run's ({run_dir}). On the "
                f"command line use dlhw-train resume={resume}; in code set paths.output_dir to it "
                "and resume=true."
            )
    previous = read_results(run_dir)
    status = previous.status if previous is not None else None
    last = run_dir / "checkpoints" / "last.ckpt"
    ckpt = cfg.get("ckpt_path")
    if wants_resume(cfg):
        if status == "completed":
            if comparable(previous.overrides) == comparable(overrides):
                return ResumePlan(skip=True, previous=previous)
            if multirun:
                raise UserError(
                    f"{run_dir} holds a completed job with other overrides "
                    f"({' '.join(comparable(previous.overrides)) or 'none'}) than this one "
                    f"({' '.join(comparable(overrides)) or 'none'}): the sweep changed. Resume a "
                    "sweep with the same overrides, or start a new sweep directory."
                )
            log.info("The run in %s completed with other settings; continuing from its last checkpoint.", run_dir)
        if last.is_file():
            return ResumePlan(ckpt_path=str(last), previous=previous)
        log.info("Nothing to resume in %s (no checkpoints/last.ckpt): starting from the beginning.", run_dir)
        return ResumePlan(previous=previous)
    if ckpt:
        if not Path(ckpt).is_file():
            raise UserError(f"ckpt_path={ckpt}: no such checkpoint file. Give the path of a .ckpt file or last.")
        return ResumePlan(ckpt_path=str(ckpt), previous=previous)
    if status in ("completed", "interrupted", "diverged") or last.is_file():
        raise UserError(
            f"{run_dir} already holds a run (status {status or 'unknown'}, with checkpoints). "
            f"Continue it with `dlhw-train resume={run_dir}` (or resume=true in that directory), "
            "or choose a new hydra.run.dir; nothing was overwritten."
        )
    return ResumePlan(previous=previous)


def check_checkpoint(path: str | Path, module) -> None:
    """Refuse a checkpoint that is unreadable, unsafe or made for another model, before fitting."""
    import torch

    path = Path(path)
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise UserError(f"Checkpoint {path} does not exist.") from None
    except pickle.UnpicklingError as exc:
        raise UnsafeFileError(
            f"Refusing to load checkpoint {path}: it holds objects other than tensors and plain "
            f"containers ({str(exc).splitlines()[-1][:200]}), and loading it could run code. "
            "Nothing from it was run. Use a checkpoint written by dlhw."
        ) from None
    except Exception as exc:  # truncated zip, not a torch file...
        raise UserError(
            f"Cannot read checkpoint {path} ({type(exc).__name__}: {str(exc)[:200]}): the file is "
            "corrupted or truncated. Resume from another checkpoint or start a new run."
        ) from None
    if not isinstance(ckpt, dict) or not isinstance(ckpt.get("state_dict"), dict):
        raise UserError(f"{path} is not a Lightning checkpoint (no state_dict): give a .ckpt written by dlhw.")
    have, want = ckpt["state_dict"], module.state_dict()
    problems = [f"{k} missing from the checkpoint" for k in want if k not in have]
    problems += [f"{k} not in this model" for k in have if k not in want]
    problems += [
        f"{k} has shape {tuple(have[k].shape)} in the checkpoint but {tuple(v.shape)} in this model"
        for k, v in want.items()
        if k in have and hasattr(have[k], "shape") and tuple(have[k].shape) != tuple(v.shape)
    ]
    if problems:
        shown = "; ".join(problems[:4]) + (f"; and {len(problems) - 4} more" if len(problems) > 4 else "")
        raise UserError(
            f"Checkpoint {path} does not match the model of this config: {shown}. Use the model "
            "settings of the run that wrote it (its .hydra/overrides.yaml), or start a new run."
        )
