"""Every image/tabular preset and study composes and trains a few steps on tiny generated data."""

from __future__ import annotations

import itertools
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from dlhw.results import read_results
from dlhw.run.runner import run

TINY = [
    "trainer.max_epochs=1", "trainer.limit_train_batches=2", "trainer.limit_val_batches=1",
    "trainer.limit_test_batches=1", "trainer.enable_model_summary=false", "callbacks.progress_bar=null",
    "logger=none", "callbacks.lr_monitor=null",
]

PRESETS = {  # name -> (model target, data kind)
    "lenet_cifar10": ("dlhw.models.LeNet", "cifar"),
    "vgg11_cifar10": ("dlhw.models.VGG", "cifar"),
    "vgg11_small_cifar10": ("dlhw.models.VGG", "cifar"),
    "logistic_binary": ("dlhw.models.MLP", "pickle"),
    "svm_binary": ("dlhw.models.MLP", "pickle"),
    "softmax_mnist": ("dlhw.models.MLP", "mnist"),
    "mlp_mnist": ("dlhw.models.MLP", "mnist"),
    "cnn_mnist": ("dlhw.models.CNN", "mnist"),
    "resnet_folder": ("dlhw.models.ResNetSmall", "folder"),
}

STUDIES = {  # name -> (data kind, number of jobs)
    "binary_classifiers": ("pickle", 10),
    "mnist_classifiers": ("mnist", 9),
    "mnist_mlps": ("mnist", 4),  # RESULTS.md's studies: the arms of mnist_classifiers
    "mnist_cnns": ("mnist", 5),
    "lenet_cifar10_regularization": ("cifar", 4),
    "lenet_cifar10_init": ("cifar", 4),
    "lenet_cifar10_bn": ("cifar", 2),
    "lenet_cifar10_extras": ("cifar", 4),
    "lenet_cifar10_regularization_30ep": ("cifar", 4),  # RESULTS.md's 30-epoch studies
    "lenet_cifar10_extras_30ep": ("cifar", 4),
    "lenet_cifar10_width": ("cifar", 4),
}


def write_binary_pickle(path: Path, n: int = 1000) -> Path:
    """A tuple (X float64 (n, 20), y int64 in {0, 1}) like the course's data.pkl, linearly separable-ish."""
    rng = np.random.default_rng(0)
    x = rng.random((n, 20))
    y = (x[:, :5].sum(1) + 0.1 * rng.standard_normal(n) > 2.5).astype(np.int64)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        pickle.dump((x, y), f, protocol=2)
    return path


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory) -> dict[str, list[str]]:
    """data overrides per kind, pointing at tiny files in the real formats."""
    from conftest import write_cifar10, write_image_folder, write_mnist

    base = tmp_path_factory.mktemp("tiny")
    cifar = write_cifar10(base / "cifar", per_batch=20, n_test=20)
    mnist = write_mnist(base / "mnist", n_train=100, n_test=40)
    folder = write_image_folder(base / "folder", n_train=6, n_test=3)
    pkl = write_binary_pickle(base / "binary" / "data.pkl")
    return {
        "cifar": [f"data.root={cifar}", "data.batch_size=16"],
        "mnist": [f"data.root={mnist}", "data.batch_size=16"],
        "folder": [f"data.root={folder}", "data.size=32", "data.batch_size=4"],
        "pickle": [f"data.path={pkl}"],
    }


def compose_with_hydra(overrides: list[str]):
    from dlhw.config.compose import compose

    return compose(overrides, return_hydra_config=True)


def sweep_jobs(name: str) -> list[list[str]]:
    """The override lists of every job of a study, expanded as Hydra's basic sweeper does."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    params = compose_with_hydra([f"experiment={name}"]).hydra.sweeper.params
    assert params, f"{name} holds no hydra.sweeper.params"
    parsed = OverridesParser.create().parse_overrides([f"{k}={v}" for k, v in params.items()])
    axes = [[f"{o.get_key_element()}={v}" for v in o.sweep_string_iterator()] for o in parsed]
    return [list(job) for job in itertools.product(*axes)]


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_preset_runs_a_tiny_step(name: str, tiny_data, make_cfg, tmp_path: Path) -> None:
    target, kind = PRESETS[name]
    cfg = make_cfg([f"experiment={name}", *tiny_data[kind], *TINY])
    assert cfg.model._target_ == target and cfg.experiment_name == name
    run(cfg)
    res = read_results(tmp_path / "run")
    assert res["status"] == "completed" and res["test_acc"] is not None and res["global_steps"] == 2


def test_presets_carry_the_catalogue_settings() -> None:
    lenet = compose_with_hydra(["experiment=lenet_cifar10"])
    assert lenet.optimizer._target_ == "torch.optim.SGD"
    assert (lenet.optimizer.lr, lenet.optimizer.momentum, lenet.optimizer.weight_decay) == (0.001, 0.9, 0.0005)
    assert lenet.init.scheme == "gaussian" and lenet.init.std == 0.01
    assert lenet.scheduler._target_.endswith("StepLR") and lenet.scheduler.gamma == 0.1
    assert lenet.trainer.max_epochs >= 5 and lenet.data._target_ == "dlhw.data.CIFAR10Data"
    assert lenet.data.normalize == "mean"  # the pixel scale the catalogue's recipe needs
    jpeg = compose_with_hydra(["experiment=lenet_cifar10", "data=cifar10_jpeg"])
    assert jpeg.data._target_ == "dlhw.data.CIFAR10JpegData" and jpeg.data.batch_size == lenet.data.batch_size
    for name in ("vgg11_cifar10", "vgg11_small_cifar10"):
        vgg = compose_with_hydra([f"experiment={name}"])
        assert vgg.optimizer._target_ == "torch.optim.Adam" and vgg.optimizer.lr == 0.001
        assert vgg.data.batch_size == 100
    assert compose_with_hydra(["experiment=vgg11_small_cifar10"]).model.plan == "vgg11_small"
    svm = compose_with_hydra(["experiment=svm_binary"])
    assert svm.loss._target_ == "dlhw.nn.losses.BinaryHinge" and list(svm.model.hidden) == []
    assert (svm.data.n_train, svm.data.n_val) == (500, 250) and svm.data.standardize
    assert compose_with_hydra(["experiment=softmax_mnist"]).data.val_fraction == 0.1


@pytest.mark.parametrize("name", sorted(STUDIES))
def test_study_jobs_compose_and_the_first_runs(name: str, tiny_data, make_cfg, tmp_path: Path) -> None:
    kind, n_jobs = STUDIES[name]
    jobs = sweep_jobs(name)
    assert len(jobs) == n_jobs
    seen = set()
    for job in jobs:
        cfg = compose_with_hydra([f"experiment={name}", *tiny_data[kind], *job])
        # jobs of one study differ in what they sweep, never in data split or seed
        assert cfg.seed == 0 and cfg.data.get("split_seed", 0) == 0
        keys = ("model", "optimizer", "init", "loss")
        seen.add(str({k: cfg[k] for k in keys} | {"aug": cfg.data.augment, "norm": cfg.data.normalize}))
    assert len(seen) == n_jobs  # every job is a different configuration
    run(make_cfg([f"experiment={name}", *tiny_data[kind], *jobs[-1], *TINY]))
    assert read_results(tmp_path / "run")["status"] == "completed"


@pytest.mark.parametrize("case", ["lenet/augment", "lenet/adam", "lenet/rmsprop", "mnist/cnn_dropout_bn"])
def test_variants_run(case: str, tiny_data, make_cfg, tmp_path: Path) -> None:
    study, kind = ("lenet_cifar10_extras", "cifar") if case.startswith("lenet") else ("mnist_classifiers", "mnist")
    cfg = make_cfg([f"experiment={study}", f"arm={case}", *tiny_data[kind], *TINY])
    if case == "lenet/augment":
        assert cfg.data.augment.crop_padding == 4 and cfg.data.augment.hflip
    elif case != "mnist/cnn_dropout_bn":
        assert cfg.optimizer._target_.startswith("dlhw.optim.")
    run(cfg)
    assert read_results(tmp_path / "run")["status"] == "completed"


def test_study_is_one_multirun_command(tiny_data, tmp_path: Path) -> None:
    """`dlhw-train -m experiment=lenet_cifar10_bn` runs both jobs, each writing results.json."""
    out = tmp_path / "sweep"
    proc = subprocess.run(
        [sys.executable, "-m", "dlhw.cli.train", "-m", "experiment=lenet_cifar10_bn", "threads=1",
         *tiny_data["cifar"], *TINY, f"hydra.sweep.dir={out}"],
        cwd=tmp_path, capture_output=True, text=True, timeout=300, env={**_env(), "OMP_NUM_THREADS": "1"},
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = [read_results(out / name) for name in ("0_model.norm=null", "1_model.norm=batch")]
    assert all(r and r["status"] == "completed" for r in results)
    assert (out / "report.md").is_file()  # the study ends in its report
    assert [r["overrides"][0] for r in results] == ["model.norm=null", "model.norm=batch"]
    assert results[1]["params"] > results[0]["params"]


def _env() -> dict[str, str]:
    import os

    env = dict(os.environ)
    env.pop("HYDRA_FULL_ERROR", None)
    return env


@pytest.mark.parametrize(("preset", "gallery_command"), [
    ("lenet_cifar10_regularization_30ep",
     ["experiment=lenet_cifar10_regularization", "trainer.max_epochs=30", "scheduler.step_size=20"]),
    ("lenet_cifar10_extras_30ep",
     ["experiment=lenet_cifar10_extras", "trainer.max_epochs=30", "scheduler.step_size=20"]),
    ("mnist_mlps", ["experiment=mnist_classifiers"]),
    ("mnist_cnns", ["experiment=mnist_classifiers"]),
])
def test_results_presets_are_the_commands_that_made_the_gallery(preset: str, gallery_command: list[str]) -> None:
    """RESULTS.md's presets compose every job exactly as the overrides that produced its numbers."""
    from omegaconf import OmegaConf

    jobs = sweep_jobs(preset)
    for job in jobs:
        ours, theirs = (OmegaConf.to_container(compose_with_hydra([*head, *job]))
                        for head in ([f"experiment={preset}"], gallery_command))
        for cfg in (ours, theirs):
            cfg.pop("hydra")
            cfg.pop("experiment_name")
        assert ours == theirs, job
    if preset.startswith("mnist_"):
        kind = "mlp" if preset == "mnist_mlps" else "cnn"
        arms = {job[0] for job in sweep_jobs("mnist_classifiers")}
        assert {job[0] for job in jobs} == {a for a in arms if (kind == "cnn") == ("cnn" in a)}
