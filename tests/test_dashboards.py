"""Each dashboard callback writes what it promises: read back from the TensorBoard event files."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from conftest import compose_config
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from dlhw.config.flatten import flatten_config
from dlhw.lit.hparams import METRICS
from dlhw.lit.signal import SignalPropagation
from dlhw.lit.spikes import LossSpikeDetector
from dlhw.models import MLP, LeNet
from dlhw.nn.init import initialize


@pytest.fixture(scope="module")
def lenet_run(tmp_path_factory) -> tuple[Path, EventAccumulator, dict]:
    """Two epochs of LeNet on 300 digits with every dashboard on; the events read back."""
    from dlhw.run.runner import run

    out = tmp_path_factory.mktemp("dash") / "run"
    cfg = compose_config([
        "threads=1", "data.max_train_samples=300", "data.batch_size=50", "trainer.max_epochs=2",
        "trainer.log_every_n_steps=2", "callbacks.progress_bar=null", "trainer.enable_model_summary=false",
        "callbacks.feature_maps.every_n_epochs=1",
    ], out)
    run(cfg)
    ea = EventAccumulator(str(out),
                          size_guidance={"scalars": 0, "images": 0, "histograms": 0, "tensors": 0})
    ea.Reload()
    return out, ea, json.loads((out / "results.json").read_text())


def test_scalars_of_training(lenet_run) -> None:
    _, ea, results = lenet_run
    tags = set(ea.Tags()["scalars"])
    assert {"train/loss", "val/loss", "val/acc", "test/acc", "test/loss", "time/epoch_s",
            "time/samples_per_s", "lr-Adam"} <= tags
    steps = results["global_steps"]
    per_step = ea.Scalars("train/loss_every_step")
    assert [e.step for e in per_step] == list(range(1, steps + 1))
    for tag in ("train/loss", "train/acc", "val/loss", "val/acc"):  # once per epoch, not per step
        assert len(ea.Scalars(tag)) == 2, tag
    assert "train/loss_step" not in tags  # per-step logging is opt-in (module.log_step_loss)


def test_grad_norms_global_and_per_layer(lenet_run) -> None:
    _, ea, results = lenet_run
    glob = ea.Scalars("grad_norm/global")
    assert [e.step for e in glob] == list(range(0, results["global_steps"], 2))
    layer = [t for t in ea.Tags()["scalars"] if t.startswith("grad_norm/features.0")]
    assert layer and all(e.value > 0 for e in ea.Scalars(layer[0]))
    # the global norm is the root of the summed squares of the per-parameter norms
    per = [t for t in ea.Tags()["scalars"] if t.startswith("grad_norm/") and t != "grad_norm/global"]
    first = sum(ea.Scalars(t)[0].value ** 2 for t in per) ** 0.5
    assert first == pytest.approx(glob[0].value, rel=1e-4)


def test_weight_and_gradient_histograms(lenet_run) -> None:
    _, ea, _ = lenet_run
    hist = set(ea.Tags()["histograms"])
    assert "weights/features.0.weight" in hist and "grads/classifier.5.weight" in hist
    assert len(ea.Histograms("weights/features.0.weight")) == 3  # init + 2 epochs
    assert len(ea.Histograms("grads/features.0.weight")) == 2
    assert "weight_norm/classifier.1.weight" in ea.Tags()["scalars"]


def test_filter_and_feature_map_images(lenet_run) -> None:
    _, ea, _ = lenet_run
    images = set(ea.Tags()["images"])
    assert {"filters/features.0", "filters/final", "feature_maps/input", "feature_maps/features.0",
            "feature_maps/features.3"} <= images
    final = ea.Images("filters/final")[-1]
    assert final.width >= 24 * 6 and final.height >= 24  # 6 filters, upscaled tiles
    assert len(ea.Images("filters/features.0")) == 3


def test_signal_propagation_recorded(lenet_run) -> None:
    out, ea, _ = lenet_run
    signal = json.loads((out / "signal_propagation.json").read_text())
    assert signal["layers"] == ["features.0", "features.3", "classifier.1", "classifier.3", "classifier.5"]
    assert [r["epoch"] for r in signal["records"]] == [None, 1, 2]
    assert all(v > 0 for r in signal["records"] for v in r["variance"])
    assert len(ea.Scalars("signal/L00_features.0")) == 3
    assert "signal/variance_by_depth" in ea.Tags()["images"]


def test_spike_count_logged(lenet_run) -> None:
    out, ea, _ = lenet_run
    spikes = json.loads((out / "loss_spikes.json").read_text())
    counts = ea.Scalars("spikes/count")
    assert len(counts) == 2 and counts[-1].value == spikes["count"]


def test_hparams_tab_has_config_and_metric_columns(lenet_run) -> None:
    from tensorboard.plugins.hparams import plugin_data_pb2

    _, ea, results = lenet_run
    content = ea.PluginTagToContent("hparams")
    exp = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/experiment"])
    metrics = [m.name.tag for m in exp.experiment.metric_infos]
    assert metrics == list(METRICS)
    start = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/session_start_info"])
    hp = {k: v.string_value or v.number_value for k, v in start.session_start_info.hparams.items()}
    assert hp["model"] == "LeNet" and hp["optimizer"] == "Adam" and hp["data"] == "DigitsData"
    assert hp["optimizer.lr"] == pytest.approx(1e-3)
    assert not any(k.startswith(("callbacks", "paths", "logger")) for k in hp)
    assert not any(isinstance(v, str) and "dlhw." in v for v in hp.values())
    assert ea.Scalars("hparams/test_acc")[-1].value == pytest.approx(results["test_acc"])
    assert ea.Scalars("hparams/best_val_acc")[-1].value == pytest.approx(results["best_val_acc"])


def test_flatten_config_replaces_targets() -> None:
    flat = flatten_config({
        "model": {"_target_": "dlhw.models.MLP", "hidden": [32, 16]},
        "optimizer": {"_target_": "torch.optim.SGD", "_partial_": True, "lr": 0.1},
        "trainer": {"_target_": "pytorch_lightning.Trainer", "max_epochs": 3, "log_every_n_steps": 5},
        "callbacks": {"x": {"_target_": "a.B"}}, "seed": 0, "scheduler": None,
    })
    assert flat == {"model": "MLP", "model.hidden": "[32, 16]", "optimizer": "SGD",
                    "optimizer.lr": 0.1, "trainer.max_epochs": 3, "seed": 0,
                    "scheduler": "null"}


def _deep_mlp(scheme: str, impl: str = "torch") -> torch.nn.Module:
    torch.manual_seed(0)
    net = MLP((256,), 10, hidden=[256] * 6, impl=impl)
    initialize(net, scheme=scheme, std=0.01)
    return torch.nn.Sequential(net)


@pytest.mark.parametrize("impl", ["torch", "scratch"])
def test_signal_propagation_shows_the_theory(impl: str) -> None:
    """He keeps the pre-activation variance across depth; N(0, 0.01^2) shrinks it per layer."""
    x = torch.randn(512, 256)
    cb = SignalPropagation()
    names, he = cb.measure(_deep_mlp("kaiming", impl), x)
    _, gauss = cb.measure(_deep_mlp("gaussian", impl), x)
    assert len(names) == 7
    assert 0.3 < he[5] / he[0] < 3.0
    assert gauss[5] / gauss[0] < 1e-6  # each layer multiplies the variance by ~256 * 1e-4 / 2


def test_signal_propagation_on_scratch_cnn() -> None:
    net = torch.nn.Sequential(LeNet((1, 28, 28), 10, impl="scratch"))
    names, values = SignalPropagation().measure(net, torch.randn(8, 1, 28, 28))
    assert len(names) == 5 and all(v > 0 for v in values)


def test_spike_detector_counts_spikes_without_per_step_sync(tmp_path: Path) -> None:
    det = LossSpikeDetector(factor=2.0, window=10, min_history=5, flush_every=7, log_losses=False)
    trainer = SimpleNamespace(global_rank=0, loggers=[], global_step=0, default_root_dir=str(tmp_path))
    losses = [1.0] * 40
    losses[20] = 5.0  # a spike
    losses[30] = 1.5  # within the factor: not a spike
    losses[2] = 9.0   # before min_history: not judged
    for step, loss in enumerate(losses):
        trainer.global_step = step
        det.on_train_batch_end(trainer, None, {"loss": torch.tensor(loss)}, None, step)
        assert len(det._pending) < 7  # flushed every 7 steps, not every step
    det.on_train_epoch_end(trainer, None)
    assert det.count == 1 and det.spikes[0]["step"] == 20 and det.spikes[0]["median"] == 1.0
    saved = json.loads((tmp_path / "loss_spikes.json").read_text())
    assert saved["count"] == 1 and saved["epoch_counts"] == [1]


def test_per_step_loss_is_opt_in(tmp_path) -> None:
    from dlhw.run.runner import run

    out = tmp_path / "run"
    run(compose_config([
        "threads=1", "data.max_train_samples=200", "data.batch_size=50", "trainer.max_epochs=1",
        "trainer.log_every_n_steps=1", "callbacks=minimal", "module.log_step_loss=true",
    ], out))
    ea = EventAccumulator(str(out), size_guidance={"scalars": 0})
    ea.Reload()
    steps = json.loads((out / "results.json").read_text())["global_steps"]
    assert steps > 1 and [e.step for e in ea.Scalars("train/loss_step")] == list(range(steps))
    assert len(ea.Scalars("train/loss")) == 1


def test_epoch_metrics_restart_every_epoch(tmp_path) -> None:
    """The metrics logged once per epoch average that epoch only (reset between epochs)."""
    import pytorch_lightning as pl

    from dlhw.run.build import build

    p = build(compose_config(["threads=1", "data.max_train_samples=300", "data.batch_size=50",
                              "trainer.max_epochs=3", "callbacks=minimal", "logger=none"], tmp_path / "run"))
    seen = []

    class Counts(pl.Callback):
        def on_train_epoch_start(self, trainer, module):
            seen.append(("start", float(module.metrics["train_loss"].count)))

        def on_validation_epoch_end(self, trainer, module):
            seen.append(("val", float(module.metrics["val_loss"].count), float(module.metrics["train_loss"].count)))

    p.trainer.callbacks.append(Counts())
    p.trainer.fit(p.module, datamodule=p.datamodule)
    n_train, n_val = p.datamodule.train_idx.numel(), p.datamodule.val_idx.numel()
    assert seen == [("start", 0.0), ("val", n_val, n_train)] * 3


def test_plateau_scheduler_sees_the_epoch_metric(tmp_path) -> None:
    """val/loss, logged once at the end of validation, is there when Lightning steps the plateau
    scheduler (Lightning raises when the monitored metric is missing)."""
    from dlhw.run.runner import run

    out = tmp_path / "run"
    run(compose_config(["threads=1", "data.max_train_samples=200", "data.batch_size=50",
                        "trainer.max_epochs=2", "callbacks=minimal", "scheduler=plateau"], out))
    assert json.loads((out / "results.json").read_text())["global_steps"] > 0
