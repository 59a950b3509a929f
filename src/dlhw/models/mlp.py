"""Fully connected network; with no hidden layers it is a linear (softmax / logistic) classifier."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from dlhw.models.layers import fc_block, layer_set
from dlhw.shapes import ANY, Takes


class MLP(nn.Module):
    """Flatten -> [Linear -> (BatchNorm) -> ReLU -> (Dropout)] per hidden width -> Linear.

    Args:
        in_shape: shape of one input (flattened).
        num_classes: outputs (1 for the binary logistic / hinge losses).
        hidden: hidden widths; empty makes a linear classifier.
        dropout: drop probability after each hidden layer.
        batch_norm: BatchNorm1d after each hidden Linear.
        impl: "torch" or "scratch" layers.
    """

    @staticmethod
    def takes(**_) -> Takes:
        """Any input, flattened; one class per sample."""
        return Takes(ANY)

    def __init__(
        self,
        in_shape: Sequence[int],
        num_classes: int,
        hidden: Sequence[int] = (),
        dropout: float = 0.0,
        batch_norm: bool = False,
        impl: str = "torch",
    ):
        super().__init__()
        L = layer_set(impl)
        layers: list[nn.Module] = [nn.Flatten()]
        width = math.prod(in_shape)
        for h in hidden:
            layers += fc_block(L, width, h, batch_norm, dropout)
            width = h
        layers.append(L.Linear(width, num_classes))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)
