"""Every sequence preset and every job of every sequence study composes and runs one tiny step."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import pytest

from dlhw.results import read_results
from dlhw.run.runner import run

TINY = [
    "trainer.max_epochs=1",
    "trainer.limit_train_batches=1",
    "trainer.limit_val_batches=1",
    "trainer.limit_test_batches=1",
    "trainer.enable_model_summary=false",
    "callbacks.progress_bar=null",
    "logger=none",
    "callbacks.lr_monitor=null",
]
GENERATED = ["data.train_size=32", "data.val_size=16", "data.test_size=16", "data.batch_size=16"]


def sweep_jobs(experiment: str) -> list[list[str]]:
    """The override lists a `-m experiment=NAME` run launches (the basic sweeper's product)."""
    from dlhw.config.compose import compose

    cfg = compose([f"experiment={experiment}"], return_hydra_config=True)
    params = cfg.hydra.sweeper.params or {}
    axes = [[f"{k}={v}" for v in str(values).split(",")] for k, values in params.items()]
    return [list(job) for job in itertools.product(*axes)]


def data_overrides(experiment: str, mnist_root: Path) -> list[str]:
    if experiment.startswith("rnn_rows_mnist"):
        return [f"data.root={mnist_root}", "data.batch_size=16"]
    return GENERATED


@pytest.mark.parametrize(
    ("experiment", "n_jobs"),
    [
        ("rnn_rows_mnist", 1),
        ("temporal_order", 1),
        ("echo", 1),
        ("rnn_rows_mnist_variants", 6),
        ("temporal_order_rnn_vs_lstm", 2),
        ("temporal_order_spikes", 2),
    ],
)
def test_preset_and_study_jobs_run_one_step(experiment, n_jobs, make_cfg, mnist_root, tmp_path) -> None:
    jobs = sweep_jobs(experiment)
    assert len(jobs) == n_jobs
    for i, job in enumerate(jobs):
        cfg = make_cfg([f"experiment={experiment}", *TINY, *data_overrides(experiment, mnist_root), *job],
                       name=f"job{i}")
        run(cfg)
        res = read_results(tmp_path / f"job{i}")
        assert res["status"] == "completed" and res["global_steps"] == 1
        assert 0.0 <= res["test_acc"] <= 1.0 and res["test_loss"] > 0


def test_catalogue_settings_of_the_presets(make_cfg) -> None:
    c = make_cfg(["experiment=rnn_rows_mnist"])
    assert (c.data.binarize, c.data.as_sequence, c.data.batch_size) == (True, True, 256)
    assert c.optimizer._target_ == "torch.optim.Adam" and c.optimizer.lr == 0.001
    assert c.trainer.max_epochs == 10
    t = make_cfg(["experiment=temporal_order"])
    assert t.optimizer._target_ == "torch.optim.RMSprop" and t.optimizer.lr == 0.001
    assert (t.data.batch_size, t.data.train_size, t.model.head) == (32, 992, "linear")
    s = make_cfg(["experiment=temporal_order_spikes"])
    assert (s.data.level, s.model.cell, s.model.hidden) == ("moderate", "lstm", 12)
    variants = {tuple(j) for j in sweep_jobs("rnn_rows_mnist_variants")}
    assert len(variants) == 6
    assert sweep_jobs("temporal_order_spikes") == [["arm=procedure/reference"], ["arm=procedure/clip_cosine"]]
    ref, fix = (make_cfg(["experiment=temporal_order_spikes", f"arm=procedure/{p}"], name=p)
                for p in ("reference", "clip_cosine"))
    assert ref.trainer.gradient_clip_val is None and not ref.scheduler
    assert fix.trainer.gradient_clip_val == 1.0 and "Cosine" in fix.scheduler._target_
    for key in ("model", "data", "optimizer", "seed"):  # the fix changes the procedure only
        assert ref[key] == fix[key]
    e = make_cfg(["experiment=echo"])
    assert e.data.delay == "variable" and e.model._target_ == "dlhw.models.Seq2SeqGRU"


def test_spike_study_records_every_step_loss_and_spikes(make_cfg, tmp_path) -> None:
    cfg = make_cfg(["experiment=temporal_order_spikes", *TINY, *GENERATED,
                    "trainer.limit_train_batches=2"])
    assert cfg.callbacks.spikes._target_ == "dlhw.lit.spikes.LossSpikeDetector"
    assert cfg.callbacks.grad_norm.every_n_steps == 1
    run(cfg)
    spikes = json.loads((tmp_path / "run" / "loss_spikes.json").read_text())
    assert spikes["count"] == 0 and spikes["epoch_counts"] == [0]  # two steps: no history yet


@pytest.mark.parametrize("source", ["digits_rows", "fashion_mnist_rows", "mnist_rows"])
def test_row_sequence_data_sets_feed_the_rnn(source, make_cfg, tmp_path) -> None:
    from conftest import write_mnist

    from dlhw.run.build import build

    root = write_mnist(tmp_path / "data", folder="FashionMNIST" if source.startswith("fashion") else "MNIST")
    extra = [] if source == "digits_rows" else [f"data.root={root}"]
    cfg = make_cfg([f"data={source}", "model=rnn", *TINY, "data.max_train_samples=64",
                    "data.batch_size=16", *extra])
    p = build(cfg)
    x, _ = next(iter(p.datamodule.train_dataloader()))
    assert p.datamodule.in_shape == (28, 28) and x.shape[1:] == (28, 28)
    assert set(x.unique().tolist()) <= {0.0, 1.0}  # binarised
    run(cfg)
    assert read_results(tmp_path / "run")["status"] == "completed"


def test_hand_written_gated_cell_trains_in_the_pipeline(make_cfg, tmp_path) -> None:
    run(make_cfg(["experiment=temporal_order", "model.cell=gated", *TINY, *GENERATED]))
    res = read_results(tmp_path / "run")
    assert res["status"] == "completed" and res["params"] == (2 * 12 * 8 + 144) + 52
