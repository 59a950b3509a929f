"""The LeNet CNN of lenet_cifar10: two 5x5 conv + max-pool stages, then FC 120 -> 84 -> classes."""

from __future__ import annotations

import math

import torch
from torch import nn

from dlhw.errors import ConfigValueError
from dlhw.models.layers import conv_block, conv_out, fc_block, layer_set
from dlhw.shapes import IMAGE, Takes, smallest_size


def _features_size(size: int) -> int:
    """Height (or width) after the two conv5 + pool2 stages."""
    for _ in range(2):
        size = conv_out(size, 5) // 2
    return size


class LeNet(nn.Module):
    """conv5(6k) -> ReLU -> pool2 -> conv5(16k) -> ReLU -> pool2 -> FC 120 -> FC 84 -> FC classes.

    Args:
        in_shape: (C, H, W) of one input.
        num_classes: outputs of the last layer.
        width: multiplier k of the channel counts (6k, 16k).
        dropout: drop probability after each hidden FC layer (0 = none).
        norm: "batch" puts BatchNorm after every conv and FC layer except the last; null for none.
        impl: "torch" layers or the hand-written "scratch" ones (same parameter names and shapes).
    """

    @staticmethod
    def takes(**_) -> Takes:
        """Images of at least 16x16: two conv5 + pool2 stages must leave 1x1."""
        return Takes(IMAGE, min_size=(smallest_size(_features_size),) * 2)

    def __init__(
        self,
        in_shape: tuple[int, int, int],
        num_classes: int,
        width: float = 1,
        dropout: float = 0.0,
        norm: str | None = None,
        impl: str = "torch",
    ):
        super().__init__()
        if norm not in (None, "none", "batch"):
            raise ConfigValueError(f"model.norm={norm!r} is not one of null, none, batch")
        L = layer_set(impl)
        self.takes().check(in_shape, "LeNet")
        use_bn = norm == "batch"
        c, h, w = in_shape
        c1, c2 = max(1, math.ceil(6 * width)), max(1, math.ceil(16 * width))

        self.features = nn.Sequential(
            *conv_block(L, c, c1, 5, batch_norm=use_bn), L.MaxPool2d(2, 2),
            *conv_block(L, c1, c2, 5, batch_norm=use_bn), L.MaxPool2d(2, 2),
        )
        h, w = _features_size(h), _features_size(w)
        self.classifier = nn.Sequential(
            nn.Flatten(),
            *fc_block(L, c2 * h * w, 120, use_bn, dropout),
            *fc_block(L, 120, 84, use_bn, dropout),
            L.Linear(84, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))
