"""The one place that composes dlhw's configs outside a Hydra app (dlhw-eval, the unknown-key hint,
the benchmarks, the tests): conf/ (shipped as ``dlhw.conf``) with overrides, as dlhw-train would."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from omegaconf import DictConfig, open_dict

import dlhw.config.resolvers  # noqa: F401  (registers the resolvers the configs use)

CONFIG_MODULE = "dlhw.conf"


def compose(
    overrides: Sequence[str] = (),
    config_name: str = "train",
    return_hydra_config: bool = False,
    output_dir: str | Path | None = None,
) -> DictConfig:
    """conf/CONFIG_NAME.yaml composed with ``overrides`` (Hydra's errors propagate unchanged).

    ``return_hydra_config=True`` keeps the ``hydra`` section (``hydra.runtime.choices`` says
    which option of each group was chosen). ``output_dir`` prepares the config for a run in this
    process, writing into ``output_dir``: Hydra's config is set for this process (so that
    ``${hydra:...}`` resolves), ``experiment_name`` is the chosen preset, and the ``hydra``
    section is removed, as in the config a dlhw-train job receives.
    """
    from hydra import compose as hydra_compose
    from hydra import initialize_config_module
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.hydra_config import HydraConfig

    with_hydra = return_hydra_config or output_dir is not None
    GlobalHydra.instance().clear()  # a previous composition (or Hydra app) in this process
    with initialize_config_module(CONFIG_MODULE, version_base="1.3"):
        cfg = hydra_compose(config_name, overrides=list(overrides), return_hydra_config=with_hydra)
    if output_dir is None:
        return cfg
    HydraConfig.instance().set_config(cfg)
    with open_dict(cfg):
        cfg.paths.output_dir = str(output_dir)
        cfg.experiment_name = cfg.hydra.runtime.choices.get("experiment")
        if not return_hydra_config:
            del cfg.hydra
    return cfg
