"""``dlhw-train``: compose the config with Hydra and hand it to ``dlhw.run.runner.run_safely``."""

from __future__ import annotations

import sys

import hydra
from omegaconf import DictConfig

import dlhw.config.resolvers  # noqa: F401  (registers the resolvers the configs use)
from dlhw.errors import UserError
from dlhw.run.runner import run_safely

CONFIG_PATH = "pkg://dlhw.conf"


@hydra.main(version_base="1.3", config_path=CONFIG_PATH, config_name="train")
def _hydra_main(cfg: DictConfig) -> float | None:
    return run_safely(cfg)


def main() -> None:
    """Console entry point of ``dlhw-train`` (``resume=RUN_DIR`` becomes that run's own command)."""
    from dlhw.sweep.threads import prefer_passive_wait

    prefer_passive_wait()  # before torch loads: waiting OpenMP threads sleep instead of spinning
    from dlhw.run.resume import resume_argv

    try:
        sys.argv[1:] = resume_argv(sys.argv[1:])
    except UserError as exc:
        print(f"dlhw: error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    try:
        _hydra_main()
    except KeyboardInterrupt:  # outside a run (a run ends its own interruption): one line, 130
        from dlhw.sweep.callback import interrupted_message

        print(f"dlhw: {interrupted_message()}", file=sys.stderr)
        raise SystemExit(130) from None
    except SystemExit as exc:
        if exc.code == 1:  # Hydra's own error (e.g. an unknown key): add the nearest valid names
            from dlhw.config.validate import unknown_key_hint

            hint = unknown_key_hint(sys.argv[1:])
            if hint:
                print(hint, file=sys.stderr)
        raise


if __name__ == "__main__":
    main()
