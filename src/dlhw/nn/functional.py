"""Hand-derived layers and losses as ``torch.autograd.Function``s, drop-in for ``torch.nn.functional``.

Every forward uses plain tensor ops; every backward is written out by hand (no autograd inside
backward), so the gradients are checked against PyTorch's in the tests rather than borrowed from it.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.autograd import Function

from dlhw.nn.recurrent import gated_rnn, rnn_tanh_sequence_loss

__all__ = [
    "gated_rnn",
    "rnn_tanh_sequence_loss",
    "linear",
    "relu",
    "dropout",
    "batch_norm",
    "conv2d",
    "max_pool2d",
    "cross_entropy",
    "binary_logistic_loss",
    "binary_hinge_loss",
    "multiclass_hinge_loss",
]


def _pair(v: int | tuple[int, int]) -> tuple[int, int]:
    if isinstance(v, int):
        return (v, v)
    a, b = v
    return (int(a), int(b))


# --------------------------------------------------------------------------- linear / relu


class _Linear(Function):
    """y = x W^T + b; dx = g W, dW = g^T x, db = sum g (over all leading dims)."""

    @staticmethod
    def forward(ctx, x: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
        ctx.save_for_backward(x, weight)
        ctx.has_bias = bias is not None
        out = x.matmul(weight.t())
        return out + bias if bias is not None else out

    @staticmethod
    def backward(ctx, g: Tensor):
        x, weight = ctx.saved_tensors
        gx = gw = gb = None
        if ctx.needs_input_grad[0]:
            gx = g.matmul(weight)
        g2 = g.reshape(-1, g.shape[-1])
        if ctx.needs_input_grad[1]:
            gw = g2.t().matmul(x.reshape(-1, x.shape[-1]))
        if ctx.has_bias and ctx.needs_input_grad[2]:
            gb = g2.sum(0)
        return gx, gw, gb


def linear(x: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    """Affine map like ``F.linear``: weight (out, in), x (..., in) -> (..., out)."""
    return _Linear.apply(x, weight, bias)


class _ReLU(Function):
    """y = max(x, 0); dx = g * [x > 0]."""

    @staticmethod
    def forward(ctx, x: Tensor) -> Tensor:
        ctx.save_for_backward(x <= 0)
        return x.clamp_min(0)

    @staticmethod
    def backward(ctx, g: Tensor):
        (off,) = ctx.saved_tensors
        return g.masked_fill(off, 0)


def relu(x: Tensor) -> Tensor:
    """Rectified linear unit like ``F.relu``."""
    return _ReLU.apply(x)


# --------------------------------------------------------------------------- dropout


class _MaskMul(Function):
    """y = x * m for a fixed (non-differentiable) mask m; dx = g * m."""

    @staticmethod
    def forward(ctx, x: Tensor, mask: Tensor) -> Tensor:
        ctx.save_for_backward(mask)
        return x * mask

    @staticmethod
    def backward(ctx, g: Tensor):
        (mask,) = ctx.saved_tensors
        return g * mask, None


def dropout(
    x: Tensor, p: float = 0.5, training: bool = True, generator: torch.Generator | None = None
) -> Tensor:
    """Inverted dropout: zero each element with probability ``p``, scale survivors by 1/(1-p).

    Identity when ``training`` is False (or p == 0), so evaluation needs no rescaling.
    """
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"dropout probability has to be between 0 and 1, but got {p}")
    if not training or p == 0.0:
        return x
    if p == 1.0:
        mask = torch.zeros_like(x)
    else:
        keep = torch.empty_like(x).bernoulli_(1.0 - p, generator=generator)
        mask = keep / (1.0 - p)
    return _MaskMul.apply(x, mask)


# --------------------------------------------------------------------------- batch norm


class _BatchNorm(Function):
    """Normalise per channel (dim 1) with given statistics, then scale and shift.

    In training the statistics are the batch's own (functions of x) and the backward is the full
    formula dx = invstd/m * (m*dxhat - sum dxhat - xhat * sum(dxhat*xhat)); in eval they are
    constants and dx = g * w * invstd.
    """

    @staticmethod
    def forward(ctx, x, weight, bias, mean, invstd, training: bool):
        shape = [1, x.shape[1]] + [1] * (x.dim() - 2)
        xhat = (x - mean.view(shape)) * invstd.view(shape)
        out = xhat * weight.view(shape) if weight is not None else xhat
        if bias is not None:
            out = out + bias.view(shape)
        ctx.save_for_backward(xhat, invstd, weight)
        ctx.training = training
        ctx.has_bias = bias is not None
        return out

    @staticmethod
    def backward(ctx, g):
        xhat, invstd, weight = ctx.saved_tensors
        dims = [0] + list(range(2, g.dim()))
        shape = [1, g.shape[1]] + [1] * (g.dim() - 2)
        gx = gw = gb = None
        if weight is not None and ctx.needs_input_grad[1]:
            gw = (g * xhat).sum(dims)
        if ctx.has_bias and ctx.needs_input_grad[2]:
            gb = g.sum(dims)
        if ctx.needs_input_grad[0]:
            dxhat = g * weight.view(shape) if weight is not None else g
            istd = invstd.view(shape)
            if ctx.training:
                m = g.numel() // g.shape[1]
                s1 = dxhat.sum(dims, keepdim=True)
                s2 = (dxhat * xhat).sum(dims, keepdim=True)
                gx = (istd / m) * (m * dxhat - s1 - xhat * s2)
            else:
                gx = dxhat * istd
        return gx, gw, gb, None, None, None


def batch_norm(
    x: Tensor,
    running_mean: Tensor | None,
    running_var: Tensor | None,
    weight: Tensor | None = None,
    bias: Tensor | None = None,
    training: bool = False,
    momentum: float = 0.1,
    eps: float = 1e-5,
) -> Tensor:
    """Batch normalisation over dim 1 like ``F.batch_norm`` for (N, C) and (N, C, H, W) inputs.

    In training the batch statistics (biased variance) normalise x and the running estimates are
    updated in place as ``r = (1 - momentum) r + momentum * stat`` with the unbiased variance,
    exactly like PyTorch. In eval the running estimates normalise x.
    """
    dims = [0] + list(range(2, x.dim()))
    if training:
        m = x.numel() // x.shape[1]
        if m <= 1:
            raise ValueError(
                f"Expected more than 1 value per channel when training, got input size {tuple(x.shape)}"
            )
        with torch.no_grad():
            xd = x.detach()
            mean = xd.mean(dims)
            var = xd.var(dims, unbiased=False)
            if running_mean is not None:
                running_mean.mul_(1 - momentum).add_(mean.to(running_mean.dtype), alpha=momentum)
            if running_var is not None:
                unbiased = var * (m / (m - 1))
                running_var.mul_(1 - momentum).add_(unbiased.to(running_var.dtype), alpha=momentum)
    else:
        if running_mean is None or running_var is None:
            raise ValueError("batch_norm in eval mode needs running_mean and running_var")
        mean, var = running_mean.to(x.dtype), running_var.to(x.dtype)
    invstd = torch.rsqrt(var + eps)
    return _BatchNorm.apply(x, weight, bias, mean, invstd, training)


# --------------------------------------------------------------------------- conv / pool


def _patches(x: Tensor, kernel, stride, padding, dilation, pad_value: float = 0.0) -> Tensor:
    """View of x's sliding windows, shape (N, C, kh, kw, Ho, Wo), via padding + ``as_strided``."""
    if padding != (0, 0):
        x = F.pad(x, (padding[1], padding[1], padding[0], padding[0]), value=pad_value)
    x = x.contiguous()
    n, c, hp, wp = x.shape
    ho = (hp - dilation[0] * (kernel[0] - 1) - 1) // stride[0] + 1
    wo = (wp - dilation[1] * (kernel[1] - 1) - 1) // stride[1] + 1
    sn, sc, sh, sw = x.stride()
    return x.as_strided(
        (n, c, kernel[0], kernel[1], ho, wo),
        (sn, sc, sh * dilation[0], sw * dilation[1], sh * stride[0], sw * stride[1]),
    )


def _col2im(cols6: Tensor, size, stride, padding, dilation) -> Tensor:
    """Adjoint of ``_patches``: scatter-add window values (N, C, kh, kw, Ho, Wo) back to (N, C, H, W).

    Loops over the kh*kw kernel offsets (not pixels); each step adds one strided slab.
    """
    n, c, kh, kw, ho, wo = cols6.shape
    hp, wp = size[0] + 2 * padding[0], size[1] + 2 * padding[1]
    out = cols6.new_zeros(n, c, hp, wp)
    for i in range(kh):
        r = i * dilation[0]
        for j in range(kw):
            q = j * dilation[1]
            out[
                :,
                :,
                r : r + (ho - 1) * stride[0] + 1 : stride[0],
                q : q + (wo - 1) * stride[1] + 1 : stride[1],
            ] += cols6[:, :, i, j]
    if padding != (0, 0):
        out = out[:, :, padding[0] : padding[0] + size[0], padding[1] : padding[1] + size[1]]
    return out


class _Conv2d(Function):
    """Cross-correlation by im2col: cols = patches(x) as (N, C*kh*kw, L); y = W_flat @ cols.

    Backward: dW = sum_n g_n cols_n^T, db = sum g, dx = col2im(W_flat^T g) (overlaps add up).
    """

    @staticmethod
    def forward(ctx, x, weight, bias, stride, padding, dilation):
        n, c, h, w = x.shape
        o, _, kh, kw = weight.shape
        p6 = _patches(x, (kh, kw), stride, padding, dilation)
        ho, wo = p6.shape[-2:]
        cols = p6.reshape(n, c * kh * kw, ho * wo)  # the im2col copy
        # bmm with a broadcast (stride-0) weight: W_flat @ cols_n for every n, without copying cols
        out = torch.bmm(weight.reshape(1, o, -1).expand(n, -1, -1), cols)  # (N, O, L)
        if bias is not None:
            out = out + bias.view(1, o, 1)
        ctx.save_for_backward(cols, weight)
        ctx.conf = ((h, w), stride, padding, dilation, p6.shape)
        ctx.has_bias = bias is not None
        return out.view(n, o, ho, wo)

    @staticmethod
    def backward(ctx, g):
        cols, weight = ctx.saved_tensors
        size, stride, padding, dilation, shape6 = ctx.conf
        n, o = g.shape[:2]
        g2 = g.reshape(n, o, -1)
        gx = gw = gb = None
        if ctx.needs_input_grad[1]:
            gw = torch.bmm(g2, cols.transpose(1, 2)).sum(0).view_as(weight)
        if ctx.has_bias and ctx.needs_input_grad[2]:
            gb = g2.sum((0, 2))
        if ctx.needs_input_grad[0]:
            wt = weight.reshape(o, -1).t().unsqueeze(0).expand(n, -1, -1)
            gcols = torch.bmm(wt, g2)  # (N, C*kh*kw, L)
            gx = _col2im(gcols.view(shape6), size, stride, padding, dilation)
        return gx, gw, gb, None, None, None


def conv2d(
    x: Tensor,
    weight: Tensor,
    bias: Tensor | None = None,
    stride: int | tuple[int, int] = 1,
    padding: int | tuple[int, int] = 0,
    dilation: int | tuple[int, int] = 1,
    groups: int = 1,
) -> Tensor:
    """2-D cross-correlation like ``F.conv2d`` (zero padding, groups=1): strided im2col + bmm."""
    if groups != 1:
        raise ValueError("scratch conv2d supports groups=1 only")
    if isinstance(padding, str):
        raise ValueError("scratch conv2d takes integer padding, not a string mode")
    if x.dim() != 4:
        raise ValueError(f"conv2d expects a 4-D input (N, C, H, W), got shape {tuple(x.shape)}")
    return _Conv2d.apply(x, weight, bias, _pair(stride), _pair(padding), _pair(dilation))


class _MaxPool2d(Function):
    """Max over each window, the gradient going to the window's (first) arg-max only.

    Both passes loop over the kh*kw window offsets (not pixels): each step compares or scatters
    one strided slab of shape (N, C, H_out, W_out).
    """

    @staticmethod
    def forward(ctx, x, kernel, stride, padding):
        p6 = _patches(x, kernel, stride, padding, (1, 1), pad_value=float("-inf"))
        out = p6[:, :, 0, 0].clone()
        kk = kernel[0] * kernel[1]
        idx = torch.zeros(
            out.shape, dtype=torch.uint8 if kk <= 256 else torch.int64, device=x.device
        )
        for k in range(1, kk):
            v = p6[:, :, k // kernel[1], k % kernel[1]]
            better = v > out
            out = torch.where(better, v, out)
            idx.masked_fill_(better, k)
        ctx.save_for_backward(idx)
        ctx.conf = (x.shape[2:], kernel, stride, padding)
        return out

    @staticmethod
    def backward(ctx, g):
        (idx,) = ctx.saved_tensors
        size, kernel, stride, padding = ctx.conf
        kk = kernel[0] * kernel[1]
        g6 = torch.stack([g.masked_fill(idx != k, 0) for k in range(kk)], 2).unflatten(2, kernel)
        return _col2im(g6, size, stride, padding, (1, 1)), None, None, None


def max_pool2d(
    x: Tensor,
    kernel_size: int | tuple[int, int],
    stride: int | tuple[int, int] | None = None,
    padding: int | tuple[int, int] = 0,
) -> Tensor:
    """Max pooling like ``F.max_pool2d``; stride defaults to the kernel size."""
    kernel = _pair(kernel_size)
    st = kernel if stride is None else _pair(stride)
    return _MaxPool2d.apply(x, kernel, st, _pair(padding))


# --------------------------------------------------------------------------- losses


def _check_binary(scores: Tensor, target: Tensor) -> Tensor:
    if scores.dim() != 1 or target.shape != scores.shape:
        raise ValueError(
            f"expected scores (N,) and target (N,), got {tuple(scores.shape)}, {tuple(target.shape)}"
        )
    return target.to(scores.dtype)


class _CrossEntropy(Function):
    """mean_i [logsumexp(z_i) - q_i . z_i] with q_i = (1 - e) onehot(y_i) + e / K (label smoothing e);
    dz = (softmax(z) - q) / N."""

    @staticmethod
    def forward(ctx, logits, target, smoothing: float):
        m = logits.max(1, keepdim=True).values
        shifted = logits - m
        lse = shifted.exp().sum(1, keepdim=True).log()
        logp = shifted - lse
        ctx.save_for_backward(logp, target)
        ctx.smoothing = smoothing
        nll = -logp.gather(1, target.view(-1, 1)).mean()
        if smoothing == 0:
            return nll
        return (1 - smoothing) * nll - smoothing * logp.mean(1).mean()

    @staticmethod
    def backward(ctx, g):
        logp, target = ctx.saved_tensors
        e = ctx.smoothing
        grad = logp.exp()
        grad.scatter_add_(1, target.view(-1, 1), torch.full_like(grad[:, :1], -(1 - e)))
        if e:
            grad -= e / grad.shape[1]
        return grad * (g / logp.shape[0]), None, None


def cross_entropy(logits: Tensor, target: Tensor, label_smoothing: float = 0.0) -> Tensor:
    """Softmax cross-entropy, mean over the batch; logits (N, K), integer targets (N,).

    Matches ``torch.nn.functional.cross_entropy(logits, target, label_smoothing=...)``.
    """
    return _CrossEntropy.apply(logits, target.long(), float(label_smoothing))


class _BinaryLogistic(Function):
    """mean softplus(s) - t s (= log(1 + exp(-y s)), y = 2t - 1); ds = (sigmoid(s) - t) / N."""

    @staticmethod
    def forward(ctx, s, t):
        ctx.save_for_backward(s, t)
        softplus = s.clamp_min(0) + torch.log1p(torch.exp(-s.abs()))
        return (softplus - t * s).mean()

    @staticmethod
    def backward(ctx, g):
        s, t = ctx.saved_tensors
        return (torch.sigmoid(s) - t) * (g / s.numel()), None


def binary_logistic_loss(scores: Tensor, target: Tensor) -> Tensor:
    """Logistic loss for scores (N,) and targets in {0, 1}; equals BCE-with-logits, mean."""
    return _BinaryLogistic.apply(scores, _check_binary(scores, target))


class _BinaryHinge(Function):
    """mean max(0, 1 - y s) with y = 2t - 1; ds = -y [1 - y s > 0] / N."""

    @staticmethod
    def forward(ctx, s, t):
        y = 2 * t - 1
        margin = 1 - y * s
        ctx.save_for_backward(y, margin > 0)
        return margin.clamp_min(0).mean()

    @staticmethod
    def backward(ctx, g):
        y, active = ctx.saved_tensors
        return -y * active * (g / y.numel()), None


def binary_hinge_loss(scores: Tensor, target: Tensor) -> Tensor:
    """Hinge loss for scores (N,) and targets in {0, 1} (mapped to labels -1/+1), mean."""
    return _BinaryHinge.apply(scores, _check_binary(scores, target))


class _MultiMargin(Function):
    """Weston-Watkins hinge with margin m, divided by K like ``F.multi_margin_loss``.

    loss = 1/N sum_i 1/K sum_{j != y_i} max(0, m - z_{i,y_i} + z_{i,j});
    dz_ij = [active_ij] / (N K) for j != y_i and dz_{i,y_i} = -(#active_i) / (N K).
    """

    @staticmethod
    def forward(ctx, z, target, margin: float):
        n, k = z.shape
        zy = z.gather(1, target.view(-1, 1))
        margins = (margin - zy + z).clamp_min(0)
        margins.scatter_(1, target.view(-1, 1), 0.0)
        ctx.save_for_backward(margins > 0, target)
        return margins.sum() / (n * k)

    @staticmethod
    def backward(ctx, g):
        active, target = ctx.saved_tensors
        n, k = active.shape
        grad = active.to(g.dtype)
        grad.scatter_(1, target.view(-1, 1), -grad.sum(1, keepdim=True))
        return grad * (g / (n * k)), None, None


def multiclass_hinge_loss(logits: Tensor, target: Tensor, margin: float = 1.0) -> Tensor:
    """Multiclass hinge (Weston-Watkins, per-sample sum divided by K), mean over batch.

    Matches ``torch.nn.functional.multi_margin_loss(logits, target, margin=margin)``.
    """
    return _MultiMargin.apply(logits, target.long(), float(margin))
