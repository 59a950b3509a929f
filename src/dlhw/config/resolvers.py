"""The OmegaConf resolvers that dlhw's configs use; importing this module registers them once.

- ``${dlhw_pid:}``: this process's id, so that two runs started in the same microsecond get
  different directories.
- ``${dlhw_gpus:ACCELERATOR,DEVICES[,PER_TASK]}``: GPUs (or tasks) per job in the submitit launchers.
- ``${dlhw_job_dir:NUM,OVERRIDE_DIRNAME}``: a sweep job's directory name.
- ``${dlhw_keys:}``: the keys of the composed config, each with what it must be and what it does
  (from the schema), for ``dlhw-train --help`` (conf/hydra/default.yaml's help template).
"""

from __future__ import annotations

import os
import re
from typing import Any

from omegaconf import OmegaConf

_MAX_NAME = 120  # characters of a job directory name after the job number


def gpus_per_job(accelerator: str, devices: Any, minimum: int = 0) -> int:
    """GPUs one job of a sweep asks the cluster for: the trainer's devices, 0 on CPU (at least minimum)."""
    if str(accelerator) not in ("gpu", "cuda", "auto"):
        return max(minimum, 0)
    if isinstance(devices, int) and devices > 0:
        return max(devices, minimum)
    if isinstance(devices, (list, tuple)) or (isinstance(devices, str) and "," in devices):
        return max(len([d for d in str(devices).strip("[]").split(",") if d.strip()]), minimum)
    return max(1, minimum)  # -1 / auto: one GPU unless trainer.devices says how many


def job_dir_name(num: Any, override_dirname: str) -> str:
    """``NUM`` or ``NUM_KEY=VALUE,...``: a job directory named by what its sweep varies (one path
    component: no ``+`` before a key, slashes and spaces become ``-``, long names are cut)."""
    name = re.sub(r"(^|,)[+~]+", r"\1", str(override_dirname or ""))  # +key=v: as the report shows it
    name = re.sub(r"[/\\\s]+", "-", name).strip("-.")
    name = re.sub(r"[^\w.,=+\-\[\]()@:%]", "", name)[:_MAX_NAME]
    return f"{num}_{name}" if name else str(num)


def help_keys(_root_: Any) -> str:
    """The keys of the config being composed (the ``--help`` of the options chosen), from the schema;
    ``$`` doubled for Hydra's help template (a string.Template)."""
    from dlhw.config.schema.table import help_keys as keys

    try:
        return keys(_root_).replace("$", "$$")
    except Exception as exc:  # help must not fail: say why the keys are missing
        return f"  (the keys could not be listed: {type(exc).__name__}: {exc})".replace("$", "$$")


if not OmegaConf.has_resolver("dlhw_pid"):
    OmegaConf.register_new_resolver("dlhw_pid", lambda: str(os.getpid()))
if not OmegaConf.has_resolver("dlhw_gpus"):
    OmegaConf.register_new_resolver("dlhw_gpus", gpus_per_job)
if not OmegaConf.has_resolver("dlhw_job_dir"):
    OmegaConf.register_new_resolver("dlhw_job_dir", job_dir_name)
if not OmegaConf.has_resolver("dlhw_keys"):
    OmegaConf.register_new_resolver("dlhw_keys", help_keys)
