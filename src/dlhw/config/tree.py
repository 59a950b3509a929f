"""Print the composed config as a Rich tree and save its resolved form in the run directory."""

from __future__ import annotations

from pathlib import Path

import rich
import rich.syntax
import rich.tree
from omegaconf import DictConfig, OmegaConf

ORDER = ("data", "model", "init", "loss", "optimizer", "scheduler", "trainer", "callbacks", "logger")


def print_config(cfg: DictConfig, save_to: Path | None = None) -> None:
    """Show each top-level section as a branch; write the resolved YAML to ``save_to``."""
    tree = rich.tree.Tree("CONFIG", style="dim", guide_style="dim")
    keys = [k for k in ORDER if k in cfg] + [k for k in cfg if k not in ORDER]
    for key in keys:
        value = cfg[key]
        text = OmegaConf.to_yaml(value, resolve=True) if isinstance(value, DictConfig) else str(value)
        tree.add(str(key)).add(rich.syntax.Syntax(text, "yaml"))
    rich.print(tree)
    if save_to is not None:
        save_to.write_text(OmegaConf.to_yaml(cfg, resolve=True))
