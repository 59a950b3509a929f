"""Scratch modules: same state_dict as torch.nn, same outputs, and a LeNet training step that agrees."""

import pytest
import torch
from torch import nn

import dlhw.nn as snn
from dlhw.nn import layer_set

CASES = [
    ("Linear", (7, 3), {}, (5, 7)),
    ("Linear", (7, 3), {"bias": False}, (2, 4, 7)),
    ("Conv2d", (3, 4, 3), {"stride": 2, "padding": 1}, (2, 3, 9, 9)),
    ("Conv2d", (2, 5, (3, 2)), {"bias": False}, (2, 2, 6, 7)),
    ("BatchNorm1d", (4,), {}, (6, 4)),
    ("BatchNorm1d", (4,), {"momentum": None}, (6, 4, 3)),
    ("BatchNorm2d", (3,), {"eps": 1e-3, "momentum": 0.3}, (4, 3, 5, 5)),
    ("BatchNorm2d", (3,), {"affine": False, "track_running_stats": False}, (4, 3, 5, 5)),
    ("MaxPool2d", (2,), {}, (2, 3, 8, 8)),
    ("MaxPool2d", (3, 2), {}, (2, 3, 9, 8)),
    ("ReLU", (), {}, (4, 5)),
    ("Dropout", (0.3,), {}, (4, 5)),
]


def _pair(name, args, kwargs, seed=0):
    torch.manual_seed(seed)
    t = getattr(nn, name)(*args, **kwargs)
    torch.manual_seed(seed)
    s = getattr(snn, name)(*args, **kwargs)
    return t, s


@pytest.mark.parametrize("name,args,kwargs,xshape", CASES)
def test_state_dict_and_init_identical(name, args, kwargs, xshape):
    t, s = _pair(name, args, kwargs)
    sd_t, sd_s = t.state_dict(), s.state_dict()
    assert list(sd_t) == list(sd_s)
    for k in sd_t:
        assert sd_t[k].shape == sd_s[k].shape and sd_t[k].dtype == sd_s[k].dtype
        torch.testing.assert_close(sd_t[k], sd_s[k])  # same default initialisation, same seed
    # cross-loadable both ways (strict)
    getattr(nn, name)(*args, **kwargs).load_state_dict(sd_s)
    getattr(snn, name)(*args, **kwargs).load_state_dict(sd_t)


@pytest.mark.parametrize("name,args,kwargs,xshape", CASES)
def test_forward_backward_match_torch(name, args, kwargs, xshape):
    t, s = _pair(name, args, kwargs)
    for train in (True, True, False):
        t.train(train), s.train(train)
        torch.manual_seed(1)
        x = torch.randn(*xshape, requires_grad=True)
        if name == "Dropout" and train:
            # different RNG streams: check the inverted-dropout contract instead of equality
            y = s(x)
            kept = y != 0
            torch.testing.assert_close(y[kept], x[kept] / 0.7)
            continue
        yt, ys = t(x), s(x)
        torch.testing.assert_close(ys, yt, atol=1e-5, rtol=1e-4)
        g = torch.randn_like(yt)
        params_t = [x, *t.parameters()]
        params_s = [x, *s.parameters()]
        for a, b in zip(
            torch.autograd.grad(ys, params_s, g), torch.autograd.grad(yt, params_t, g), strict=True
        ):
            torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)
    for (k, a), b in zip(s.state_dict().items(), t.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b, msg=k)  # running stats / num_batches_tracked


def test_layer_set():
    assert layer_set("torch").Conv2d is nn.Conv2d
    sc = layer_set("scratch")
    assert sc.Conv2d is snn.Conv2d and sc.BatchNorm1d is snn.BatchNorm1d
    for attr in ("Linear", "Conv2d", "ReLU", "Dropout", "BatchNorm1d", "BatchNorm2d", "MaxPool2d"):
        assert getattr(sc, attr).__module__ == "dlhw.nn.modules"
    with pytest.raises(ValueError, match="torch, scratch"):
        layer_set("numpy")


def test_unsupported_options_rejected():
    with pytest.raises(ValueError):
        snn.Conv2d(4, 4, 3, groups=2)
    with pytest.raises(ValueError):
        snn.MaxPool2d(2, ceil_mode=True)


def lenet(impl: str) -> nn.Sequential:
    L = layer_set(impl)
    return nn.Sequential(
        L.Conv2d(3, 6, 5), L.ReLU(), L.MaxPool2d(2),
        L.Conv2d(6, 16, 5), L.ReLU(), L.MaxPool2d(2),
        nn.Flatten(),
        L.Linear(400, 120), L.ReLU(),
        L.Linear(120, 84), L.ReLU(),
        L.Linear(84, 10),
    )  # fmt: skip


def test_lenet_training_step_matches_torch():
    from dlhw.nn.functional import cross_entropy

    torch.manual_seed(0)
    ref, mine = lenet("torch"), lenet("scratch")
    mine.load_state_dict(ref.state_dict())
    x, y = torch.randn(8, 3, 32, 32), torch.randint(0, 10, (8,))
    loss_t = nn.functional.cross_entropy(ref(x), y)
    loss_s = cross_entropy(mine(x), y)
    torch.testing.assert_close(loss_s, loss_t)
    loss_t.backward()
    loss_s.backward()
    for (k, p), q in zip(mine.named_parameters(), ref.parameters(), strict=True):
        torch.testing.assert_close(p.grad, q.grad, atol=1e-6, rtol=1e-4, msg=k)
    # one SGD step keeps them together
    for m in (ref, mine):
        torch.optim.SGD(m.parameters(), lr=0.1).step()
    torch.testing.assert_close(mine(x), ref(x), atol=1e-5, rtol=1e-4)


def test_project_models_with_scratch_layers():
    """The project's LeNet/MLP built with impl='scratch' load the torch weights and agree."""
    from dlhw.models import MLP, LeNet

    torch.manual_seed(0)
    x = torch.randn(4, 3, 32, 32)
    for build in (
        lambda impl: LeNet((3, 32, 32), 10, impl=impl, norm="batch"),
        lambda impl: MLP((3, 32, 32), 10, hidden=(16,), impl=impl),
    ):
        ref, mine = build("torch"), build("scratch")
        mine.load_state_dict(ref.state_dict())
        torch.testing.assert_close(mine(x), ref(x), atol=1e-5, rtol=1e-4)


def test_gated_rnn_module():
    torch.manual_seed(0)
    m = snn.GatedRNN(3, 5)
    assert {k: tuple(v.shape) for k, v in m.state_dict().items()} == {
        "weight_c": (5, 3),
        "weight_h": (5, 5),
        "weight_x": (5, 3),
    }
    x = torch.randn(2, 4, 3)
    out, h_n = m(x)
    assert out.shape == (2, 4, 5) and h_n.shape == (1, 2, 5)
    torch.testing.assert_close(h_n[0], out[:, -1])
    out2, _ = m(x[:, 2:], h_n.new_zeros(1, 2, 5) + out[:, 1].unsqueeze(0))
    torch.testing.assert_close(out2, out[:, 2:])  # continuing from a given h0
    out.sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in m.parameters())
