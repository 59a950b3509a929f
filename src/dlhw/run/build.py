"""Build the objects of a run from its config: data, model, module, callbacks, loggers, trainer."""

from __future__ import annotations

from dataclasses import dataclass

import pytorch_lightning as pl
from hydra.utils import instantiate
from omegaconf import DictConfig

from dlhw.config.flatten import flatten_config, swept_keys, swept_overrides
from dlhw.config.validate import check_data
from dlhw.lit.callbacks import LastEveryEpoch
from dlhw.lit.guards import RunGuard
from dlhw.lit.hparams import HParams
from dlhw.lit.module import Classifier
from dlhw.run.speed import apply_speed_options


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
