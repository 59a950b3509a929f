"""Which layer classes a model is built from: torch.nn, or the hand-written dlhw.nn (impl=scratch)."""

from __future__ import annotations

from types import SimpleNamespace

from torch import nn

from dlhw.nn import IMPLS, layer_set

__all__ = ["IMPLS", "conv_block", "conv_out", "fc_block", "layer_set"]


def conv_block(
    L: SimpleNamespace, cin: int, cout: int, kernel: int, padding: int = 0, batch_norm: bool = False
) -> list[nn.Module]:
    """Conv (no bias when BatchNorm follows) -> optional BatchNorm2d -> ReLU."""
    layers = [L.Conv2d(cin, cout, kernel, padding=padding, bias=not batch_norm)]
    return layers + ([L.BatchNorm2d(cout)] if batch_norm else []) + [L.ReLU()]


def fc_block(
    L: SimpleNamespace, fin: int, fout: int, batch_norm: bool = False, dropout: float = 0.0
) -> list[nn.Module]:
    """Linear (no bias when BatchNorm follows) -> optional BatchNorm1d -> ReLU -> optional Dropout."""
    layers = [L.Linear(fin, fout, bias=not batch_norm)]
    layers += [L.BatchNorm1d(fout)] if batch_norm else []
    return layers + [L.ReLU()] + ([L.Dropout(dropout)] if dropout > 0 else [])


def conv_out(size: int, kernel: int, stride: int = 1, padding: int = 0) -> int:
    """Spatial output size of a convolution or pooling window."""
    return (size + 2 * padding - kernel) // stride + 1
