"""Recurrent networks with backpropagation through time written out by hand (scratch_rnn_cells).

- ``rnn_tanh_sequence_loss``: vanilla tanh RNN with a softmax read-out and its sequence loss.
- ``gated_rnn``: the gated cell c_t = sigmoid(W_c x_t + W_h h_{t-1}),
  h_t = c_t * h_{t-1} + (1 - c_t) * (W_x x_t), returning every hidden state.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch.autograd import Function

__all__ = ["rnn_tanh_sequence_loss", "gated_rnn"]


class _RNNTanhLoss(Function):
    """Forward unrolls the RNN; backward runs BPTT from t = T-1 down to 0."""

    @staticmethod
    def forward(ctx, x, y, h0, W_xh, W_hh, b_h, W_hz, b_z):
        T, N, _ = x.shape
        hs = [h0]
        loss = x.new_zeros(())
        probs = []
        for t in range(T):
            h = torch.tanh(x[t] @ W_xh.t() + hs[-1] @ W_hh.t() + b_h)
            o = h @ W_hz.t() + b_z
            logp = torch.log_softmax(o, dim=1)
            loss = loss - logp.gather(1, y[t].view(-1, 1)).sum()
            probs.append(logp.exp())
            hs.append(h)
        ctx.save_for_backward(x, y, torch.stack(hs), torch.stack(probs), W_xh, W_hh, W_hz)
        return loss / N

    @staticmethod
    def backward(ctx, g):
        x, y, hs, probs, W_xh, W_hh, W_hz = ctx.saved_tensors
        T, N, _ = x.shape
        # dL/do_t = (softmax(o_t) - onehot(y_t)) / N, for all t at once.
        do = probs.clone()
        do.scatter_add_(2, y.unsqueeze(2), -torch.ones_like(do[..., :1]))
        do = do * (g / N)
        dW_hz = torch.einsum("tnk,tnh->kh", do, hs[1:])
        db_z = do.sum((0, 1))
        da = torch.empty_like(hs[1:])
        dh_next = torch.zeros_like(hs[0])
        for t in range(T - 1, -1, -1):
            dh = do[t] @ W_hz + dh_next
            da[t] = dh * (1 - hs[t + 1] ** 2)  # tanh' = 1 - h^2
            dh_next = da[t] @ W_hh
        dW_xh = torch.einsum("tnh,tnd->hd", da, x)
        dW_hh = torch.einsum("tnh,tng->hg", da, hs[:-1])
        db_h = da.sum((0, 1))
        dx = da @ W_xh if ctx.needs_input_grad[0] else None
        return dx, None, dh_next, dW_xh, dW_hh, db_h, dW_hz, db_z


def rnn_tanh_sequence_loss(
    x: Tensor,
    y: Tensor,
    h0: Tensor,
    W_xh: Tensor,
    W_hh: Tensor,
    b_h: Tensor,
    W_hz: Tensor,
    b_z: Tensor,
) -> Tensor:
    """Sequence loss of a vanilla RNN: h_t = tanh(W_xh x_t + W_hh h_{t-1} + b_h), z_t = softmax(W_hz h_t + b_z).

    Time-major shapes: x (T, N, D), integer targets y (T, N), h0 (N, H), W_xh (H, D), W_hh (H, H),
    b_h (H,), W_hz (K, H), b_z (K,). Loss = sum over t of -log z_{t, y_t}, averaged over the batch.
    """
    return _RNNTanhLoss.apply(x, y.long(), h0, W_xh, W_hh, b_h, W_hz, b_z)


class _GatedRNN(Function):
    """Forward unrolls the gated cell; backward carries dL/dh_t back through c_t, u_t and h_{t-1}."""

    @staticmethod
    def forward(ctx, x, W_c, W_h, W_x, h0):
        N, T, _ = x.shape
        u = x @ W_x.t()  # (N, T, H): candidate W_x x_t for every t
        px = x @ W_c.t()  # input part of the gate pre-activation
        h = h0
        hs, cs = [], []
        for t in range(T):
            c = torch.sigmoid(px[:, t] + h @ W_h.t())
            h = c * h + (1 - c) * u[:, t]
            hs.append(h)
            cs.append(c)
        out = torch.stack(hs, 1)
        ctx.save_for_backward(x, W_c, W_h, W_x, h0, u, out, torch.stack(cs, 1))
        return out

    @staticmethod
    def backward(ctx, g):
        x, W_c, W_h, W_x, h0, u, out, c = ctx.saved_tensors
        T = x.shape[1]
        h_prev = torch.cat([h0.unsqueeze(1), out[:, :-1]], 1)  # h_{t-1} for every t
        dp = torch.empty_like(out)  # dL/d(gate pre-activation)
        du = torch.empty_like(out)  # dL/du_t
        dh = torch.zeros_like(h0)
        for t in range(T - 1, -1, -1):
            dh = dh + g[:, t]
            ct = c[:, t]
            du[:, t] = dh * (1 - ct)
            dc = dh * (h_prev[:, t] - u[:, t])
            dp[:, t] = dc * ct * (1 - ct)
            dh = dh * ct + dp[:, t] @ W_h
        dW_c = torch.einsum("nth,ntd->hd", dp, x)
        dW_h = torch.einsum("nth,ntg->hg", dp, h_prev)
        dW_x = torch.einsum("nth,ntd->hd", du, x)
        dx = dp @ W_c + du @ W_x if ctx.needs_input_grad[0] else None
        return dx, dW_c, dW_h, dW_x, dh


def gated_rnn(x: Tensor, W_c: Tensor, W_h: Tensor, W_x: Tensor, h0: Tensor | None = None) -> Tensor:
    """All hidden states (N, T, H) of the gated cell for x (N, T, D); h0 defaults to zeros (N, H).

    W_c (H, D), W_h (H, H), W_x (H, D). A gate c near 0 copies the new input and forgets the past,
    so gradients through time vanish; c near 1 keeps h and passes gradients through unchanged.
    """
    if h0 is None:
        h0 = x.new_zeros(x.shape[0], W_h.shape[0])
    return _GatedRNN.apply(x, W_c, W_h, W_x, h0)
