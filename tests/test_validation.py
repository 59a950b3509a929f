"""Config validation: bad values are refused before anything is loaded, with one clear message."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from dlhw.config.validate import config_problems, unknown_key_hint
from dlhw.run.runner import run_safely


def fails_with(make_cfg, tmp_path: Path, capsys, overrides: list[str]) -> str:
    """Run the overrides; assert exit status 2, nothing built; return the stderr message."""
    with pytest.raises(SystemExit) as info:
        run_safely(make_cfg(overrides))
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("dlhw: error: ") and "Traceback" not in err
    out = tmp_path / "run"
    assert not (out / "config.yaml").exists() and not (out / "checkpoints").exists()  # nothing ran
    return err


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ("optimizer.lr=-0.1", "optimizer.lr=-0.1: must be a number > 0"),
        ("optimizer.lr=fast", "optimizer.lr=fast: must be a number > 0"),
        ("optimizer.lr=0", "optimizer.lr=0: must be a number > 0"),
        ("model.dropout=1.0", "model.dropout=1.0: must be a number in [0, 1)"),
        ("data.val_fraction=1.5", "data.val_fraction=1.5: must be a number in [0, 1)"),
        ("data.batch_size=0", "data.batch_size=0: must be an integer >= 1"),
        ("data.batch_size=12.5", "data.batch_size=12.5: must be an integer >= 1"),
        ("trainer.max_epochs=0", "trainer.max_epochs=0: must be an integer >= 1 or -1"),
        ("data.loader=gpu", "data.loader=gpu: must be one of tensor, torch"),
        ("model.impl=numpy", "model.impl=numpy: must be one of torch, scratch"),
        ("trainer.precision=8-mixed", "trainer.precision=8-mixed: must be one of 32-true, 16-mixed"),
        ("trainer.strategy=ddpp", "trainer.strategy=ddpp: must be auto, one of Lightning's strategies (ddp"),
        ("threads=0", "threads=0: must be null or an integer >= 1"),
        ("optimizer=sgd optimizer.momentum=1.2", "optimizer.momentum=1.2: must be a number in [0, 1)"),
        ("init.scheme=he", "init.scheme=he: must be one of default, gaussian"),
        ("module.scheduler_interval=batch", "module.scheduler_interval=batch: must be one of epoch, step"),
        ("data.augment.hflip=sometimes", "data.augment.hflip=sometimes: must be true or false"),
        ("loss.label_smoothing=-0.1", "loss.label_smoothing=-0.1: must be a number in [0, 1)"),
        ("optimizer.betas=[0.9,1.5]", "optimizer.betas=[0.9, 1.5]: must be a list of 2 values, each a number in [0, 1)"),
        # the examples: wrong types and a negative jitter, reported like every other value
        ("data.augment.brightness=abc", "data.augment.brightness=abc: must be a number in [0, 1]"),
        ("data.augment.blur=yes", "data.augment.blur=yes: must be a number >= 0"),
        ("data.augment.brightness=-1", "data.augment.brightness=-1: must be a number in [0, 1]"),
        ("data.normalize=foo", "data.normalize=foo: must be one of standard, mean, none"),
        ("+optimizer.lrr=0.1", "optimizer.lrr=0.1: is not a key of optimizer (torch.optim.Adam); did you mean optimizer.lr?"),
    ],
)
def test_bad_value_is_named_with_what_is_allowed(make_cfg, tmp_path, capsys, override, expected) -> None:
    err = fails_with(make_cfg, tmp_path, capsys, override.split())
    assert expected in err


def test_every_problem_is_listed_in_one_message(make_cfg, tmp_path, capsys) -> None:
    err = fails_with(make_cfg, tmp_path, capsys, ["optimizer.lr=-1", "model.dropout=2", "data.batch_size=0"])
    assert err.count("dlhw: error:") == 1
    assert all(k in err for k in ("optimizer.lr=-1", "model.dropout=2", "data.batch_size=0"))


def test_batch_larger_than_training_split_static_and_after_loading(make_cfg, tmp_path, capsys) -> None:
    err = fails_with(make_cfg, tmp_path, capsys, ["data.max_train_samples=100", "data.batch_size=128"])
    assert "data.batch_size=128: must be <= 90, the training split of data.max_train_samples=100" in err
    with pytest.raises(SystemExit) as info:  # digits: 1438 train - 10% val = 1294 samples, known after loading
        run_safely(make_cfg(["data.batch_size=5000"], name="loaded"))
    assert info.value.code == 2
    assert "data.batch_size=5000: must be <= 1294, the samples of the training split" in capsys.readouterr().err


def test_min_epochs_above_max_epochs_and_gpu_without_gpu(make_cfg) -> None:
    problems = config_problems(make_cfg(["trainer.min_epochs=5", "trainer.max_epochs=2"]))
    assert problems == ["trainer.min_epochs=5: must be <= trainer.max_epochs (2): lower min_epochs or raise max_epochs"]
    import torch

    if not torch.cuda.is_available():
        problems = config_problems(make_cfg(["trainer=gpu"]))
        assert any("no usable CUDA GPU (use trainer=cpu" in p for p in problems)


def test_shipped_configs_pass_validation(make_cfg) -> None:
    """No false alarms: every experiment, and every option of the numeric groups, validates."""

    conf = Path(__file__).resolve().parents[1] / "conf"
    checked = 0
    for group in ("model", "optimizer", "scheduler", "loss", "init", "trainer"):
        for f in sorted((conf / group).glob("*.yaml")):
            problems = [p for p in config_problems(make_cfg([f"{group}={f.stem}"])) if "CUDA" not in p]
            assert problems == [], f"{group}={f.stem}: {problems}"
            checked += 1
    for f in sorted((conf / "experiment").glob("*.yaml")):
        problems = config_problems(make_cfg([f"experiment={f.stem}"]))
        left_to_the_user = "=???: must be set"  # resnet_folder: data.root is the user's image folder
        assert [p for p in problems if "CUDA" not in p and left_to_the_user not in p] == [], \
            f"experiment={f.stem}: {problems}"
        checked += 1
    assert checked > 30


def test_unknown_key_keeps_hydras_readable_message(tmp_path: Path) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env.pop("HYDRA_FULL_ERROR", None)
    proc = subprocess.run(
        [sys.executable, "-m", "dlhw.cli.train", "optimizer.lrr=0.1", f"hydra.run.dir={tmp_path / 'x'}"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 1
    assert "Could not override 'optimizer.lrr'" in proc.stderr and "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1] == (
        "dlhw: optimizer.lrr is not a key of this config; did you mean optimizer.lr?")


@pytest.mark.parametrize("overrides, expected", [
    (["optimizer=sgd", "optimizer.momentun=0.9"], "optimizer.momentun is not a key of this config; did you mean optimizer.momentum?"),
    (["model=lenett"], "model=lenett is not an option of model; did you mean model=lenet?"),
    (["modle=mlp"], "modle is not a key of this config; did you mean model?"),
    (["model=mlp", "model.hiden=[5]"], "did you mean model.hidden?"),
    (["-m", "model=lenet,mlpp"], "model=mlpp is not an option of model; did you mean model=mlp?"),
    (["zzz.qqq=1"], "zzz.qqq is not a key of this config (dlhw-train --cfg job prints every key)."),
])
def test_unknown_key_or_option_gets_the_nearest_valid_names(overrides, expected) -> None:
    hint = unknown_key_hint(overrides)
    assert hint.startswith("dlhw: ") and expected in hint and "\n" not in hint


def test_no_hint_when_every_key_exists() -> None:
    assert unknown_key_hint(["model=mlp", "model.hidden=[5]", "+trainer.fast_dev_run=1",
                             "arm=lenet/augment", "hydra.run.dir=x", "seed=3"]) is None
