"""Every combination of options trains a step on tiny data or is refused with the project's UserError.

The groups: data x model, data x loss, model.impl=scratch x model, init x model, optimizer x
scheduler, and every preset with each trainer option. A cell is a config as Hydra composes it
(the base config with the cell's group options swapped in); it trains one step (Lightning's
fast_dev_run) or raises UserError before a trainer is built. Each test lists every cell that did
neither. The refusals must be those the shape contracts predict (docs/compatibility.md).
"""

from __future__ import annotations

import copy
import json
import pickle
import runpy
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import compose_config, write_cifar10, write_image_folder, write_mnist
from omegaconf import DictConfig, OmegaConf, open_dict, read_write

from dlhw.config.compat import (
    model_takes,
    option_config,
    options,
    pair_mismatch,
)
from dlhw.errors import UserError

ROOT = Path(__file__).resolve().parents[1]
DATA, MODELS, LOSSES = options("data"), options("model"), options("loss")
FAST = {  # one training step and one validation batch; nothing logged
    "threads": 1, "trainer.fast_dev_run": 1, "trainer.enable_progress_bar": False,
    "trainer.enable_model_summary": False, "data.batch_size": 16, "data.eval_batch_size": 64,
    "data.max_train_samples": 64,
}
SEQUENCE_SIZES = {"data.train_size": 64, "data.val_size": 32, "data.test_size": 32}
FITS = {"image": "digits", "any": "digits", "sequence": "digits_rows", "per_step": "echo"}  # data per model


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> dict[str, dict]:
    """Overrides pointing every data option at tiny files in its real format."""
    root = tmp_path_factory.mktemp("data")
    write_mnist(root, n_train=80, n_test=20)
    write_mnist(root, folder="FashionMNIST", n_train=80, n_test=20)
    write_cifar10(root, per_batch=16, n_test=20)
    write_image_folder(root / "cifar10-jpeg", n_train=12, n_test=4)
    folder = write_image_folder(root / "folder", n_train=12, n_test=4)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(1000, 12)).astype(np.float32)
    (root / "binary.pkl").write_bytes(pickle.dumps((x, (x[:, 0] > 0).astype(np.int64))))
    return {
        **{name: {"data.root": str(root)} for name in DATA},
        "digits": {}, "digits_rows": {}, "image_folder": {"data.root": str(folder)},
        "pickle": {"data.path": str(root / "binary.pkl")},
        "temporal_order": SEQUENCE_SIZES, "echo": SEQUENCE_SIZES,
    }


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> DictConfig:
    """The default config, composed once (cells swap group options in, as Hydra would)."""
    return compose_config(["callbacks=none", "logger=none"], tmp_path_factory.mktemp("run"))


def set_value(cfg: DictConfig, key: str, value) -> None:
    """``key=value`` on a struct config: a key the config does not have fails, as in Hydra."""
    parent, _, leaf = key.rpartition(".")
    node = OmegaConf.select(cfg, parent) if parent else cfg
    if leaf not in list(node.keys()) and key not in FAST:
        raise KeyError(f"Could not override '{key}': the config has no such key")
    with open_dict(node):
        node[leaf] = value


def cell(base: DictConfig, tiny: dict, out: Path, groups: dict[str, str], values: dict | None = None) -> DictConfig:
    """The base config with ``groups`` options swapped in and the tiny-data and fast settings."""
    from hydra.core.hydra_config import HydraConfig

    cfg = copy.deepcopy(base)
    choices = HydraConfig.get().runtime.choices
    for group, name in groups.items():
        with open_dict(cfg):
            cfg[group] = option_config(group, name)
        with read_write(choices):
            choices[group] = name
    OmegaConf.set_struct(cfg, True)
    for key, value in {**tiny[choices["data"]], **FAST, **(values or {})}.items():
        set_value(cfg, key, value)
    with open_dict(cfg):
        cfg.paths.output_dir = str(out)
    return cfg


def outcome(cfg: DictConfig, fit: bool = True) -> tuple[str, str]:
    """("trains", "") after one step, ("refused", message) for a UserError, else ("crashed", why)."""
    from dlhw.config.validate import validate
    from dlhw.run.build import build
    from dlhw.run.runner import find_user_error

    try:
        validate(cfg)
        p = build(cfg)
        if not fit:
            return "builds", ""
        p.trainer.fit(p.module, datamodule=p.datamodule)
        # under ddp_spawn the ranks count the steps; the epoch's training loss comes back
        trained = p.trainer.global_step >= 1 or "train/loss" in p.trainer.callback_metrics
        return ("trains", "") if trained else ("crashed", "fit ended without a training step")
    except Exception as exc:
        user_error = find_user_error(exc)
        if isinstance(user_error, UserError):
            return "refused", str(user_error)
        return "crashed", f"{type(exc).__name__}: {exc}".splitlines()[0][:300]


SEEN: dict[str, tuple[str, str]] = {}  # outcome by config: a cell of two groups runs once


class Matrix:
    """Outcomes of the cells of one test, by name."""

    def __init__(self, base, tiny, tmp: Path):
        self.base, self.tiny, self.tmp, self.cells = base, tiny, tmp, {}

    def run(self, name: str, groups: dict[str, str], values: dict | None = None, fit: bool = True):
        try:
            cfg = cell(self.base, self.tiny, self.tmp / str(len(self.cells)), groups, values)
        except Exception as exc:  # an override the config does not have
            self.cells[name] = ("crashed", f"{type(exc).__name__}: {exc}")
            return self.cells[name]
        key = OmegaConf.to_yaml({k: v for k, v in cfg.items() if k != "paths"}) + str(fit)
        if key not in SEEN:
            SEEN[key] = outcome(cfg, fit)
        self.cells[name] = SEEN[key]
        return self.cells[name]

    def crashed(self) -> list[str]:
        return [f"{name}: {why}" for name, (what, why) in self.cells.items() if what == "crashed"]

    def refused(self) -> dict[str, str]:
        return {name: why for name, (what, why) in self.cells.items() if what == "refused"}


def data_for_model(model: str) -> str:
    """A tiny data set the model takes (its shape contract says which kind)."""
    takes = model_takes(option_config("model", model), resolve=False)
    return FITS["per_step" if takes.per_step else takes.kind]


def image_size(model: str) -> dict:
    """digits at the size the model needs (32 for the VGGs)."""
    return {"data.size": 32} if data_for_model(model) == "digits" else {}


def test_data_x_model(base, tiny, tmp_path) -> None:
    m = Matrix(base, tiny, tmp_path)
    for data in DATA:
        for model in MODELS:
            m.run(f"data={data} model={model}", {"data": data, "model": model})
    assert m.crashed() == [], "cells that neither train nor say why:\n" + "\n".join(m.crashed())
    expected = {f"data={d} model={mo}" for d in DATA for mo in MODELS if pair_mismatch(d, model=mo)}
    assert set(m.refused()) == expected
    for name, message in m.refused().items():
        data, model = name.split()
        assert data in message and model in message and "Use " in message, message
        assert "Error in call" not in message and "Error(" not in message, message
    assert len(m.cells) - len(expected) >= 30  # the allowed cells did train


def test_data_x_loss(base, tiny, tmp_path) -> None:
    m = Matrix(base, tiny, tmp_path)
    for data in DATA:
        model = "seq2seq_gru" if data == "echo" else "mlp"
        for loss in LOSSES:
            m.run(f"data={data} loss={loss}", {"data": data, "model": model, "loss": loss})
    assert m.crashed() == [], "cells that neither train nor say why:\n" + "\n".join(m.crashed())
    expected = {f"data={d} loss={lo}" for d in DATA for lo in LOSSES if pair_mismatch(d, loss=lo)}
    expected.add("data=cifar10_jpeg loss=hinge")  # declared 10 classes (the tiny folder has 2)
    expected.add("data=cifar10_jpeg loss=logistic")
    assert set(m.refused()) == expected
    for name, message in m.refused().items():
        data, loss = name.split()
        assert data in message and loss in message and "cross_entropy" in message, message


def test_binary_loss_on_a_folder_of_three_classes_is_refused_once_loaded(base, tmp_path) -> None:
    folder = write_image_folder(tmp_path / "three", classes=("a", "b", "c"), n_train=4, n_test=2)
    m = Matrix(base, {"image_folder": {"data.root": str(folder)}}, tmp_path)
    what, message = m.run("three classes", {"data": "image_folder", "model": "mlp", "loss": "logistic"})
    assert what == "refused" and "loss=logistic does not fit data=image_folder" in message
    assert "has 3" in message and "cross_entropy" in message


@pytest.mark.parametrize("group", ["model.impl", "init"])
def test_every_model_with(group: str, base, tiny, tmp_path) -> None:
    """model.impl=scratch x every model, every init x every model, each on data that fits it."""
    m = Matrix(base, tiny, tmp_path)
    for model in MODELS:
        groups = {"data": data_for_model(model), "model": model}
        if group == "init":
            for init in options("init"):
                m.run(f"init={init} model={model}", {**groups, "init": init}, image_size(model))
        else:
            m.run(f"model.impl=scratch model={model}", groups, {**image_size(model), "model.impl": "scratch"})
    assert m.crashed() == [], "cells that neither train nor say why:\n" + "\n".join(m.crashed())
    assert m.refused() == {}


def test_optimizer_x_scheduler(base, tiny, tmp_path) -> None:
    m = Matrix(base, tiny, tmp_path)
    for optimizer in options("optimizer"):
        for scheduler in options("scheduler"):
            m.run(f"optimizer={optimizer} scheduler={scheduler}",
                  {"model": "mlp", "optimizer": optimizer, "scheduler": scheduler})
    assert m.crashed() == [], "cells that neither train nor say why:\n" + "\n".join(m.crashed())
    assert m.refused() == {}
    assert len(m.cells) == len(options("optimizer")) * len(options("scheduler"))


def preset(name: str, out: Path) -> DictConfig:
    """A preset composed by Hydra (it sets several groups at once)."""
    return compose_config([f"experiment={name}", "callbacks=none", "logger=none"], out)


def test_presets_with_each_trainer(tiny, tmp_path) -> None:
    """Each preset trains a step on trainer=cpu; builds on ddp_cpu (trained in the slow test);
    gpu and ddp train where a GPU is, and are refused with a message where none is."""
    import torch

    gpu = torch.cuda.is_available()
    cells: dict[str, tuple[str, str]] = {}
    for name in options("experiment"):
        base = preset(name, tmp_path / name)
        m = Matrix(base, tiny, tmp_path / name)
        for trainer in options("trainer"):
            fit = trainer == "cpu" or (gpu and trainer == "gpu")
            cells[f"experiment={name} trainer={trainer}"] = m.run(trainer, {"trainer": trainer}, fit=fit)
    crashed = [f"{k}: {why}" for k, (what, why) in cells.items() if what == "crashed"]
    assert crashed == [], "cells that neither train nor say why:\n" + "\n".join(crashed)
    for key, (what, why) in cells.items():
        trainer = key.rsplit("=", 1)[1]
        if trainer == "cpu":
            assert what == "trains", key
        elif trainer == "ddp_cpu":
            assert what == "builds", key
        elif not gpu:
            assert what == "refused" and "no usable CUDA GPU" in why and "trainer=cpu" in why, key


@pytest.mark.slow
@pytest.mark.parametrize("name", options("experiment"))
def test_preset_trains_on_ddp_cpu(name: str, tiny, tmp_path) -> None:
    m = Matrix(preset(name, tmp_path), tiny, tmp_path)
    what, why = m.run("ddp_cpu", {"trainer": "ddp_cpu"})
    assert what == "trains", why


def test_docs_table_is_up_to_date(monkeypatch, capsys) -> None:
    compatibility_table = runpy.run_path(str(ROOT / "scripts" / "compatibility_table.py"))["compatibility_table"]
    assert (ROOT / "docs" / "compatibility.md").read_text() == compatibility_table(), \
        "docs/compatibility.md is out of date: run scripts/compatibility_table.py"
    monkeypatch.setattr(sys, "argv", ["compatibility_table.py", "--check"])
    with pytest.raises(SystemExit) as done:
        runpy.run_path(str(ROOT / "scripts" / "compatibility_table.py"), run_name="__main__")
    assert done.value.code == 0 and "up to date" in capsys.readouterr().out


@pytest.mark.parametrize("overrides, expected", [
    (["model=vgg11"], ["model=vgg11 does not fit data=digits", "32x32", "data.size=32", "cifar10", "lenet"]),
    (["loss=hinge"], ["loss=hinge does not fit data=digits", "two classes", "cross_entropy", "pickle"]),
    (["data=echo", "model=rnn"], ["model=rnn does not fit data=echo", "one target per step", "seq2seq_gru"]),
])
def test_refused_pair_is_one_line_and_writes_only_results(overrides, expected, make_cfg, capsys, tmp_path) -> None:
    from dlhw.run.runner import run_safely

    with pytest.raises(SystemExit) as done:
        run_safely(make_cfg([*overrides, "debug=fast"]))
    assert done.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and err.startswith("dlhw: error: ") and "Traceback" not in err
    assert all(e in err for e in expected), err
    assert "Error(" not in err and "Exception" not in err
    written = sorted(p.name for p in (tmp_path / "run").rglob("*") if p.is_file())
    assert written == ["results.json"]
    assert json.loads((tmp_path / "run" / "results.json").read_text())["status"] == "failed"
