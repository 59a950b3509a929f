"""Every option of every config group composes with the root config."""

from __future__ import annotations

from pathlib import Path

import pytest
from omegaconf import OmegaConf

CONF = Path(__file__).resolve().parents[1] / "conf"
SKIP_GROUPS = {"hydra", "paths"}  # framework groups with a single option, composed by every case


def group_options() -> list[tuple[str, str]]:
    out = []
    for group in sorted(p for p in CONF.iterdir() if p.is_dir() and not p.name.startswith("_")):
        if group.name in SKIP_GROUPS:
            continue
        for option in sorted(group.glob("*.yaml")):
            if not option.stem.startswith("_"):
                out.append((group.name, option.stem))
    return out


@pytest.mark.parametrize(("group", "option"), group_options())
def test_every_option_composes(group: str, option: str, make_cfg) -> None:
    cfg = make_cfg([f"{group}={option}"])
    container = OmegaConf.to_container(cfg, resolve=True, throw_on_missing=False)
    assert {"data", "model", "optimizer", "trainer", "seed"} <= set(container)
    assert "_target_" in container["model"] and "_target_" in container["data"]


def test_groups_named_by_the_design_exist() -> None:
    wanted = {"data", "model", "init", "loss", "optimizer", "scheduler", "trainer", "logger",
              "callbacks", "paths", "hydra", "experiment", "debug"}
    assert wanted <= {p.name for p in CONF.iterdir() if p.is_dir()}


def test_optimizer_and_scheduler_are_partials(make_cfg) -> None:
    cfg = make_cfg(["optimizer=sgd", "scheduler=step"])
    assert cfg.optimizer._partial_ and cfg.scheduler._partial_


def test_defaults_are_the_demo(make_cfg) -> None:
    cfg = make_cfg([])
    assert cfg.data._target_.endswith("DigitsData")
    assert cfg.model._target_.endswith("LeNet")
    assert cfg.seed == 0


def test_installed_package_ships_the_configs() -> None:
    from importlib.resources import files

    root = files("dlhw.conf")
    assert root.joinpath("train.yaml").is_file()
    assert root.joinpath("data").joinpath("digits.yaml").is_file()
