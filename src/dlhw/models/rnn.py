"""Recurrent classifiers that read a sequence (N, T, D) and classify it from the last time step.

rnn_rows_mnist: input -> affine to the recurrent width -> RNN -> ReLU -> FC 64 -> ReLU -> FC classes
(``head="mlp"``). temporal_order: the RNN reads the input directly, a linear head on the last step
(``head="linear"``).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from dlhw.errors import UserError
from dlhw.models.layers import layer_set
from dlhw.shapes import SEQUENCE, Takes

CELLS = ("lstm", "gru", "rnn", "gated")
HEADS = ("mlp", "linear")


class StackedGated(nn.Module):
    """``layers`` hand-written gated cells (dlhw.nn.GatedRNN) stacked, batch first."""

    def __init__(self, input_size: int, hidden_size: int, layers: int = 1):
        super().__init__()
        from dlhw.nn import GatedRNN  # lazy: the scratch layers are only needed for this cell

        sizes = [input_size] + [hidden_size] * (layers - 1)
        self.layers = nn.ModuleList(GatedRNN(d, hidden_size) for d in sizes)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, None]:
        for layer in self.layers:
            x, _ = layer(x)
        return x, None


def recurrent_layer(cell: str, input_size: int, hidden: int, layers: int) -> nn.Module:
    """A batch-first recurrent stack returning (outputs (N, T, H), state)."""
    if cell == "lstm":
        return nn.LSTM(input_size, hidden, num_layers=layers, batch_first=True)
    if cell == "gru":
        return nn.GRU(input_size, hidden, num_layers=layers, batch_first=True)
    if cell == "rnn":
        return nn.RNN(input_size, hidden, num_layers=layers, nonlinearity="relu", batch_first=True)
    if cell == "gated":
        return StackedGated(input_size, hidden, layers)
    raise UserError(f"model.cell={cell!r} is not one of {CELLS}.")


def check_sequence_shape(in_shape: Sequence[int], name: str) -> tuple[int, int]:
    """(T, D) of a sequence input, or a UserError naming the data sets that fit."""
    if len(in_shape) != 2:
        raise UserError(
            f"model={name} reads sequences of shape (T, D) but the data gives {tuple(in_shape)}; "
            "use a sequence data set (mnist_rows, digits_rows, fashion_mnist_rows, temporal_order; "
            "echo for seq2seq_gru)."
        )
    return int(in_shape[0]), int(in_shape[1])


class RNNClassifier(nn.Module):
    """Recurrent net over (N, T, D); the classifier head reads the output of the last step.

    Args:
        in_shape: (T, D) of one sequence.
        num_classes: outputs of the head.
        cell: "lstm", "gru", "rnn" (plain ReLU RNN) or "gated" (hand-written, scratch_rnn_cells).
        hidden: recurrent width.
        layers: stacked recurrent layers.
        head: "mlp" (ReLU -> FC fc_width -> ReLU -> FC, rnn_rows_mnist) or "linear"
            (temporal_order).
        input_affine: affine map of the input to the recurrent width first; null = only with
            head "mlp".
        fc_width: width of the hidden FC layer of the "mlp" head.
        impl: "torch" or "scratch" (hand-written) affine layers around the recurrent cell.
    """

    @staticmethod
    def takes(**_) -> Takes:
        """Sequences T x D; one class per sequence (read from the last step)."""
        return Takes(SEQUENCE)

    def __init__(
        self,
        in_shape: Sequence[int],
        num_classes: int,
        cell: str = "lstm",
        hidden: int = 64,
        layers: int = 1,
        head: str = "mlp",
        input_affine: bool | None = None,
        fc_width: int = 64,
        impl: str = "torch",
    ):
        super().__init__()
        _, d = check_sequence_shape(in_shape, "rnn")
        if head not in HEADS:
            raise UserError(f"model.head={head!r} is not one of {HEADS}.")
        if hidden < 1 or layers < 1:
            raise UserError(f"model.hidden={hidden} and model.layers={layers} must be >= 1.")
        L = layer_set(impl)
        if input_affine is None:
            input_affine = head == "mlp"
        self.input = L.Linear(d, hidden) if input_affine else nn.Identity()
        self.rnn = recurrent_layer(cell, hidden if input_affine else d, hidden, layers)
        if head == "mlp":
            self.head = nn.Sequential(
                L.ReLU(), L.Linear(hidden, fc_width), L.ReLU(), L.Linear(fc_width, num_classes)
            )
        else:
            self.head = L.Linear(hidden, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.rnn(self.input(x))
        return self.head(out[:, -1])
