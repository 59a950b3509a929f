"""The root of the configuration (conf/train.yaml): its own keys and one field per config group.

The groups that only set keys elsewhere (``experiment``, ``arm``, ``hparams_search``, ``debug``,
all ``@package _global_``) have no section of their own: their keys are checked where they land.
"""

from typing import Annotated

from dlhw.config.schema.base import Section, key
from dlhw.config.schema.data import Data
from dlhw.config.schema.models import Model
from dlhw.config.schema.trainer import METRICS, Callbacks, Loggers, Trainer
from dlhw.config.schema.training import Init, Loss, Optimizer, Scheduler
from dlhw.config.schema.types import Flag, Path, Says, Seed, at_least, one_of, text


class Module(Section):
    """The LightningModule's settings (dlhw.lit.Classifier)."""

    scheduler_interval: one_of("epoch", "step") = key("step the schedule per epoch or per step")
    monitor: one_of(*METRICS) = key("what scheduler=plateau watches")
    log_step_loss: Flag = key("the training loss of every step in TensorBoard (a sync per step)")


class Paths(Section):
    """Where things are (conf/paths/default.yaml)."""

    data_dir: Path = key("where data sets live (DLHW_DATA, else ./data)")
    log_root: Path = key("where run directories go (DLHW_OUTPUT, else outputs)")
    output_dir: Path = key("this run's directory (set by Hydra)")


class Train(Section):
    """conf/train.yaml: a run's own keys and its groups."""

    task_name: text("a name") = key("the task's name (Hydra's job name)")
    experiment_name: None | str = key("the chosen experiment preset (set by Hydra)")
    seed: Seed = key("seed of everything (always honoured, 0 included)")
    threads: None | at_least(1) = key("torch CPU threads (null: every core this job owns)")
    channels_last: Flag = key("NHWC weights and batches (faster convolutions on tensor-core GPUs)")
    compile: Flag = key("torch.compile the network (slow first steps; a C++ compiler on a CPU)")
    ckpt_path: None | text("a checkpoint path, or last") = key("start from this checkpoint file (last: this run's last.ckpt)")
    resume: Annotated[Flag | text(), Says("true, false, or the path of a run (or sweep) directory")] = key(
        "true: continue this run directory; RUN_DIR: continue that run")
    nan_check_every: None | at_least(1) = key("check the loss for nan/inf every N steps (null: every step on CPU, 25 on GPU)")
    optimized_metric: one_of(*METRICS) = key("what a run returns to a sweeper (never a test metric)")
    report: Flag = key("after a sweep: report.md, report.html and plots in the sweep directory")

    module: Module = key("the LightningModule's settings")
    data: Data = key("the data set (group data)")
    model: Model = key("the network (group model)")
    init: Init = key("weight initialisation (group init)")
    loss: Loss = key("the training loss (group loss)")
    optimizer: Optimizer = key("the optimizer (group optimizer)")
    scheduler: None | Scheduler = key("the learning-rate schedule (group scheduler; none: constant)")
    trainer: Trainer = key("the Lightning Trainer (group trainer)")
    logger: None | Loggers = key("loggers by name (group logger)")
    callbacks: None | Callbacks = key("callbacks by name (group callbacks)")
    paths: Paths = key("where things are")
