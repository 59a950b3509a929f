"""Layers that ``torch.func.vmap`` batches over K stacked copies of a model (packed runs).

``stackable(net)`` returns a copy of ``net`` in which

- ``nn.LSTM`` / ``nn.GRU`` / ``nn.RNN`` become cells written with matrix products (same parameter
  names, same equations): vmap has no batching rule for the fused CPU kernels and falls back to
  one copy after another, while matrix products batch into one ``bmm`` over the K copies;
- ``nn.Dropout`` becomes ``MaskedDropout``, which multiplies by a mask handed in from outside, so
  that every copy draws its mask from its own generator exactly as the run alone would
  (``torch.nn.functional.dropout`` on a CPU is ``x * bernoulli(1 - p) / (1 - p)``).

The copy keeps the state-dict keys of ``net``, so stacked weights slice back into ordinary
state dicts of the original model.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn


class MaskedDropout(nn.Module):
    """Dropout by a given mask (``mask`` already scaled by 1 / (1 - p)); identity in eval mode."""

    def __init__(self, p: float):
        super().__init__()
        self.p = p
        self.register_buffer("mask", torch.ones(0), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        return x * self.mask

    @staticmethod
    def draw(shape: tuple[int, ...], p: float, generator: torch.Generator, device) -> torch.Tensor:
        """The mask of one batch at rate p, drawn as ``F.dropout`` draws it (bernoulli, then scaled)."""
        mask = torch.empty(shape, device=device).bernoulli_(1 - p, generator=generator)
        return mask.div_(1 - p)


class MatmulRecurrent(nn.Module):
    """A batch-first LSTM, GRU or ReLU/tanh RNN stack from matrix products, with nn.LSTM's names.

    Gate layouts are PyTorch's: LSTM (i, f, g, o), GRU (r, z, n) with the reset gate applied to
    ``W_hn h + b_hn``.
    """

    GATES = {"LSTM": 4, "GRU": 3, "RNN_TANH": 1, "RNN_RELU": 1}

    def __init__(self, rnn: nn.RNNBase):
        super().__init__()
        if not rnn.batch_first or rnn.bidirectional or rnn.proj_size or rnn.dropout:
            raise ValueError("only batch-first, one-direction recurrent layers without dropout stack")
        self.mode = rnn.mode
        self.hidden_size = rnn.hidden_size
        self.num_layers = rnn.num_layers
        self.bias = rnn.bias
        for name, value in rnn.named_parameters():
            self.register_parameter(name, nn.Parameter(value.detach().clone()))

    def _layer(self, x: torch.Tensor, layer: int) -> torch.Tensor:
        w_ih, w_hh = getattr(self, f"weight_ih_l{layer}"), getattr(self, f"weight_hh_l{layer}")
        b_ih = getattr(self, f"bias_ih_l{layer}") if self.bias else None
        b_hh = getattr(self, f"bias_hh_l{layer}") if self.bias else None
        if self.mode != "GRU" and self.bias:  # b_hh adds to every step's input: add it once
            b_ih, b_hh = b_ih + b_hh, None
        # every time step's input projection at once, then split once (indexing step by step
        # would zero-fill a gradient of the whole sequence for every step in backward)
        steps = F.linear(x, w_ih, b_ih).unbind(1)
        h = x.new_zeros(x.shape[0], self.hidden_size)
        c = x.new_zeros(x.shape[0], self.hidden_size)
        outputs = []
        for step in steps:
            hidden = F.linear(h, w_hh, b_hh)
            if self.mode == "LSTM":
                i, f, g, o = (step + hidden).chunk(4, dim=1)
                c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
                h = torch.sigmoid(o) * torch.tanh(c)
            elif self.mode == "GRU":
                xr, xz, xn = step.chunk(3, dim=1)
                hr, hz, hn = hidden.chunk(3, dim=1)
                r, z = torch.sigmoid(xr + hr), torch.sigmoid(xz + hz)
                h = (1 - z) * torch.tanh(xn + r * hn) + z * h
            elif self.mode == "RNN_RELU":
                h = torch.relu(step + hidden)
            else:
                h = torch.tanh(step + hidden)
            outputs.append(h)
        return torch.stack(outputs, dim=1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, None]:
        for layer in range(self.num_layers):
            x = self._layer(x, layer)
        return x, None


def stackable(net: nn.Module) -> nn.Module:
    """A copy of ``net`` that vmap batches well (see the module doc); the same state-dict keys."""
    net = copy.deepcopy(net)
    for name, module in list(net.named_modules()):
        if isinstance(module, nn.RNNBase):
            replacement: nn.Module = MatmulRecurrent(module)
        elif isinstance(module, nn.Dropout):
            replacement = MaskedDropout(module.p)
        else:
            continue
        parent_name, _, child = name.rpartition(".")
        parent = net.get_submodule(parent_name) if parent_name else net
        setattr(parent, child, replacement)
    return net
