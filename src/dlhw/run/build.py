"""Build the objects of a run from its config: data, model, module, callbacks, loggers, trainer;
and the opt-in speed options applied to the network (channels_last, torch.compile).

The speed options are top-level keys of conf/train.yaml (``channels_last: false``, ``compile:
false``), because model configs are plain constructor arguments; that they are true or false is
checked with the rest of the config (dlhw.config.validate). Neither changes parameter names, so
checkpoints stay interchangeable between runs with and without them.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass

import pytorch_lightning as pl
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig
from torch import nn

from dlhw.config.flatten import flatten_config, swept_keys, swept_overrides
from dlhw.config.validate import check_data
from dlhw.errors import UserError
from dlhw.lit.callbacks import LastEveryEpoch
from dlhw.lit.guards import RunGuard
from dlhw.lit.hparams import HParams
from dlhw.lit.module import Classifier


@dataclass
class Pipeline:
    """Everything one run needs, built and wired together."""

    datamodule: pl.LightningDataModule
    net: object
    module: Classifier
    trainer: pl.Trainer
    callbacks: list[pl.Callback]


def instantiate_dict(section: DictConfig | None) -> list:
    """Instantiate every entry of a dict-of-configs section (callbacks, loggers) that has a target."""
    if not section:
        return []
    return [instantiate(c) for c in section.values() if c and "_target_" in c]


def build_model(cfg: DictConfig, datamodule) -> tuple[object, object]:
    """The loss and the network sized for the data (the loss decides the number of outputs)."""
    loss = instantiate(cfg.loss)
    outputs = loss.num_outputs(datamodule.num_classes)
    net = instantiate(cfg.model, in_shape=datamodule.in_shape, num_classes=outputs)
    if cfg.get("init"):
        instantiate(cfg.init)(net)
    return loss, net


def build(cfg: DictConfig) -> Pipeline:
    """Data -> model -> module -> trainer, all from ``_target_`` entries of the config."""
    datamodule = instantiate(cfg.data)
    datamodule.setup("fit")
    check_data(cfg, datamodule)
    loss, net = build_model(cfg, datamodule)
    apply_speed_options(net, cfg.get("channels_last", False), cfg.get("compile", False))
    module_cfg = cfg.get("module") or {}
    module = Classifier(
        net,
        loss,
        optimizer=instantiate(cfg.optimizer),
        scheduler=instantiate(cfg.scheduler) if cfg.get("scheduler") else None,
        **module_cfg,
    )
    callbacks = instantiate_dict(cfg.get("callbacks"))
    for cb in callbacks:
        if isinstance(cb, HParams):
            swept = swept_overrides()
            cb.params, cb.swept = flatten_config(cfg, swept), swept_keys(swept)
    has_val = getattr(datamodule, "val_idx", None) is None or datamodule.val_idx.numel() > 0
    if not has_val:  # nothing to monitor: keep only the last checkpoint
        for cb in callbacks:
            if isinstance(cb, pl.callbacks.ModelCheckpoint):
                cb.monitor = None
    loggers = instantiate_dict(cfg.get("logger"))
    if not loggers:  # LearningRateMonitor refuses a trainer without a logger
        callbacks = [cb for cb in callbacks if not isinstance(cb, pl.callbacks.LearningRateMonitor)]
    callbacks += [LastEveryEpoch(cb) for cb in callbacks
                  if isinstance(cb, pl.callbacks.ModelCheckpoint) and cb.save_last]
    callbacks.append(RunGuard(check_every=cfg.get("nan_check_every")))  # always: signals, NaN, RNG
    trainer = instantiate(cfg.trainer, callbacks=callbacks, logger=loggers or False)
    return Pipeline(datamodule, net, module, trainer, callbacks)


# ----------------------------------------------------------------------------- speed options
def _to_channels_last(module: nn.Module, args: tuple) -> tuple:
    """Forward pre-hook: a 4-D input batch in channels_last layout (a no-op when it already is)."""
    if args and isinstance(args[0], torch.Tensor) and args[0].dim() == 4:
        return (args[0].contiguous(memory_format=torch.channels_last), *args[1:])
    return args


def use_channels_last(net: nn.Module) -> nn.Module:
    """Store 4-D weights as NHWC and feed NHWC batches (faster convolutions on GPUs with tensor cores)."""
    net.to(memory_format=torch.channels_last)
    net.register_forward_pre_hook(_to_channels_last)
    return net


def compiler_missing() -> str | None:
    """Why torch.compile cannot run here (inductor on CPU builds C++ and needs a compiler), else None."""
    if not hasattr(nn.Module, "compile"):
        return f"torch {torch.__version__} has no nn.Module.compile (needs torch >= 2.2)"
    cxx = os.environ.get("CXX", "g++")
    if shutil.which(cxx) is None and shutil.which("c++") is None:
        return f"no C++ compiler ({cxx}) on PATH, which torch.compile needs to build CPU kernels"
    return None


def compile_net(net: nn.Module) -> nn.Module:
    """torch.compile the network in place (parameter names unchanged; the first steps are slow)."""
    why = compiler_missing()
    if why is not None:
        raise UserError(f"compile=true cannot work here: {why}. Install one or set compile=false.")
    net.compile()
    return net


def apply_speed_options(net: nn.Module, channels_last: bool = False, compile: bool = False) -> nn.Module:
    """channels_last first (compile then traces the NHWC layout), then compile."""
    if channels_last:
        use_channels_last(net)
    if compile:
        compile_net(net)
    return net
