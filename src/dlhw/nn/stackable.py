"""Layers of a model stacked K times (packed runs), and ``per_run``.

``stackable(net)`` returns a copy of ``net`` in which

- ``nn.LSTM`` / ``nn.GRU`` / ``nn.RNN`` become ``PackedRecurrent`` (same parameter names). vmap
  has no batching rule for PyTorch's fused recurrent kernels (and no fallback under autograd), so
  ``PackedRecurrent`` gives vmap its own rule: on a CPU every copy's slice goes through the fused
  kernel a run alone uses (``each_run``); on an accelerator, cells written with matrix products
  batch into one ``bmm`` per time step over the K copies (``MatmulRecurrent``);
- ``nn.Dropout`` becomes ``MaskedDropout``, which multiplies by a mask handed in from outside, so
  that every copy draws its mask from its own generator exactly as the run alone would
  (``torch.nn.functional.dropout`` on a CPU is ``x * bernoulli(1 - p) / (1 - p)``).

The copy keeps the state-dict keys of ``net``, so stacked weights slice back into ordinary
state dicts of the original model. ``per_run`` computes K runs one by one, each with its own
autograd graph, dealt to threads on a CPU: how a pack evaluates on a CPU (``dlhw.lit.packed``,
where each run trains through its own network).
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import _VF, nn

from dlhw.nn.run_threads import map_runs


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
        self.weight_names = [name for name, _ in rnn.named_parameters()]  # the fused kernels' order
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


def _is_batched(t: torch.Tensor | None) -> bool:
    """Whether ``t`` is a vmap BatchedTensor (torch.func's own check)."""
    return t is not None and torch._C._functorch.is_batchedtensor(t)


class _EachRun(torch.autograd.Function):
    """vmap rule that calls ``op(x, *weights)`` for each run on its own slices (``_RunGraphs``).
    Used only under vmap (``each_run``)."""

    @staticmethod
    def forward(op, x, *weights):
        return op(x, *weights)

    @staticmethod
    def setup_context(ctx, inputs, output) -> None:
        pass

    @staticmethod
    def backward(ctx, grad):
        raise RuntimeError("each_run differentiates through its vmap rule only")

    @staticmethod
    def vmap(info, in_dims, op, x, *weights):
        tensors = (x, *weights)
        dims = in_dims[1:]
        leading = [t if t is None or d is None else t.movedim(d, 0) for t, d in zip(tensors, dims, strict=True)]
        batched = tuple(d is not None for d in dims)
        return per_run(op, info.batch_size, batched, *leading), 0


class _RunGraphs(torch.autograd.Function):
    """``op`` on each run's slices (``batched[i]``: tensor i has the runs on dim 0), the runs dealt
    to threads (``map_runs``). Every run keeps its own autograd graph, and the backward runs them
    in threads too (the autograd engine would run one run's backward after another)."""

    @staticmethod
    def forward(ctx, op, k, batched, grad, *tensors):
        build = grad and any(t is not None and t.requires_grad for t in tensors)

        def piece(t: torch.Tensor | None, runs_first: bool, i: int) -> torch.Tensor | None:
            if t is None:
                return None
            s = t[i] if runs_first else t
            return s.detach().requires_grad_(s.requires_grad) if build else s

        inputs = [[piece(t, b, i) for t, b in zip(tensors, batched, strict=True)] for i in range(k)]
        spread = map_runs if tensors[0].device.type == "cpu" else (lambda fn, n: [fn(i) for i in range(n)])
        with torch.set_grad_enabled(build):
            outputs = spread(lambda i: op(*inputs[i]), k)
        ctx.spread = spread
        if build:
            ctx.runs, ctx.batched = (inputs, outputs), batched
        return torch.stack(outputs)

    @staticmethod
    def backward(ctx, grad_out):
        inputs, outputs = ctx.runs
        del ctx.runs  # each run's graph is freed by its own backward

        def run_grads(i: int) -> list[torch.Tensor | None]:
            wanted = [t for t in inputs[i] if t is not None and t.requires_grad]
            got = iter(torch.autograd.grad(outputs[i], wanted, grad_out[i], allow_unused=True))
            return [next(got) if t is not None and t.requires_grad else None for t in inputs[i]]

        per_run = ctx.spread(run_grads, len(outputs))
        grads: list[torch.Tensor | None] = []
        for j, runs_first in enumerate(ctx.batched):
            column = [(g[j], inputs[i][j]) for i, g in enumerate(per_run)]
            if all(g is None for g, _ in column):
                grads.append(None)
            elif runs_first:
                grads.append(torch.stack([torch.zeros_like(t) if g is None else g for g, t in column]))
            else:  # one tensor every run read: the sum of their gradients
                grads.append(sum(g for g, _ in column if g is not None))
        return None, None, None, None, *grads


def per_run(op, k: int, batched: tuple[bool, ...], *tensors: torch.Tensor | None) -> torch.Tensor:
    """``op`` on each of k runs' own tensors (``batched[i]``: tensor i holds the runs on dim 0,
    else every run reads it whole), outputs stacked; on a CPU the runs are dealt to threads
    (``map_runs``). Each run keeps its own autograd graph; the backward runs per run too."""
    return _RunGraphs.apply(op, k, batched, torch.is_grad_enabled(), *tensors)


def each_run(op, x: torch.Tensor, *weights: torch.Tensor | None, accelerator: bool = False) -> torch.Tensor | None:
    """``op(x, *weights)`` as a run alone computes it: directly when nothing is batched, each run
    by itself when vmap batches x or a weight on a CPU (or on an accelerator with
    ``accelerator=True``); None otherwise (the caller uses vmap's own rule)."""
    if not any(_is_batched(t) for t in (x, *weights)):
        return op(x, *weights)
    if x.device.type != "cpu" and not accelerator:
        return None
    return _EachRun.apply(op, x, *weights)


def _fused(mode: str, layers: int, bias: bool, training: bool):
    """One run of PyTorch's fused recurrent kernel, batch first, as nn.LSTM/GRU/RNN call it."""
    kernel = {"LSTM": _VF.lstm, "GRU": _VF.gru, "RNN_TANH": _VF.rnn_tanh, "RNN_RELU": _VF.rnn_relu}[mode]

    def op(x: torch.Tensor, *weights: torch.Tensor) -> torch.Tensor:
        h0 = x.new_zeros(layers, x.shape[0], weights[1].shape[1])
        hx = (h0, h0) if mode == "LSTM" else h0
        return kernel(x, hx, list(weights), bias, layers, 0.0, training, False, True)[0]

    return op


class PackedRecurrent(MatmulRecurrent):
    """The recurrent layer of a stacked model: PyTorch's fused kernel for one run, and under vmap
    on a CPU for each run (``each_run``); under vmap on an accelerator, the matrix-product cells
    of ``MatmulRecurrent`` (or each run's fused kernel with ``accelerator_kernel = "each-run"``,
    which scripts/bench_pack_step.py compares)."""

    accelerator_kernel = "matmul"

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, None]:
        weights = [getattr(self, name) for name in self.weight_names]
        out = each_run(_fused(self.mode, self.num_layers, self.bias, self.training), x, *weights,
                       accelerator=self.accelerator_kernel == "each-run")
        return super().forward(x) if out is None else (out, None)


def stackable(net: nn.Module) -> nn.Module:
    """A copy of ``net`` that vmap batches well (see the module doc); the same state-dict keys."""
    net = copy.deepcopy(net)
    for name, module in list(net.named_modules()):
        if isinstance(module, nn.RNNBase):
            replacement: nn.Module = PackedRecurrent(module)
        elif isinstance(module, nn.Dropout):
            replacement = MaskedDropout(module.p)
        else:
            continue
        parent_name, _, child = name.rpartition(".")
        parent = net.get_submodule(parent_name) if parent_name else net
        setattr(parent, child, replacement)
    return net
