"""Every user error ends in exit status 2 and one message (no traceback); hostile files run nothing."""

from __future__ import annotations

import gzip
import io
import math
import os
import pickle
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
import torch

from dlhw.results import read_results
from dlhw.run.runner import run, run_safely

QUICK = ["trainer.max_epochs=1", "callbacks.progress_bar=null", "data.max_train_samples=100",
         "data.batch_size=30", "+trainer.limit_val_batches=1", "+trainer.limit_test_batches=1"]


def expect_error(make_cfg, capsys, overrides: list[str], name: str = "run") -> str:
    """Run through run_safely; assert exit 2 and one line on stderr without traceback; return it."""
    with pytest.raises(SystemExit) as info:
        run_safely(make_cfg(overrides, name=name))
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert err.count("dlhw: error: ") == 1 and "Traceback" not in err
    return err


def hostile_pickle(path: Path, marker: Path) -> Path:
    from _helpers_robust import Hostile

    path.write_bytes(pickle.dumps((Hostile(str(marker)), [0, 1])))
    return path


# ----------------------------------------------------------------------------- data files
def test_missing_data_names_the_root_and_the_fix(make_cfg, capsys, tmp_path) -> None:
    err = expect_error(make_cfg, capsys, ["data=mnist", f"data.root={tmp_path / 'empty'}"])
    assert "MNIST not found under data.root=" in err and "data=digits" in err
    assert read_results(tmp_path / "run")["status"] == "failed"


def test_corrupted_archive_is_refused_by_md5(make_cfg, capsys, tmp_path) -> None:
    raw = tmp_path / "data" / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for name in ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
                 "t10k-labels-idx1-ubyte"):
        (raw / f"{name}.gz").write_bytes(gzip.compress(b"\0\0\x08\x01not the real file"))
    err = expect_error(make_cfg, capsys, ["data=mnist", f"data.root={tmp_path / 'data'}"])
    assert "is corrupted or truncated (md5" in err and "train-images-idx3-ubyte.gz" in err


def test_truncated_idx_file_is_named(make_cfg, capsys, mnist_root) -> None:
    images = mnist_root / "MNIST" / "raw" / "train-images-idx3-ubyte"
    images.write_bytes(images.read_bytes()[:-100])
    err = expect_error(make_cfg, capsys, ["data=mnist", f"data.root={mnist_root}"])
    assert "train-images-idx3-ubyte is truncated or padded" in err


def test_unreadable_image_is_named(make_cfg, capsys, image_folder_root) -> None:
    bad = image_folder_root / "train" / "dog" / "003.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n broken")
    err = expect_error(make_cfg, capsys, ["data=image_folder", f"data.root={image_folder_root}", "data.size=16"])
    assert f"Cannot read image {bad}" in err and "Remove or replace that file" in err


# ----------------------------------------------------------------------------- hostile files
def test_pickle_that_would_call_os_system_is_refused_and_runs_nothing(make_cfg, capsys, tmp_path) -> None:
    marker = tmp_path / "pwned"
    path = hostile_pickle(tmp_path / "data.pkl", marker)
    err = expect_error(make_cfg, capsys, ["data=pickle", "model=mlp", f"data.path={path}"])
    assert "asks to call posix.system" in err and "Nothing from it was run" in err
    assert not marker.exists()


def test_cifar_batch_that_would_run_code_is_refused(make_cfg, capsys, cifar_root, tmp_path) -> None:
    marker = tmp_path / "pwned"
    hostile_pickle(cifar_root / "cifar-10-batches-py" / "data_batch_3", marker)
    err = expect_error(make_cfg, capsys, ["data=cifar10", f"data.root={cifar_root}"])
    assert "Refusing to load" in err and "data_batch_3" in err and not marker.exists()


def test_archive_escaping_its_folder_is_refused(make_cfg, capsys, tmp_path) -> None:
    archive = tmp_path / "cifar10-jpeg.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        data = b"overwritten"
        info = tarfile.TarInfo("../../escaped.txt")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    root = tmp_path / "root"
    err = expect_error(make_cfg, capsys, ["data=cifar10_jpeg", f"data.archive={archive}", f"data.root={root}"])
    assert "Refusing to unpack" in err and "'../../escaped.txt'" in err
    assert not (tmp_path / "escaped.txt").exists() and not (root / "escaped.txt").exists()


# ----------------------------------------------------------------------------- checkpoints
@pytest.fixture
def lenet_ckpt(make_cfg, tmp_path) -> Path:
    run(make_cfg(QUICK, name="source"))
    return tmp_path / "source" / "checkpoints" / "last.ckpt"


def test_checkpoint_of_another_model_is_refused(make_cfg, capsys, lenet_ckpt) -> None:
    err = expect_error(make_cfg, capsys, [*QUICK, "model=mlp", f"ckpt_path={lenet_ckpt}"])
    assert f"Checkpoint {lenet_ckpt} does not match the model of this config" in err
    assert "missing from the checkpoint" in err
    err = expect_error(make_cfg, capsys, [*QUICK, "model.width=2", f"ckpt_path={lenet_ckpt}"], name="wide")
    assert "has shape (6, 1, 5, 5) in the checkpoint but (12, 1, 5, 5) in this model" in err


def test_truncated_and_hostile_checkpoints_are_refused(make_cfg, capsys, lenet_ckpt, tmp_path) -> None:
    cut = tmp_path / "cut.ckpt"
    cut.write_bytes(lenet_ckpt.read_bytes()[:2000])
    err = expect_error(make_cfg, capsys, [*QUICK, f"ckpt_path={cut}"])
    assert f"Cannot read checkpoint {cut}" in err and "corrupted or truncated" in err
    from _helpers_robust import Hostile

    marker, evil = tmp_path / "pwned", tmp_path / "evil.ckpt"
    torch.save({"state_dict": {}, "payload": Hostile(str(marker))}, evil)
    err = expect_error(make_cfg, capsys, [*QUICK, f"ckpt_path={evil}"], name="evil")
    assert f"Refusing to load checkpoint {evil}" in err and not marker.exists()
    err = expect_error(make_cfg, capsys, [*QUICK, f"ckpt_path={tmp_path / 'none.ckpt'}"], name="none")
    assert "no such checkpoint file" in err


# ----------------------------------------------------------------------------- output, debug, sweeps
def test_unwritable_output_directory(make_cfg, capsys, tmp_path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    with pytest.raises(SystemExit) as info:
        run_safely(make_cfg(QUICK, name="a-file/run"))
    assert info.value.code == 2
    assert f"Cannot write to the output directory {blocker / 'run'}" in capsys.readouterr().err
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env.pop("HYDRA_FULL_ERROR", None)
    proc = subprocess.run([sys.executable, "-m", "dlhw.cli.train", f"hydra.run.dir={blocker}/x"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines() == [
        f"dlhw: error: Cannot write to the output directory {blocker}/x (Not a directory). Choose a "
        "writable place: hydra.run.dir=DIR (sweeps: hydra.sweep.dir=DIR) or the DLHW_OUTPUT variable."
    ]


def test_hydra_full_error_shows_the_traceback(make_cfg, monkeypatch, tmp_path) -> None:
    from dlhw.errors import DataNotFoundError

    monkeypatch.setenv("HYDRA_FULL_ERROR", "1")
    with pytest.raises(DataNotFoundError, match="MNIST not found"):
        run_safely(make_cfg(["data=mnist", f"data.root={tmp_path / 'empty'}"]))


def test_a_bug_in_a_constructor_keeps_its_traceback(make_cfg, capsys, tmp_path) -> None:
    """Hydra wraps whatever a constructor raises in an InstantiationException: that alone does not
    make it the user's mistake, so the bug is raised (traceback) and results.json says failed."""
    from hydra.errors import InstantiationException

    from dlhw.run.runner import find_user_error

    with pytest.raises(InstantiationException, match="injected constructor bug") as info:
        run_safely(make_cfg([*QUICK, "+callbacks.fault._target_=_helpers_robust.BrokenInit"]))
    assert find_user_error(info.value) is None
    assert "dlhw: error" not in capsys.readouterr().err
    res = read_results(tmp_path / "run")
    assert res.status == "failed" and "injected constructor bug" in res.error


def test_a_bad_value_refused_by_a_constructor_is_the_users(make_cfg, capsys, monkeypatch) -> None:
    """model.norm=bach is refused by the schema; were a key without a schema entry to let it
    through, LeNet refuses it with a ConfigValueError (a UserError and a ValueError): one line,
    exit 2 either way."""
    from dlhw.errors import ConfigValueError, UserError

    bad = [*QUICK, "model=lenet", "data=digits", "model.norm=bach"]
    err = expect_error(make_cfg, capsys, bad)
    assert "model.norm=bach: must be one of null, none, batch" in err
    monkeypatch.setattr("dlhw.config.validate.config_problems", lambda cfg: [])  # no schema
    err = expect_error(make_cfg, capsys, bad, name="constructor")
    assert "model.norm='bach' is not one of null, none, batch" in err
    assert issubclass(ConfigValueError, UserError) and issubclass(ConfigValueError, ValueError)


def test_a_target_that_does_not_import_is_refused_before_building(make_cfg, capsys) -> None:
    err = expect_error(make_cfg, capsys, [*QUICK, "model._target_=dlhw.models.Nope"])
    assert ("model._target_=dlhw.models.Nope: must be an importable class or function (cannot be "
            "imported" in err) and "hydra.utils" not in err


def test_a_bug_in_one_sweep_job_is_recorded_and_the_sweep_goes_on(make_cfg, tmp_path) -> None:
    value = run_safely(make_cfg([*QUICK, "hydra.mode=MULTIRUN", "+callbacks.fault._target_=_helpers_robust.RaiseAt"]))
    assert math.isnan(value)  # the job returns, so the launcher moves on to the next one
    res = read_results(tmp_path / "run")
    assert res["status"] == "failed" and res["error"] == "RuntimeError: injected bug"
