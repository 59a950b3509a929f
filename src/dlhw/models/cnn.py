"""The CNN of cnn_mnist: conv -> (BatchNorm) -> ReLU -> max-pool -> FC -> ReLU -> (dropout) -> FC."""

from __future__ import annotations

import torch
from torch import nn

from dlhw.errors import ConfigValueError
from dlhw.models.layers import conv_block, conv_out, fc_block, layer_set
from dlhw.shapes import IMAGE, Takes, smallest_size


class CNN(nn.Module):
    """One conv stage ("same" padding, 2x2 max-pool), one hidden FC layer, a linear output.

    Args:
        in_shape: (C, H, W) of one input.
        num_classes: outputs of the last layer.
        filters: number of conv filters.
        kernel_size: conv filter size (odd sizes keep H x W before pooling).
        hidden: width of the hidden FC layer (0: the pooled features go straight to the output).
        dropout: drop probability after the hidden FC layer.
        batch_norm: BatchNorm after the conv and after the hidden FC layer.
        impl: "torch" layers or the hand-written "scratch" ones.
    """

    @staticmethod
    def takes(kernel_size: int = 5, **_) -> Takes:
        """Images large enough that the conv and the 2x2 pool leave 1x1."""
        pad = (kernel_size - 1) // 2
        size = smallest_size(lambda n: conv_out(n, kernel_size, padding=pad) // 2)
        return Takes(IMAGE, min_size=(size, size))

    def __init__(
        self,
        in_shape: tuple[int, int, int],
        num_classes: int,
        filters: int = 32,
        kernel_size: int = 5,
        hidden: int = 100,
        dropout: float = 0.0,
        batch_norm: bool = False,
        impl: str = "torch",
    ):
        super().__init__()
        if filters < 1 or kernel_size < 1 or hidden < 0:
            raise ConfigValueError(
                f"model.filters={filters}, model.kernel_size={kernel_size}, model.hidden={hidden}: "
                "filters and kernel_size must be >= 1 and hidden >= 0"
            )
        L = layer_set(impl)
        self.takes(kernel_size).check(in_shape, f"CNN(kernel_size={kernel_size})")
        c, h, w = in_shape
        pad = (kernel_size - 1) // 2
        self.features = nn.Sequential(
            *conv_block(L, c, filters, kernel_size, pad, batch_norm), L.MaxPool2d(2, 2)
        )
        h, w = conv_out(h, kernel_size, padding=pad) // 2, conv_out(w, kernel_size, padding=pad) // 2
        head: list[nn.Module] = [nn.Flatten()]
        width = filters * h * w
        if hidden > 0:
            head += fc_block(L, width, hidden, batch_norm, dropout)
            width = hidden
        head.append(L.Linear(width, num_classes))
        self.classifier = nn.Sequential(*head)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))
