"""Layers built by hand (hand-derived backward passes) and a switch between them and torch.nn."""

from __future__ import annotations

from types import SimpleNamespace

from dlhw.errors import ConfigValueError

from . import functional
from .modules import (
    BatchNorm1d,
    BatchNorm2d,
    Conv2d,
    Dropout,
    GatedRNN,
    Linear,
    MaxPool2d,
    ReLU,
)
from .recurrent import gated_rnn, rnn_tanh_sequence_loss

__all__ = [
    "BatchNorm1d",
    "BatchNorm2d",
    "Conv2d",
    "Dropout",
    "GatedRNN",
    "Linear",
    "MaxPool2d",
    "ReLU",
    "functional",
    "gated_rnn",
    "layer_set",
    "rnn_tanh_sequence_loss",
    "IMPLS",
    "LAYER_IMPLS",
]

IMPLS = ("torch", "scratch")  # model.impl and loss.impl: torch's arithmetic or dlhw.nn's
LAYER_IMPLS = IMPLS
_LAYERS = ("Linear", "Conv2d", "ReLU", "Dropout", "BatchNorm1d", "BatchNorm2d", "MaxPool2d")


def layer_set(impl: str = "torch") -> SimpleNamespace:
    """Layer classes (Linear, Conv2d, ReLU, Dropout, BatchNorm1d/2d, MaxPool2d) of one implementation.

    ``impl="torch"`` takes them from ``torch.nn``, ``impl="scratch"`` from ``dlhw.nn``.
    """
    if impl == "torch":
        import torch.nn as source
    elif impl == "scratch":
        from . import modules as source
    else:
        raise ConfigValueError(
            f"unknown layer implementation {impl!r}; allowed values: {', '.join(IMPLS)}"
        )
    return SimpleNamespace(**{name: getattr(source, name) for name in _LAYERS})
