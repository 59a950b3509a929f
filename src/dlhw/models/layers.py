"""Which layer classes a model is built from: torch.nn, or the hand-written dlhw.nn (impl=scratch)."""

from __future__ import annotations

from types import SimpleNamespace

from torch import nn

from dlhw.errors import ConfigValueError

IMPLS = ("torch", "scratch")


def layer_set(impl: str = "torch") -> SimpleNamespace:
    """Linear, Conv2d, ReLU, Dropout, BatchNorm1d/2d, MaxPool2d of the chosen implementation."""
    if impl == "scratch":
        from dlhw.nn import layer_set as scratch_layers

        return scratch_layers("scratch")
    if impl != "torch":
        raise ConfigValueError(f"model.impl={impl!r} is not one of {IMPLS}")
    return SimpleNamespace(
        Linear=nn.Linear, Conv2d=nn.Conv2d, ReLU=nn.ReLU, Dropout=nn.Dropout,
        BatchNorm1d=nn.BatchNorm1d, BatchNorm2d=nn.BatchNorm2d, MaxPool2d=nn.MaxPool2d,
    )


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
