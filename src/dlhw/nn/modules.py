"""``torch.nn``-compatible modules whose forward runs the hand-written Functions.

Each layer subclasses its ``torch.nn`` counterpart only for the constructor, parameter/buffer
registration and default initialisation, so names, shapes, init and ``state_dict`` are identical
and load either way; ``forward`` is replaced by ``dlhw.nn.functional``.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from . import functional as SF
from .recurrent import gated_rnn

__all__ = [
    "Linear",
    "ReLU",
    "Dropout",
    "BatchNorm1d",
    "BatchNorm2d",
    "Conv2d",
    "MaxPool2d",
    "GatedRNN",
]


class Linear(nn.Linear):
    """Fully connected layer (weight (out, in), bias (out,)) with a hand-written backward."""

    def __init__(
        self, in_features: int, out_features: int, bias: bool = True, device=None, dtype=None
    ):
        super().__init__(in_features, out_features, bias=bias, device=device, dtype=dtype)

    def forward(self, x: Tensor) -> Tensor:
        return SF.linear(x, self.weight, self.bias)


class ReLU(nn.ReLU):
    """ReLU; ``inplace`` is accepted for signature compatibility and ignored."""

    def __init__(self, inplace: bool = False):
        super().__init__(inplace=False)

    def forward(self, x: Tensor) -> Tensor:
        return SF.relu(x)


class Dropout(nn.Dropout):
    """Inverted dropout active only in training mode; ``inplace`` is ignored."""

    def __init__(self, p: float = 0.5, inplace: bool = False):
        super().__init__(p=p, inplace=False)

    def forward(self, x: Tensor) -> Tensor:
        return SF.dropout(x, self.p, self.training)


class _BatchNormMixin:
    """torch's ``_BatchNorm.forward`` logic (momentum=None -> cumulative average) on scratch BN."""

    def forward(self, x: Tensor) -> Tensor:
        self._check_input_dim(x)
        factor = 0.0 if self.momentum is None else self.momentum
        if self.training and self.track_running_stats and self.num_batches_tracked is not None:
            self.num_batches_tracked.add_(1)
            factor = (
                1.0 / float(self.num_batches_tracked) if self.momentum is None else self.momentum
            )
        use_batch_stats = self.training or (self.running_mean is None and self.running_var is None)
        track = not self.training or self.track_running_stats
        return SF.batch_norm(
            x,
            self.running_mean if track else None,
            self.running_var if track else None,
            self.weight,
            self.bias,
            use_batch_stats,
            factor,
            self.eps,
        )


class BatchNorm1d(_BatchNormMixin, nn.BatchNorm1d):
    """Batch norm over (N, C) or (N, C, L) inputs with running_mean/var and num_batches_tracked."""


class BatchNorm2d(_BatchNormMixin, nn.BatchNorm2d):
    """Batch norm over (N, C, H, W) inputs with running_mean/var and num_batches_tracked."""


class Conv2d(nn.Conv2d):
    """2-D convolution (im2col) with torch's argument order; groups=1 and zero padding only."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | tuple[int, int],
        stride: int | tuple[int, int] = 1,
        padding: int | tuple[int, int] = 0,
        dilation: int | tuple[int, int] = 1,
        groups: int = 1,
        bias: bool = True,
        padding_mode: str = "zeros",
        device=None,
        dtype=None,
    ):
        if groups != 1 or padding_mode != "zeros" or isinstance(padding, str):
            raise ValueError("scratch Conv2d supports groups=1, integer zero padding only")
        super().__init__(
            in_channels,
            out_channels,
            kernel_size,
            stride,
            padding,
            dilation,
            groups,
            bias,
            padding_mode,
            device,
            dtype,
        )

    def forward(self, x: Tensor) -> Tensor:
        return SF.conv2d(x, self.weight, self.bias, self.stride, self.padding, self.dilation)


class MaxPool2d(nn.MaxPool2d):
    """Max pooling; stride defaults to kernel_size (dilation 1, floor mode only)."""

    def __init__(
        self,
        kernel_size: int | tuple[int, int],
        stride: int | tuple[int, int] | None = None,
        padding: int | tuple[int, int] = 0,
        dilation: int = 1,
        return_indices: bool = False,
        ceil_mode: bool = False,
    ):
        if dilation != 1 or return_indices or ceil_mode:
            raise ValueError("scratch MaxPool2d supports dilation=1, no indices, floor mode only")
        super().__init__(kernel_size, stride, padding, dilation, return_indices, ceil_mode)

    def forward(self, x: Tensor) -> Tensor:
        return SF.max_pool2d(x, self.kernel_size, self.stride, self.padding)


class GatedRNN(nn.Module):
    """Single-layer batch-first gated recurrent net; returns (outputs (N, T, H), h_n (1, N, H)).

    Cell: c_t = sigmoid(W_c x_t + W_h h_{t-1}), h_t = c_t * h_{t-1} + (1 - c_t) * W_x x_t.
    Weights are initialised U(-1/sqrt(H), 1/sqrt(H)) like torch's recurrent layers.
    """

    def __init__(self, input_size: int, hidden_size: int, device=None, dtype=None):
        super().__init__()
        kw = {"device": device, "dtype": dtype}
        self.input_size, self.hidden_size = input_size, hidden_size
        self.weight_c = nn.Parameter(torch.empty(hidden_size, input_size, **kw))
        self.weight_h = nn.Parameter(torch.empty(hidden_size, hidden_size, **kw))
        self.weight_x = nn.Parameter(torch.empty(hidden_size, input_size, **kw))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        bound = 1.0 / math.sqrt(self.hidden_size)
        for w in self.parameters():
            nn.init.uniform_(w, -bound, bound)

    def forward(self, x: Tensor, h0: Tensor | None = None) -> tuple[Tensor, Tensor]:
        if h0 is not None:
            h0 = h0.reshape(x.shape[0], self.hidden_size)
        out = gated_rnn(x, self.weight_c, self.weight_h, self.weight_x, h0)
        return out, out[:, -1].unsqueeze(0)

    def extra_repr(self) -> str:
        return f"{self.input_size}, {self.hidden_size}, batch_first=True"
