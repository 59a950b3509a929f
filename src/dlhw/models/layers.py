"""Which layer classes a model is built from: torch.nn, or the hand-written dlhw.nn (impl=scratch)."""

from __future__ import annotations

from types import SimpleNamespace

from torch import nn

IMPLS = ("torch", "scratch")


def layer_set(impl: str = "torch") -> SimpleNamespace:
    """Linear, Conv2d, ReLU, Dropout, BatchNorm1d/2d, MaxPool2d of the chosen implementation."""
    if impl == "scratch":
        from dlhw.nn import layer_set as scratch_layers

        return scratch_layers("scratch")
    if impl != "torch":
        raise ValueError(f"model.impl={impl!r} is not one of {IMPLS}")
    return SimpleNamespace(
        Linear=nn.Linear, Conv2d=nn.Conv2d, ReLU=nn.ReLU, Dropout=nn.Dropout,
        BatchNorm1d=nn.BatchNorm1d, BatchNorm2d=nn.BatchNorm2d, MaxPool2d=nn.MaxPool2d,
    )


def conv_out(size: int, kernel: int, stride: int = 1, padding: int = 0) -> int:
    """Spatial output size of a convolution or pooling window."""
    return (size + 2 * padding - kernel) // stride + 1
