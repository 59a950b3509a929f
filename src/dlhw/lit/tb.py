"""Shared helpers of the dashboard callbacks: the TensorBoard writer, layer discovery, fixed batches."""

from __future__ import annotations

import logging
from pathlib import Path

import pytorch_lightning as pl
import torch
from torch import nn

log = logging.getLogger("dlhw")

# Layers whose output is a pre-activation (matched by class name too, so hand-written layers
# that do not subclass torch.nn count as well).
WEIGHT_LAYER_NAMES = ("Linear", "Conv1d", "Conv2d", "Conv3d")


def tb_writer(trainer: pl.Trainer):
    """The SummaryWriter of the run's TensorBoardLogger, or None (no logger, or not rank 0)."""
    if trainer.global_rank != 0:
        return None
    for logger in trainer.loggers:
        if isinstance(logger, pl.loggers.TensorBoardLogger):
            return logger.experiment
    return None


def run_dir(trainer: pl.Trainer) -> Path:
    """The run directory (the trainer's default_root_dir, set to paths.output_dir by the config)."""
    return Path(trainer.default_root_dir)


def short_name(name: str) -> str:
    """Parameter / module name without the Classifier's ``net.`` prefix."""
    return name[4:] if name.startswith("net.") else name


def is_weight_layer(module: nn.Module) -> bool:
    """Linear or convolution, by type or by class name."""
    if isinstance(module, (nn.Linear, nn.modules.conv._ConvNd)):
        return True
    return type(module).__name__ in WEIGHT_LAYER_NAMES


def is_conv2d(module: nn.Module) -> bool:
    weight = getattr(module, "weight", None)
    return (isinstance(module, nn.Conv2d) or type(module).__name__ == "Conv2d") and (
        isinstance(weight, torch.Tensor) and weight.dim() == 4
    )


def weight_layers(net: nn.Module) -> list[tuple[str, nn.Module]]:
    """(name, module) of every Linear / Conv layer in forward-definition order."""
    return [(short_name(n), m) for n, m in net.named_modules() if n and is_weight_layer(m)]


def first_conv(net: nn.Module) -> tuple[str, nn.Module] | None:
    return next(((short_name(n), m) for n, m in net.named_modules() if is_conv2d(m)), None)


def fixed_batch(trainer: pl.Trainer, part: str, n: int) -> torch.Tensor | None:
    """The first ``n`` inputs of the val or test loader (normalised, not augmented), on the CPU.

    The eval loaders are not shuffled, so the batch is the same at every call and in every run
    of a study that shares the data split. None when the datamodule has no such loader.
    """
    dm = trainer.datamodule
    if dm is None:
        return None
    parts = [part, "test" if part == "val" else "val"]
    for p in parts:
        try:
            loader = getattr(dm, f"{p}_dataloader")()
            xs, got = [], 0
            for batch in loader:
                x = batch[0] if isinstance(batch, (tuple, list)) else batch
                xs.append(x[: n - got].detach().cpu())
                got += xs[-1].shape[0]
                if got >= n:
                    break
        except (AttributeError, NotImplementedError, TypeError, RuntimeError):
            continue
        if xs:
            return torch.cat(xs)
    log.warning("dlhw: no %s data to draw a fixed batch from; the callback is skipped", part)
    return None
