"""``dlhw-train``: compose the config with Hydra and hand it to ``dlhw.runner.run_safely``."""

from __future__ import annotations

import os
import sys

import hydra
from omegaconf import DictConfig, OmegaConf

from dlhw.errors import UserError
from dlhw.runner import run, run_safely  # noqa: F401  (the public API of one run)

CONFIG_PATH = "pkg://dlhw.conf"

if not OmegaConf.has_resolver("dlhw_pid"):
    OmegaConf.register_new_resolver("dlhw_pid", lambda: str(os.getpid()))
if not OmegaConf.has_resolver("dlhw_gpus"):  # GPUs (or tasks) per job in the submitit launchers
    from dlhw.sweep import gpus_per_job

    OmegaConf.register_new_resolver("dlhw_gpus", gpus_per_job)


@hydra.main(version_base="1.3", config_path=CONFIG_PATH, config_name="train")
def _hydra_main(cfg: DictConfig) -> float | None:
    return run_safely(cfg)


def main() -> None:
    """Console entry point of ``dlhw-train`` (``resume=RUN_DIR`` becomes that run's own command)."""
    from dlhw.threads import prefer_passive_wait

    prefer_passive_wait()  # before torch loads: waiting OpenMP threads sleep instead of spinning
    from dlhw.resume import resume_argv

    try:
        sys.argv[1:] = resume_argv(sys.argv[1:])
    except UserError as exc:
        print(f"dlhw: error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    _hydra_main()


if __name__ == "__main__":
    main()
