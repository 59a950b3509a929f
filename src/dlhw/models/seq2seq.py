"""Sequence to sequence: a recurrent net that emits one class per input step (the echo task, D2)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from dlhw.errors import UserError
from dlhw.models.layers import layer_set
from dlhw.models.rnn import check_sequence_shape, recurrent_layer
from dlhw.shapes import SEQUENCE, Takes


class Seq2SeqGRU(nn.Module):
    """GRU (or another cell) over (N, T, D) -> a head at every step -> logits (N, T, C).

    Unidirectional, so the output at step t depends only on steps <= t: padding after the end of a
    shorter sequence cannot change its outputs.

    Args:
        in_shape: (T, D) of one sequence (T is not fixed; any length runs).
        num_classes: classes per step.
        hidden: recurrent width.
        layers: stacked recurrent layers.
        cell: "gru" (default), "lstm", "rnn" or "gated".
        head_hidden: width of a ReLU hidden layer in the per-step head; 0 = a linear head.
        impl: "torch" or "scratch" (hand-written) layers of the per-step head.
    """

    @staticmethod
    def takes(**_) -> Takes:
        """Sequences T x D; one class per step."""
        return Takes(SEQUENCE, per_step=True)

    def __init__(
        self,
        in_shape: Sequence[int],
        num_classes: int,
        hidden: int = 128,
        layers: int = 1,
        cell: str = "gru",
        head_hidden: int = 0,
        impl: str = "torch",
    ):
        super().__init__()
        _, d = check_sequence_shape(in_shape, "seq2seq_gru")
        if hidden < 1 or layers < 1:
            raise UserError(f"model.hidden={hidden} and model.layers={layers} must be >= 1.")
        L = layer_set(impl)
        self.rnn = recurrent_layer(cell, d, hidden, layers)
        if head_hidden > 0:
            self.head = nn.Sequential(
                L.Linear(hidden, head_hidden), L.ReLU(), L.Linear(head_hidden, num_classes)
            )
        else:
            self.head = L.Linear(hidden, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.rnn(x)
        return self.head(out)
