"""A sweep ends in its report: job directories named by what they vary, seeds aggregated, a
headline that ranks the configurations, HPARAMS with the swept keys first and typed values."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import compose_config

from dlhw.config.flatten import flatten_config, swept_keys
from dlhw.config.resolvers import job_dir_name
from dlhw.report.markdown import Report, summarize
from dlhw.results import read_results, write_results
from dlhw.sweep.callback import job_dirs, split_sweep_keys


def test_job_dir_name_is_one_readable_path_component() -> None:
    assert job_dir_name(3, "init=kaiming,seed=1") == "3_init=kaiming,seed=1"
    assert job_dir_name(0, "") == "0"
    assert job_dir_name(2, "+arm=lenet/augment,seed=1") == "2_arm=lenet-augment,seed=1"
    name = job_dir_name(1, "data.root=/a b/c,x=" + "y" * 300)
    assert "/" not in name and " " not in name and len(name) <= 122


def test_swept_and_fixed_keys_of_a_command_line() -> None:
    swept, fixed = split_sweep_keys(
        ["experiment=lenet_cifar10_init", "data.root=DATA", "seed=0,1,2", "+x=range(2)"],
        {"init": "gaussian,kaiming"})
    assert swept == ["seed", "x"] and fixed == ["experiment", "data.root"]
    swept, fixed = split_sweep_keys(["init=kaiming"], {"init": "gaussian,kaiming"})
    assert swept == ["init"] and fixed == []  # a preset's swept key set on the command line


def _fake_run(root: Path, name: str, overrides: list[str], **results) -> None:
    write_results(root / name, {"status": "completed", "overrides": overrides, **results})


def test_seed_repeats_are_one_row_with_mean_sd_and_n(tmp_path: Path) -> None:
    for i, (init, seed, val, test) in enumerate([
            ("gaussian", 0, 0.50, 0.48), ("gaussian", 1, 0.54, 0.52), ("gaussian", 2, 0.52, 0.56),
            ("kaiming", 0, 0.60, 0.61), ("kaiming", 1, 0.62, 0.63)]):
        _fake_run(tmp_path, f"{i}_init={init},seed={seed}", [f"init={init}", f"seed={seed}"],
                  best_val_acc=val, test_acc=test, test_loss=1.0)
    report = Report(tmp_path)
    groups = report.groups()
    assert list(groups) == ["init=gaussian", "init=kaiming"]
    test = summarize(groups["init=gaussian"], "test_acc")
    assert test.n == 3 and test.mean == pytest.approx(0.52) and test.sd == pytest.approx(0.04)
    assert (test.min, test.max) == (0.48, 0.56)
    assert test.spread(pct=True) == "52.00 ± 4.00% (48.00–56.00)"
    assert summarize(groups["init=gaussian"], "test_loss").spread(pct=False) == "1.0000 ± 0.0000 (1.0000–1.0000)"
    assert summarize([], "test_acc").spread(pct=True) == "—"
    md = report.write().read_text()
    head = md[md.index("## Headline"):md.index("## Configurations")]
    rows = [line for line in head.splitlines() if re.match(r"\| \d ", line)]
    assert rows[0].startswith("| 1 | init=kaiming | 2/2 | 61.00 ± 1.41% | 62.00 ± 1.41% | — |")
    assert rows[1].startswith("| 2 | init=gaussian | 3/3 | 52.00 ± 2.00% | 52.00 ± 4.00% | -10.00 pp |")
    assert "within the seed spread" not in head  # 9 points apart, sd 1-2 points
    seeds = md[md.index("## Configurations"):]
    assert "| init=gaussian | 3/3 | 52.00 ± 4.00% (48.00–56.00) | 1.0000 ± 0.0000 (1.0000–1.0000) | " in seeds


def test_headline_says_when_configurations_are_within_their_seed_spread(tmp_path: Path) -> None:
    for i, (lr, seed, val) in enumerate([("0.1", 0, 0.70), ("0.1", 1, 0.80),
                                         ("0.01", 0, 0.74), ("0.01", 1, 0.72)]):
        _fake_run(tmp_path, f"{i}", [f"optimizer.lr={lr}", f"seed={seed}"], best_val_acc=val,
                  test_acc=val)
    write_results(tmp_path / "4", {"status": "diverged", "overrides": ["optimizer.lr=10", "seed=0"],
                                   "error": "loss is nan at step 3"})
    md = Report(tmp_path).write().read_text()
    assert "`optimizer.lr=0.01` is within the seed spread of `optimizer.lr=0.1`" in md
    assert "| — | optimizer.lr=10 | 0/1 | — | — | diverged: loss is nan at step 3 |" in md


def test_hparams_lead_with_the_swept_keys_typed() -> None:
    cfg = {"model": {"_target_": "dlhw.models.MLP", "hidden": [8]}, "seed": 1, "channels_last": False,
           "init": {"_target_": "dlhw.nn.init.initialize", "scheme": "kaiming"},
           "optimizer": {"_target_": "torch.optim.SGD", "lr": 0.1, "nesterov": True}}
    flat = flatten_config(cfg, ["init=kaiming", "optimizer.nesterov=true", "seed=1"])
    assert list(flat)[:3] == ["init", "optimizer.nesterov", "seed"]
    assert flat["init"] == "kaiming" and flat["optimizer.nesterov"] is True and flat["seed"] == 1
    assert flat["channels_last"] is False and "init.scheme" in flat


def test_hparams_summaries_store_booleans_as_booleans() -> None:
    from tensorboard.plugins.hparams import api_pb2, plugin_data_pb2

    from dlhw.lit.hparams import hparams_summaries

    params = {"init": "kaiming", "optimizer.nesterov": True, "optimizer.lr": 0.1}
    exp, ssi, _ = hparams_summaries(params, ["init", "optimizer.nesterov"])
    data = plugin_data_pb2.HParamsPluginData.FromString(exp.value[0].metadata.plugin_data.content)
    types = {i.name: i.type for i in data.experiment.hparam_infos}
    assert [i.name for i in data.experiment.hparam_infos] == ["init", "optimizer.nesterov", "optimizer.lr"]
    assert types["optimizer.nesterov"] == api_pb2.DATA_TYPE_BOOL
    assert types["optimizer.lr"] == api_pb2.DATA_TYPE_FLOAT64
    start = plugin_data_pb2.HParamsPluginData.FromString(ssi.value[0].metadata.plugin_data.content)
    value = start.session_start_info.hparams["optimizer.nesterov"]
    assert value.WhichOneof("kind") == "bool_value" and value.bool_value is True


def _columns(exp) -> list[str]:
    """The HPARAMS tab's columns, in the order TensorBoard's hparams plugin shows them (it sorts
    the experiment summary's hparams by "differs", then by name)."""
    from tensorboard.plugins.hparams import backend_context, plugin_data_pb2

    data = plugin_data_pb2.HParamsPluginData.FromString(exp.value[0].metadata.plugin_data.content)
    backend_context._sort_and_reduce_to_hparams_limit(data.experiment)
    return [i.name for i in data.experiment.hparam_infos]


def test_the_hparams_columns_start_with_the_swept_keys_and_stay_short() -> None:
    """The experiment summary (the HPARAMS tab's columns) leads with the swept keys, even where
    their names sort last, then the main settings; every other leaf stays out of the columns
    but in the run's session data."""
    from tensorboard.plugins.hparams import plugin_data_pb2

    from dlhw.lit.hparams import hparams_summaries

    cfg = {"model": {"_target_": "dlhw.models.LeNet", "channels": [6, 16]}, "seed": 0,
           "channels_last": False, "init": {"_target_": "dlhw.nn.init.initialize", "scheme": "default"},
           "data": {"_target_": "dlhw.data.Digits", "batch_size": 64, "as_sequence": False,
                    "augment": {"blur": 0.0, "flip": False}},
           "optimizer": {"_target_": "torch.optim.Adam", "lr": 0.001, "weight_decay": 0.0},
           "trainer": {"max_epochs": 2, "precision": "32"}}
    swept = ["seed=0", "init=kaiming"]
    params = flatten_config(cfg, swept)
    exp, ssi, _ = hparams_summaries(params, swept_keys(swept))
    columns = _columns(exp)
    assert columns[:2] == ["init", "seed"]
    assert columns[2:] == ["data.batch_size", "model", "optimizer", "optimizer.lr", "trainer.max_epochs"]
    start = plugin_data_pb2.HParamsPluginData.FromString(ssi.value[0].metadata.plugin_data.content)
    assert {"channels_last", "data", "data.augment.blur", "model.channels", "optimizer.weight_decay"} <= set(start.session_start_info.hparams)


def test_the_run_selector_shows_the_job_name(tmp_path: Path) -> None:
    """TensorBoard names a run by its event folder relative to --logdir: a sweep's job writes
    its events in its own directory, so the selector shows `0_init=default`, not
    `0_init=default/tensorboard`; the report still reads runs of the old layout."""
    from dlhw.report.runs import event_dir
    from dlhw.run.runner import run

    sweep = tmp_path / "sweep"
    job = sweep / "0_init=default"
    run(compose_config(["threads=1", "model=mlp", "data.max_train_samples=100", "trainer.max_epochs=1",
                        "callbacks=minimal"], job))
    folders = {p.parent for p in sweep.rglob("events.out.tfevents.*")}
    assert [str(p.relative_to(sweep)) for p in folders] == ["0_init=default"]
    assert event_dir(job) == job
    old = tmp_path / "old_run"
    (old / "tensorboard").mkdir(parents=True)
    assert event_dir(old) == old / "tensorboard"


def test_a_sweep_ends_in_its_report(tmp_path: Path) -> None:
    """Four tiny MLP jobs (two seeds x a good and a bad validation fraction): named job
    directories, one report with a row per job, the failed jobs shown as failed, real PNGs."""
    sweep = tmp_path / "sweep"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env.pop("HYDRA_FULL_ERROR", None)
    proc = subprocess.run(
        [sys.executable, "-m", "dlhw.cli.train", "-m", "model=mlp", "seed=0,1",
         "data.val_fraction=0.2,1.5", "threads=1", "trainer.max_epochs=2", "data.max_train_samples=240",
         "callbacks.progress_bar=null", f"hydra.sweep.dir={sweep}"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    names = [p.name for p in job_dirs(sweep)]
    assert names == ["0_data.val_fraction=0.2,seed=0", "1_data.val_fraction=1.5,seed=0",
                     "2_data.val_fraction=0.2,seed=1", "3_data.val_fraction=1.5,seed=1"]
    assert [read_results(sweep / n)["status"] for n in names] == ["completed", "failed"] * 2
    assert f"Report: {sweep / 'report.md'}" in proc.stderr + proc.stdout
    md = (sweep / "report.md").read_text()
    rows = [line for line in md[md.index("## Runs"):].splitlines() if re.match(r"\| \d_", line)]
    assert len(rows) == 4 and sum("**failed**" in r for r in rows) == 2
    assert "| 1 | data.val_fraction=0.2 | 2/2 |" in md  # seeds aggregated in the headline
    for rel in re.findall(r"!\[[^\]]*\]\(([^)]+)\)", md):
        assert (sweep / rel).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (sweep / "report_files" / "val_acc.png").is_file() and (sweep / "report.html").is_file()
    assert "## Weights and gradients through training" in md  # grad_norm and weights dashboards
    assert (sweep / "report_files" / "grad_norm.png").is_file()
    # TensorBoard's run selector shows the same names as the folders
    assert list((sweep / names[0]).glob("events.out.tfevents.*"))


def test_time_per_epoch_against_the_swept_width(tmp_path: Path) -> None:
    for i, (width, seed, epoch_s) in enumerate([(1, 0, 10.0), (1, 1, 12.0), (2, 0, 20.0), (4, 0, 41.0)]):
        _fake_run(tmp_path, f"{i}", [f"model.width={width}", f"seed={seed}"], epoch_s=epoch_s,
                  test_acc=0.5, best_val_acc=0.5)
    (tmp_path / "report_files").mkdir()
    (tmp_path / "report_files" / "old_000.png").write_bytes(b"stale")
    md = Report(tmp_path).write().read_text()
    table = md[md.index("## Time per epoch against model.width"):]
    assert "| 1 | 11.00 ± 1.41 s |" in table and "| 2 | 20.00 s |" in table and "| 4 | 41.00 s |" in table
    assert (tmp_path / "report_files" / "epoch_time.png").read_bytes()[:4] == b"\x89PNG"
    assert not (tmp_path / "report_files" / "old_000.png").exists()  # an earlier report's figure


def test_headline_calls_equal_validation_accuracies_a_tie(tmp_path: Path) -> None:
    for i, (cell, seed) in enumerate([("rnn", 0), ("rnn", 1), ("lstm", 0), ("lstm", 1)]):
        _fake_run(tmp_path, f"{i}", [f"model.cell={cell}", f"seed={seed}"], best_val_acc=1.0,
                  test_acc=1.0)
    md = Report(tmp_path).write().read_text()
    assert "`model.cell=lstm` ties with `model.cell=rnn` on validation accuracy" in md
    assert "within the seed spread" not in md


def test_spikes_above_the_initial_loss_are_counted(tmp_path: Path) -> None:
    import json

    from torch.utils.tensorboard import SummaryWriter

    for i, losses in enumerate(([1.4, 0.5, 2.0, 0.4, 0.9], [1.4, 0.3, 0.8, 0.2, 0.3])):
        run = tmp_path / str(i)
        _fake_run(tmp_path, str(i), [f"arm=procedure/{'reference' if i == 0 else 'fix'}"],
                  best_val_acc=0.9, test_acc=0.9)
        with SummaryWriter(str(run / "tensorboard")) as writer:
            for step, loss in enumerate(losses):
                writer.add_scalar("train/loss_every_step", loss, step)
        spikes = [{"step": s, "loss": v, "median": 0.4} for s, v in enumerate(losses) if v > 0.8 and s]
        (run / "loss_spikes.json").write_text(json.dumps(
            {"factor": 2.0, "window": 50, "count": len(spikes), "spikes": spikes}))
    md = Report(tmp_path).write().read_text()
    assert "| arm=procedure/reference | 2 | 1 | 2.0000 | 2, 4 |" in md  # 2.0 > 1.4, 0.9 is not
    assert "| arm=procedure/fix | 0 | 0 | — | — |" in md
