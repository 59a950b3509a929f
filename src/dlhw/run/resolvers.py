"""The OmegaConf resolvers that dlhw's configs use; importing this module registers them once.

- ``${dlhw_pid:}``: this process's id, so that two runs started in the same microsecond get
  different directories.
- ``${dlhw_gpus:ACCELERATOR,DEVICES[,PER_TASK]}``: GPUs (or tasks) per job in the submitit launchers.
- ``${dlhw_job_dir:NUM,OVERRIDE_DIRNAME}``: a sweep job's directory name.
"""

from __future__ import annotations

import os

from omegaconf import OmegaConf

from dlhw.run.sweep import gpus_per_job, job_dir_name

if not OmegaConf.has_resolver("dlhw_pid"):
    OmegaConf.register_new_resolver("dlhw_pid", lambda: str(os.getpid()))
if not OmegaConf.has_resolver("dlhw_gpus"):
    OmegaConf.register_new_resolver("dlhw_gpus", gpus_per_job)
if not OmegaConf.has_resolver("dlhw_job_dir"):
    OmegaConf.register_new_resolver("dlhw_job_dir", job_dir_name)
