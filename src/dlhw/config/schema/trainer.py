"""The groups around the training loop: ``trainer`` (the Lightning Trainer), ``callbacks`` and
``logger`` (collections of named entries, each switched off with ``null``)."""

from typing import Annotated, Any, ClassVar

from pydantic import AfterValidator, StringConstraints
from pydantic_core import PydanticCustomError

from dlhw.config.schema.base import Collection, Option, Problem, key
from dlhw.config.schema.types import (
    Count,
    Flag,
    Natural,
    NonNegative,
    Path,
    Rejects,
    Says,
    Unit,
    at_least,
    list_of,
    number,
    one_of,
    show,
    text,
)

ACCELERATORS = ("cpu", "gpu", "cuda", "mps", "tpu", "auto")
PRECISIONS = ("64", "32", "16", "bf16", "64-true", "32-true", "16-true", "bf16-true",
              "16-mixed", "bf16-mixed", "transformer-engine", "transformer-engine-float16")
METRICS = ("val/acc", "val/loss", "train/acc", "train/loss")


def strategies() -> list[str]:
    """auto and the strategies Lightning has registered (read when a config is checked)."""
    from pytorch_lightning.strategies import StrategyRegistry

    names = ["auto", *StrategyRegistry.available_strategies()]
    return sorted(set(names), key=names.index)


def _known_strategy(name: str) -> str:
    if name not in strategies():
        raise PydanticCustomError("choice", "not a strategy")
    return name


Strategy = Annotated[
    Annotated[str, AfterValidator(_known_strategy), Rejects(("not_a_strategy",))] | dict[str, Any],
    Says("auto, one of Lightning's strategies (ddp, ddp_spawn, fsdp, deepspeed, ...) or a section "
         "with _target_ (a Strategy object)"),
]


Devices = Annotated[
    Count | one_of(-1, "auto") | list_of(Natural, min_length=1)
    | Annotated[str, StringConstraints(pattern=r"^\s*\d+\s*(,\s*\d*\s*)*$")],
    Says("a number of devices >= 1, -1 (all), auto, or a list of device indices ([0, 1] or 0,1)"),
]
Batches = Annotated[None | Natural | Unit,
                    Says("null, a share in [0.0, 1.0] or a whole number of batches >= 0")]


class Trainer(Option):
    """pytorch_lightning.Trainer's arguments (logger and callbacks come from their own groups)."""

    targets: ClassVar = ("pytorch_lightning.Trainer", "lightning.pytorch.Trainer")

    default_root_dir: None | Path = key("where Lightning writes (the run directory)")
    accelerator: one_of(*ACCELERATORS) = key("cpu, gpu (cuda), mps, tpu or auto")
    devices: Devices = key("devices per node")
    num_nodes: Count = key("machines (DDP)")
    strategy: Strategy = key("auto, ddp, ddp_spawn, ... (Lightning's strategies)")
    precision: Annotated[one_of(*PRECISIONS, 64, 32, 16), Says(
        "one of 32-true, 16-mixed, bf16-mixed, 64-true, 16-true, bf16-true, transformer-engine, "
        "transformer-engine-float16 (or 64, 32, 16, bf16)")] = key("32-true, bf16-mixed, 16-mixed, ...")
    max_epochs: Count | one_of(-1) = key("epochs to train (-1: until max_steps)")
    min_epochs: None | Natural = key("train at least this many epochs")
    max_steps: Count | one_of(-1) = key("optimizer steps to train at most (-1: no limit)")
    min_steps: None | Natural = key("train at least this many steps")
    max_time: None | text("a duration DD:HH:MM:SS") = key("stop after this wall time")
    limit_train_batches: Batches = key("batches per training epoch (a share or a count)")
    limit_val_batches: Batches = key("batches per validation pass")
    limit_test_batches: Batches = key("batches of the test pass")
    limit_predict_batches: Batches = key("batches of a prediction pass")
    overfit_batches: Annotated[Natural | Unit, Says("a share in [0.0, 1.0] or a whole number of batches >= 0")] = key(
        "train and validate on this many training batches (a debugging aid)")
    val_check_interval: None | Count | number(0, 1, low_open=True) = key(
        "validate every this many training batches (or this share of an epoch)")
    check_val_every_n_epoch: None | Count = key("validate every N epochs")
    num_sanity_val_steps: at_least(-1) = key("validation batches before training (-1: all)")
    log_every_n_steps: Count = key("steps between logged training values (and the grad_norm dashboard)")
    enable_checkpointing: None | Flag = key("Lightning's checkpointing (the callbacks group sets it up)")
    enable_progress_bar: None | Flag = key("the progress bar")
    enable_model_summary: None | Flag = key("print the model summary")
    accumulate_grad_batches: Count = key("batches per optimizer step")
    gradient_clip_val: None | NonNegative = key("clip gradients (by norm unless gradient_clip_algorithm=value)")
    gradient_clip_algorithm: None | one_of("norm", "value") = key("norm or value")
    deterministic: None | Flag | one_of("warn") = key("deterministic algorithms (warn: warn only)")
    benchmark: None | Flag = key("cudnn picks the fastest kernels for the fixed input shapes")
    inference_mode: Flag = key("torch.inference_mode in validation and test")
    use_distributed_sampler: Flag = key("Lightning adds a DistributedSampler (loader=torch)")
    profiler: None | one_of("simple", "advanced", "pytorch", "xla") = key("Lightning's profiler")
    detect_anomaly: Flag = key("torch's anomaly detection (slow)")
    barebones: Flag = key("Lightning's barebones mode")
    sync_batchnorm: Flag = key("BatchNorm statistics over all ranks (DDP)")
    reload_dataloaders_every_n_epochs: Natural = key("rebuild the loaders every N epochs (0: never)")
    fast_dev_run: Flag | Natural = key("true or N: N batches of train, val and test, nothing written")

    def relations(self, prefix: str) -> list[Problem]:
        lo, hi = self.min_epochs, self.max_epochs
        if lo is not None and hi is not None and hi >= 1 and lo > hi:
            return [Problem(f"{prefix}min_epochs", show(lo),
                            f"must be <= {prefix}max_epochs ({hi}): lower min_epochs or raise max_epochs")]
        return []


# ----------------------------------------------------------------------------- callbacks
class Callback(Option):
    """A Lightning callback."""


class ModelCheckpoint(Callback):
    targets: ClassVar = ("pytorch_lightning.callbacks.ModelCheckpoint",
                         "lightning.pytorch.callbacks.ModelCheckpoint")

    dirpath: None | Path = key("where checkpoints go")
    filename: None | text("a file name pattern") = key("checkpoint file name pattern")
    monitor: None | one_of(*METRICS) = key("the metric that picks the best checkpoint")
    mode: one_of("min", "max") = key("max: a higher monitor is better")
    save_top_k: at_least(-1) = key("best checkpoints kept (-1: all)")
    save_last: None | Flag | one_of("link") = key("also keep last.ckpt (resume needs it)")
    auto_insert_metric_name: Flag = key("put the metric's name in the file name")
    save_weights_only: Flag = key("weights only (no optimizer state: resume restarts it)")
    every_n_epochs: None | Natural = key("epochs between checkpoints")
    every_n_train_steps: None | Natural = key("training steps between checkpoints")
    save_on_train_epoch_end: None | Flag = key("check at the end of the training epoch")
    verbose: Flag = key("log every save")


class LearningRateMonitor(Callback):
    targets: ClassVar = ("pytorch_lightning.callbacks.LearningRateMonitor",
                         "lightning.pytorch.callbacks.LearningRateMonitor")

    logging_interval: None | one_of("step", "epoch") = key("log the lr per step or per epoch")
    log_momentum: Flag = key("log the momentum too")
    log_weight_decay: Flag = key("log the weight decay too")


class RichProgressBar(Callback):
    targets: ClassVar = ("pytorch_lightning.callbacks.RichProgressBar",
                         "lightning.pytorch.callbacks.RichProgressBar")

    refresh_rate: Natural = key("steps between redraws (0: off)")
    leave: Flag = key("keep the bar of each finished epoch")


class ProgressBar(Callback):
    """dlhw.lit.progress.progress_bar: Rich's bar in a terminal, tqdm's in Jupyter."""

    targets: ClassVar = ("dlhw.lit.progress.progress_bar",)

    refresh_rate: Natural = key("steps between redraws (0: off)")


class EpochTimer(Callback):
    """Epoch times and samples per second (results.json); no keys."""

    targets: ClassVar = ("dlhw.lit.EpochTimer", "dlhw.lit.callbacks.EpochTimer")


class GradNorm(Callback):
    targets: ClassVar = ("dlhw.lit.diagnostics.GradNorm",)

    every_n_steps: None | Count = key("steps between logged norms (null: trainer.log_every_n_steps)")
    per_layer: Flag = key("a norm per parameter as well as the global one")


class WeightHistograms(Callback):
    targets: ClassVar = ("dlhw.lit.diagnostics.WeightHistograms",)

    every_n_epochs: Count = key("epochs between histograms")
    grads: Flag = key("histograms of the gradients too")


class FilterImages(Callback):
    targets: ClassVar = ("dlhw.lit.images.FilterImages",)

    every_n_epochs: Count = key("epochs between filter grids")


class FeatureMaps(Callback):
    targets: ClassVar = ("dlhw.lit.images.FeatureMaps",)

    every_n_epochs: Count = key("epochs between feature maps")
    index: Natural = key("the test image shown")
    max_channels: Count = key("channels shown per conv layer")


class SignalPropagation(Callback):
    targets: ClassVar = ("dlhw.lit.signal.SignalPropagation",)

    every_n_epochs: Count = key("epochs between measurements")
    num_samples: Count = key("samples of the fixed batch")


class LossSpikeDetector(Callback):
    targets: ClassVar = ("dlhw.lit.spikes.LossSpikeDetector",)

    factor: number(1, low_open=True) = key("a spike: loss > factor x the median of the last window steps")
    window: Count = key("steps of the running median")
    min_history: Count = key("steps seen before spikes count")
    flush_every: Count = key("steps between copies of the losses from the device")
    log_losses: Flag = key("every step's loss in loss_spikes.json")


class HParams(Callback):
    """TensorBoard's HPARAMS tab; no keys (the run passes the flattened config)."""

    targets: ClassVar = ("dlhw.lit.hparams.HParams",)


class Callbacks(Collection):
    """Callbacks by name (``callbacks.weights=null`` switches one off)."""

    item: ClassVar = Callback


# ----------------------------------------------------------------------------- logger
class Logger(Option):
    """A Lightning logger."""


class TensorBoardLogger(Logger):
    targets: ClassVar = ("pytorch_lightning.loggers.TensorBoardLogger",
                         "lightning.pytorch.loggers.TensorBoardLogger")

    save_dir: Path = key("the folder the event files go under (the run directory)")
    name: None | text("a folder name") = key("the event files' folder under save_dir (null: save_dir itself)")
    version: None | str | Natural = key("a subfolder under name (\"\": none)")
    default_hp_metric: Flag = key("log Lightning's placeholder hp_metric")
    log_graph: Flag = key("log the model graph")
    prefix: str = key("prefix of every logged name")


class Loggers(Collection):
    """Loggers by name (``logger.tensorboard=null`` switches it off)."""

    item: ClassVar = Logger

