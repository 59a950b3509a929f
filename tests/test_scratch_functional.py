"""Hand-written Functions: gradcheck in float64 and agreement with torch.nn.functional in float32."""

import pytest
import torch
import torch.nn.functional as F
from torch.autograd import gradcheck

from dlhw.nn import functional as SF
from dlhw.nn import gated_rnn, rnn_tanh_sequence_loss

D = torch.float64


def r(*shape, dtype=D, grad=True, seed=None):
    if seed is not None:
        torch.manual_seed(seed)
    return torch.randn(*shape, dtype=dtype, requires_grad=grad)


def compare(f_scratch, f_torch, inputs, atol=1e-5, rtol=1e-4):
    """Forward values and gradients of every grad-requiring input agree."""
    a = f_scratch(*inputs)
    b = f_torch(*inputs)
    torch.testing.assert_close(a, b, atol=atol, rtol=rtol)
    g = torch.randn_like(a)
    req = [t for t in inputs if isinstance(t, torch.Tensor) and t.requires_grad]
    ga = torch.autograd.grad(a, req, g)
    gb = torch.autograd.grad(b, req, g)
    for x, y in zip(ga, gb, strict=True):
        torch.testing.assert_close(x, y, atol=atol, rtol=rtol)


# ----------------------------------------------------------------------------- linear / relu


@pytest.mark.parametrize("xshape", [(5, 4), (2, 3, 4)])
@pytest.mark.parametrize("bias", [True, False])
def test_linear(xshape, bias):
    torch.manual_seed(0)
    x, w = r(*xshape), r(3, 4)
    b = r(3) if bias else None
    assert gradcheck(SF.linear, (x, w, b))
    args32 = [t.detach().float().requires_grad_() if t is not None else None for t in (x, w, b)]
    compare(SF.linear, F.linear, args32)


def test_relu():
    torch.manual_seed(0)
    x = r(4, 5)
    assert gradcheck(SF.relu, (x,))
    compare(SF.relu, F.relu, [r(3, 2, 5, dtype=torch.float32)])


# ----------------------------------------------------------------------------- dropout


def test_dropout_train_eval_and_grad():
    torch.manual_seed(0)
    x = torch.randn(2000, dtype=D, requires_grad=True)
    assert SF.dropout(x, 0.3, training=False) is x
    gen = torch.Generator().manual_seed(1)
    y = SF.dropout(x, 0.3, training=True, generator=gen)
    kept = y != 0
    torch.testing.assert_close(y[kept], x[kept] / 0.7)
    assert abs((~kept).double().mean().item() - 0.3) < 0.05
    (g,) = torch.autograd.grad(y.sum(), x)
    torch.testing.assert_close(g, kept.double() / 0.7)
    # same generator state -> same mask; the mask is a constant, so gradcheck applies
    assert gradcheck(lambda t: SF.dropout(t, 0.5, True, torch.Generator().manual_seed(3)), (r(6),))
    assert torch.equal(SF.dropout(x, 1.0), torch.zeros_like(x))
    with pytest.raises(ValueError):
        SF.dropout(x, 1.5)


# ----------------------------------------------------------------------------- batch norm


@pytest.mark.parametrize("shape", [(6, 3), (4, 3, 5, 2)])
@pytest.mark.parametrize("training", [True, False])
def test_batch_norm_gradcheck(shape, training):
    torch.manual_seed(0)
    x, w, b = r(*shape), r(3), r(3)
    rm, rv = torch.randn(3, dtype=D), torch.rand(3, dtype=D) + 0.5
    assert gradcheck(lambda x, w, b: SF.batch_norm(x, rm, rv, w, b, training), (x, w, b))
    assert gradcheck(lambda x: SF.batch_norm(x, rm, rv, None, None, training), (x,))


@pytest.mark.parametrize("shape", [(8, 3), (4, 3, 5, 6)])
def test_batch_norm_matches_torch_and_running_stats(shape):
    torch.manual_seed(0)
    x, w, b = r(*shape, dtype=torch.float32), r(3, dtype=torch.float32), r(3, dtype=torch.float32)
    stats = {k: (torch.zeros(3), torch.ones(3)) for k in ("s", "t")}
    for training in (True, True, False):
        compare(
            lambda x, w, b, t=training: SF.batch_norm(x, *stats["s"], w, b, t, 0.2, 1e-3),
            lambda x, w, b, t=training: F.batch_norm(x, *stats["t"], w, b, t, 0.2, 1e-3),
            [x, w, b],
        )
    # compare() calls each forward once per mode: running estimates (unbiased var) must agree
    torch.testing.assert_close(stats["s"][0], stats["t"][0])
    torch.testing.assert_close(stats["s"][1], stats["t"][1])
    assert not torch.allclose(stats["s"][1], torch.ones(3))
    with pytest.raises(ValueError, match="more than 1 value"):
        SF.batch_norm(torch.randn(1, 3), None, None, training=True)


# ----------------------------------------------------------------------------- conv / pool

CONV_CASES = [
    dict(stride=1, padding=0),
    dict(stride=2, padding=1),
    dict(stride=(1, 2), padding=(2, 0)),
    dict(stride=3, padding=2, dilation=2),
]


@pytest.mark.parametrize("kw", CONV_CASES)
def test_conv2d_gradcheck(kw):
    torch.manual_seed(0)
    x, w, b = r(2, 3, 9, 8), r(4, 3, 3, 2), r(4)
    assert gradcheck(lambda x, w, b: SF.conv2d(x, w, b, **kw), (x, w, b))
    assert gradcheck(lambda x, w: SF.conv2d(x, w, None, **kw), (x, w))


@pytest.mark.parametrize("kw", CONV_CASES)
@pytest.mark.parametrize(
    "xshape,wshape", [((3, 3, 16, 16), (6, 3, 5, 5)), ((2, 4, 7, 11), (5, 4, 3, 3))]
)
def test_conv2d_matches_torch(kw, xshape, wshape):
    torch.manual_seed(1)
    f32 = torch.float32
    inputs = [r(*xshape, dtype=f32), r(*wshape, dtype=f32), r(wshape[0], dtype=f32)]
    compare(lambda *a: SF.conv2d(*a, **kw), lambda *a: F.conv2d(*a, **kw), inputs)


def test_conv2d_rejects_groups():
    with pytest.raises(ValueError):
        SF.conv2d(torch.randn(1, 2, 4, 4), torch.randn(2, 1, 3, 3), groups=2)


@pytest.mark.parametrize("k,s,p", [(2, None, 0), (3, 2, 1), (3, 1, 0), ((2, 3), (1, 2), 0)])
def test_max_pool2d(k, s, p):
    torch.manual_seed(0)
    assert gradcheck(lambda x: SF.max_pool2d(x, k, s, p), (r(2, 3, 9, 8),))
    compare(
        lambda x: SF.max_pool2d(x, k, s, p),
        lambda x: F.max_pool2d(x, k, s, p),
        [r(2, 3, 10, 7, dtype=torch.float32)],
    )


# ----------------------------------------------------------------------------- losses


def test_cross_entropy():
    torch.manual_seed(0)
    z, t = r(6, 4), torch.randint(0, 4, (6,))
    assert gradcheck(lambda z: SF.cross_entropy(z, t), (z,))
    big = (r(5, 3, dtype=torch.float32) * 1000).detach().requires_grad_()  # stability
    compare(
        lambda z: SF.cross_entropy(z, t[:5] % 3), lambda z: F.cross_entropy(z, t[:5] % 3), [big]
    )
    compare(
        SF.cross_entropy,
        F.cross_entropy,
        [r(7, 10, dtype=torch.float32), torch.randint(0, 10, (7,))],
    )


@pytest.mark.parametrize("long_target", [True, False])
def test_binary_losses(long_target):
    torch.manual_seed(0)
    s = r(9)
    t = torch.randint(0, 2, (9,))
    t = t if long_target else t.to(D)
    assert gradcheck(lambda s: SF.binary_logistic_loss(s, t), (s,))
    assert gradcheck(lambda s: SF.binary_hinge_loss(s, t), (s,))
    s32 = (r(9, dtype=torch.float32) * 30).detach().requires_grad_()
    tf = t.float()
    compare(
        lambda s: SF.binary_logistic_loss(s, t),
        lambda s: F.binary_cross_entropy_with_logits(s, tf),
        [s32],
    )
    compare(
        lambda s: SF.binary_hinge_loss(s, t), lambda s: F.relu(1 - (2 * tf - 1) * s).mean(), [s32]
    )
    with pytest.raises(ValueError):
        SF.binary_hinge_loss(s, t[:3])


def test_multiclass_hinge_matches_multi_margin_loss():
    torch.manual_seed(0)
    z, t = r(6, 5), torch.randint(0, 5, (6,))
    assert gradcheck(lambda z: SF.multiclass_hinge_loss(z, t), (z,))
    compare(
        lambda z: SF.multiclass_hinge_loss(z, t),
        lambda z: F.multi_margin_loss(z, t),
        [r(6, 5, dtype=torch.float32)],
    )


@pytest.mark.parametrize("smoothing", [0.1, 0.5])
def test_cross_entropy_label_smoothing(smoothing):
    torch.manual_seed(0)
    z, t = r(6, 4), torch.randint(0, 4, (6,))
    assert gradcheck(lambda z: SF.cross_entropy(z, t, label_smoothing=smoothing), (z,))
    compare(
        lambda z: SF.cross_entropy(z, t, label_smoothing=smoothing),
        lambda z: F.cross_entropy(z, t, label_smoothing=smoothing),
        [r(6, 4, dtype=torch.float32)],
    )


def test_multiclass_hinge_margin():
    torch.manual_seed(0)
    z, t = r(6, 5), torch.randint(0, 5, (6,))
    assert gradcheck(lambda z: SF.multiclass_hinge_loss(z, t, margin=2.5), (z,))
    compare(
        lambda z: SF.multiclass_hinge_loss(z, t, margin=0.3),
        lambda z: F.multi_margin_loss(z, t, margin=0.3),
        [r(6, 5, dtype=torch.float32)],
    )


# ----------------------------------------------------------------------------- recurrent


def _rnn_ref(x, y, h0, W_xh, W_hh, b_h, W_hz, b_z):
    h, loss = h0, 0.0
    for t in range(x.shape[0]):
        h = torch.tanh(x[t] @ W_xh.T + h @ W_hh.T + b_h)
        loss = loss + F.cross_entropy(h @ W_hz.T + b_z, y[t], reduction="sum")
    return loss / x.shape[1]


def test_rnn_tanh_sequence_loss():
    torch.manual_seed(0)
    T, N, Dd, H, K = 4, 3, 2, 5, 3
    args = (
        r(T, N, Dd),
        torch.randint(0, K, (T, N)),
        r(N, H),
        r(H, Dd),
        r(H, H) * 0.5,
        r(H),
        r(K, H),
        r(K),
    )
    args = tuple(a.detach().requires_grad_() if a.is_floating_point() else a for a in args)
    assert gradcheck(rnn_tanh_sequence_loss, args)
    compare(rnn_tanh_sequence_loss, _rnn_ref, args, atol=1e-10, rtol=1e-10)


def _gated_ref(x, W_c, W_h, W_x, h0):
    h, out = h0, []
    for t in range(x.shape[1]):
        c = torch.sigmoid(x[:, t] @ W_c.T + h @ W_h.T)
        h = c * h + (1 - c) * (x[:, t] @ W_x.T)
        out.append(h)
    return torch.stack(out, 1)


def test_gated_rnn():
    torch.manual_seed(0)
    args = (r(3, 5, 2), r(4, 2), r(4, 4), r(4, 2), r(3, 4))
    assert gradcheck(gated_rnn, args)
    compare(gated_rnn, _gated_ref, args, atol=1e-10, rtol=1e-10)
    x = args[0].detach()
    torch.testing.assert_close(
        gated_rnn(x, *args[1:4]), _gated_ref(x, *args[1:4], torch.zeros(3, 4, dtype=D))
    )


def _dhT_dh0_norm(gate_sign: float, T: int = 20) -> float:
    """Norm of the Jacobian d h_T / d h_0 for a gate driven towards 0 (sign -1) or 1 (sign +1)."""
    torch.manual_seed(0)
    N, Dd, H = 1, 3, 4
    x = torch.ones(N, T, Dd, dtype=D)
    # gate pre-activation = +-15 -> c ~ 3e-7 or 1 - 3e-7
    W_c = torch.full((H, Dd), gate_sign * 5.0, dtype=D)
    W_h = 0.1 * torch.randn(H, H, dtype=D)
    W_x = torch.randn(H, Dd, dtype=D)
    h0 = torch.randn(N, H, dtype=D)
    jac = torch.autograd.functional.jacobian(lambda h: gated_rnn(x, W_c, W_h, W_x, h)[:, -1], h0)
    return jac.reshape(H, H).norm().item()


def test_gated_rnn_gradient_vanishes_when_gate_closed():
    closed, open_ = _dhT_dh0_norm(-1.0), _dhT_dh0_norm(+1.0)
    assert closed < 1e-30  # ~ prod_t c_t: the past is forgotten and so is its gradient
    assert 1.5 < open_ < 2.5  # c ~ 1: h_T ~ h_0, Jacobian ~ identity (Frobenius norm 2 for H = 4)
