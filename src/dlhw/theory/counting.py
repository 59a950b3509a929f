"""Counting by hand: output shapes, parameters and multiplications of networks (theory).

Conventions (multiplications per training iteration for ONE sample):

- forward: a Conv2d layer costs C_out * H_out * W_out * (C_in / groups) * K_h * K_w, a Linear layer
  in * out (times any extra leading positions). Additions, biases, activations, pooling and
  normalisation are not counted.
- backward: each such layer costs its forward count once for the gradient w.r.t. its weights and
  once more for the gradient w.r.t. its input when that input needs a gradient. The first layer
  (input = data, no gradient) therefore costs 1x, every later layer 2x. Element-wise products with
  activation derivatives are not counted either, so the closed forms below agree with the hooks.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from torch import nn

__all__ = [
    "conv_output_shape",
    "shape_trace",
    "count_params",
    "count_multiplications",
    "MultiplicationCount",
    "mlp_param_count",
    "mlp_forward_multiplications",
    "mlp_backprop_multiplications",
    "path_enumeration_multiplications",
    "path_enumeration_multiplications_bruteforce",
]


def _pair(v: int | Sequence[int], what: str) -> tuple[int, int]:
    a, b = (v, v) if isinstance(v, int) else tuple(v)
    if not (isinstance(a, int) and isinstance(b, int)):
        raise ValueError(f"{what} must be an integer or a pair of integers, got {v!r}")
    return a, b


def conv_output_shape(
    c: int,
    h: int,
    w: int,
    kernel: int | Sequence[int],
    padding: int | Sequence[int] = 0,
    stride: int | Sequence[int] = 1,
    dilation: int | Sequence[int] = 1,
    filters: int | None = None,
) -> tuple[int, int, int]:
    """(C_out, H_out, W_out) of a convolution (``filters`` kernels) or a pooling window (filters None).

    Each spatial size follows floor((H + 2P - D(K - 1) - 1) / S) + 1.
    """
    if min(c, h, w) < 1:
        raise ValueError(f"input size must be positive, got {c}x{h}x{w}")
    if filters is not None and filters < 1:
        raise ValueError(f"filters must be positive, got {filters}")
    ks, ps, ss, ds = (
        _pair(kernel, "kernel"),
        _pair(padding, "padding"),
        _pair(stride, "stride"),
        _pair(dilation, "dilation"),
    )
    out = []
    for size, k, p, s, d, axis in zip((h, w), ks, ps, ss, ds, ("height", "width"), strict=True):
        if k < 1 or s < 1 or d < 1 or p < 0:
            raise ValueError(
                f"kernel, stride and dilation must be >= 1 and padding >= 0 (got kernel={k}, "
                f"stride={s}, dilation={d}, padding={p})"
            )
        span = d * (k - 1) + 1
        if span > size + 2 * p:
            raise ValueError(
                f"kernel spans {span} pixels (dilation {d}) but the padded input {axis} is only "
                f"{size + 2 * p} ({size} + 2*{p})"
            )
        out.append((size + 2 * p - d * (k - 1) - 1) // s + 1)
    return (c if filters is None else filters, out[0], out[1])


def _leaves(model: nn.Module) -> list[tuple[str, nn.Module]]:
    return [(n, m) for n, m in model.named_modules() if not any(True for _ in m.children())]


def _dummy(model: nn.Module, in_shape: Sequence[int]) -> torch.Tensor:
    if any(int(s) < 1 for s in in_shape):
        raise ValueError(f"input shape must be positive, got {tuple(in_shape)}")
    p = next(model.parameters(), None)
    kw = {"dtype": p.dtype, "device": p.device} if p is not None else {}
    return torch.zeros(1, *(int(s) for s in in_shape), **kw)


def _run_with_hooks(model: nn.Module, in_shape: Sequence[int], hook, grad: bool) -> None:
    """One eval-mode forward of a batch of 1 with ``hook`` on every leaf module."""
    was_training = model.training
    handles = [
        m.register_forward_hook(lambda mod, i, o, n=n: hook(n, mod, i, o))
        for n, m in _leaves(model)
    ]
    try:
        model.eval()
        with torch.set_grad_enabled(grad):
            model(_dummy(model, in_shape))
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)


def shape_trace(
    model: nn.Module, in_shape: Sequence[int]
) -> list[tuple[str, str, tuple[int, ...]]]:
    """(name, layer type, output shape without the batch dim) of each leaf module, in call order."""
    rows: list[tuple[str, str, tuple[int, ...]]] = []

    def hook(name, mod, inputs, output):
        if isinstance(output, tuple):
            output = output[0]
        rows.append((name, type(mod).__name__, tuple(output.shape[1:])))

    _run_with_hooks(model, in_shape, hook, grad=False)
    return rows


def count_params(model: nn.Module, trainable_only: bool = False) -> int:
    """Number of (distinct) parameter scalars."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


@dataclass
class MultiplicationCount:
    """Per-sample multiplications of one training iteration, total and per layer."""

    forward: int = 0
    backward: int = 0
    layers: list[tuple[str, str, int, int]] = field(default_factory=list)  # name, type, fwd, bwd

    @property
    def total(self) -> int:
        return self.forward + self.backward


def count_multiplications(model: nn.Module, in_shape: Sequence[int]) -> MultiplicationCount:
    """Forward and backward multiplications of the Linear/Conv2d layers for one sample.

    Measured with forward hooks on the real model (a batch of 1 in eval mode); the backward
    follows the module convention: weight gradient 1x, input gradient 1x more when it is needed.
    """
    result = MultiplicationCount()

    def hook(name, mod, inputs, output):
        x = inputs[0]
        if isinstance(mod, nn.Conv2d):
            c_out, h_out, w_out = output.shape[1:]
            k = math.prod(mod.kernel_size)
            fwd = c_out * h_out * w_out * (mod.in_channels // mod.groups) * k
        elif isinstance(mod, nn.Linear):
            fwd = mod.in_features * mod.out_features * (x.numel() // x.shape[0] // mod.in_features)
        else:
            return
        factor = int(mod.weight.requires_grad) + int(x.requires_grad)
        result.forward += fwd
        result.backward += factor * fwd
        result.layers.append((name, type(mod).__name__, fwd, factor * fwd))

    _run_with_hooks(model, in_shape, hook, grad=True)
    return result


# ----------------------------------------------------------------------------- MLP closed forms


def check_mlp(d: int, L: int, n: int, c: int) -> None:
    if d < 1 or n < 1 or c < 1 or L < 0:
        raise ValueError(f"need d, n, c >= 1 and L >= 0, got d={d}, L={L}, n={n}, c={c}")


def _widths(d: int, L: int, n: int, c: int) -> list[int]:
    return [d] + [n] * L + [c]


def mlp_param_count(d: int, L: int, n: int, c: int) -> int:
    """Weights and biases of an MLP: d inputs, L hidden layers of n units, c outputs."""
    check_mlp(d, L, n, c)
    ws = _widths(d, L, n, c)
    return sum(a * b + b for a, b in itertools.pairwise(ws))


def mlp_forward_multiplications(d: int, L: int, n: int, c: int) -> int:
    """Forward multiplications per sample: d n + (L - 1) n^2 + n c (d c when L = 0)."""
    check_mlp(d, L, n, c)
    return sum(a * b for a, b in itertools.pairwise(_widths(d, L, n, c)))


def mlp_backprop_multiplications(d: int, L: int, n: int, c: int) -> int:
    """Forward + backward multiplications per sample with backpropagation.

    Backward: weight gradients of every layer (= forward count) plus input gradients of every layer
    but the first, so the total is 3 F - W1 with F the forward count and W1 the first layer's.
    """
    f = mlp_forward_multiplications(d, L, n, c)
    first = d * (n if L > 0 else c)
    return 3 * f - first


def path_enumeration_multiplications(d: int, L: int, n: int, c: int) -> int:
    """Forward multiplications plus the cost of weight gradients by explicit path enumeration.

    There are d * n^L * c input-to-output paths, each with L + 1 weights. The chain rule applied
    per path gives, for every weight w on the path, the contribution x_i * (the L other weights) *
    (the L activation derivatives on the path) * dLoss/dz_k: 2L + 2 factors, so 2L + 1
    multiplications; a weight's gradient is the sum over all paths through it (additions not
    counted). Total: F + d n^L c (L + 1)(2L + 1), exponential in L, vs about 3 F for backprop.
    """
    f = mlp_forward_multiplications(d, L, n, c)
    return f + d * n**L * c * (L + 1) * (2 * L + 1)


def path_enumeration_multiplications_bruteforce(d: int, L: int, n: int, c: int) -> int:
    """The same count obtained by listing every edge and every path explicitly (tiny nets only)."""
    check_mlp(d, L, n, c)
    ws = _widths(d, L, n, c)
    forward = sum(
        1 for a, b in itertools.pairwise(ws) for _ in itertools.product(range(a), range(b))
    )
    total = forward
    for path in itertools.product(*(range(k) for k in ws)):
        edges = [(layer, path[layer], path[layer + 1]) for layer in range(L + 1)]
        derivs = [("act'", layer, unit) for layer, unit in enumerate(path[1:-1], start=1)]
        for edge in edges:
            factors = [("x", path[0])] + [("w", *e) for e in edges if e != edge]
            factors += derivs + [("dL/dz", path[-1])]
            total += len(factors) - 1
    return total


# ----------------------------------------------------------------------------- CLI


def format_count(v: int) -> str:
    """Thousands separators, or scientific notation for huge integers (no float overflow)."""
    if v < 10**15:
        return f"{v:,}"
    s = str(v)
    return f"{s[0]}.{s[1:4]}e+{len(s) - 1}"


def _fallback_model(
    name: str, in_shape: Sequence[int], classes: int, hidden: Sequence[int], impl: str
) -> nn.Module:
    """nn.Sequential equivalents of the project's models, used when dlhw.models is unavailable."""
    from dlhw.nn import layer_set

    layers = layer_set(impl)
    if name == "lenet":
        c, h, w = in_shape
        _, h2, w2 = conv_output_shape(*conv_output_shape(c, h, w, 5), 2, stride=2)
        _, h2, w2 = conv_output_shape(*conv_output_shape(6, h2, w2, 5), 2, stride=2)
        return nn.Sequential(
            layers.Conv2d(c, 6, 5),
            layers.ReLU(),
            layers.MaxPool2d(2, 2),
            layers.Conv2d(6, 16, 5),
            layers.ReLU(),
            layers.MaxPool2d(2, 2),
            nn.Flatten(),
            layers.Linear(16 * h2 * w2, 120),
            layers.ReLU(),
            layers.Linear(120, 84),
            layers.ReLU(),
            layers.Linear(84, classes),
        )
    mods: list[nn.Module] = [nn.Flatten()]
    width = math.prod(in_shape)
    for u in hidden:
        mods += [layers.Linear(width, u), layers.ReLU()]
        width = u
    return nn.Sequential(*mods, layers.Linear(width, classes))


def build_model(
    name: str,
    in_shape: Sequence[int],
    classes: int,
    hidden: Sequence[int] = (),
    impl: str = "torch",
) -> tuple[nn.Module, str]:
    """The project's LeNet / MLP (imported lazily), else an equivalent nn.Sequential; and its source."""
    try:
        from dlhw.models import MLP, LeNet
    except ImportError:
        return _fallback_model(name, in_shape, classes, hidden, impl), "nn.Sequential fallback"
    if name == "lenet":
        return LeNet(tuple(in_shape), classes, impl=impl), "dlhw.models.LeNet"
    return MLP(tuple(in_shape), classes, hidden=tuple(hidden), impl=impl), "dlhw.models.MLP"
