"""Every option of every config group composes with the root config."""

from __future__ import annotations

from pathlib import Path

import pytest
from omegaconf import OmegaConf

CONF = Path(__file__).resolve().parents[1] / "conf"
SKIP_GROUPS = {"hydra", "paths"}  # composed by every case; launchers have tests of their own


def group_options() -> list[tuple[str, str]]:
    """(group, option) for every YAML file below conf/ (nested groups such as arm/lenet too)."""
    out = []
    for option in sorted(CONF.rglob("*.yaml")):
        group = option.parent.relative_to(CONF).as_posix()
        if group != "." and group.split("/")[0] not in SKIP_GROUPS and not option.stem.startswith("_"):
            out.append((group, option.stem))
    return out


def root_groups() -> set[str]:
    defaults = OmegaConf.load(CONF / "train.yaml").defaults
    return {next(iter(d)) for d in defaults if isinstance(d, dict) or OmegaConf.is_dict(d)}


@pytest.mark.parametrize(("group", "option"), group_options())
def test_every_option_composes(group: str, option: str, make_cfg) -> None:
    prefix = "" if group in root_groups() else "+"  # groups only studies pull in are appended
    cfg = make_cfg([f"{prefix}{group}={option}"])
    container = OmegaConf.to_container(cfg, resolve=True, throw_on_missing=False)
    assert {"data", "model", "optimizer", "trainer", "seed"} <= set(container)
    assert "_target_" in container["model"] and "_target_" in container["data"]


def test_groups_named_by_the_design_exist() -> None:
    wanted = {"data", "model", "init", "loss", "optimizer", "scheduler", "trainer", "logger",
              "callbacks", "paths", "hydra", "experiment", "debug", "arm"}
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
