"""The pieces of a pack against PyTorch's own: matrix-product recurrent cells against nn.LSTM /
nn.GRU / nn.RNN, the stacked optimizer against torch.optim per run, vmap over K models against
the K models one by one."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.func import functional_call, stack_module_state, vmap

from dlhw.nn.stackable import (
    MaskedDropout,
    MatmulRecurrent,
    PackedRecurrent,
    stackable,
)
from dlhw.optim.stacked import StackedOptimizer, unsupported_reason


@pytest.mark.parametrize("make", [
    lambda: nn.LSTM(5, 7, num_layers=2, batch_first=True),
    lambda: nn.GRU(5, 7, batch_first=True),
    lambda: nn.RNN(5, 7, nonlinearity="relu", batch_first=True),
    lambda: nn.RNN(5, 7, batch_first=True),
])
def test_matmul_cells_match_torch_forward_and_backward(make) -> None:
    torch.manual_seed(0)
    rnn = make()
    cell = MatmulRecurrent(rnn)
    assert cell.state_dict().keys() == rnn.state_dict().keys()
    x = torch.randn(4, 6, 5, requires_grad=True)
    ours, theirs = cell(x)[0], rnn(x)[0]
    torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=1e-5)
    g = torch.randn_like(ours)
    grads_ours = torch.autograd.grad(ours, [x, *cell.parameters()], g)
    grads_theirs = torch.autograd.grad(theirs, [x, *rnn.parameters()], g)
    for a, b in zip(grads_ours, grads_theirs, strict=True):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)


class _Holder(nn.Module):
    """A model around one layer (stackable swaps submodules)."""

    def __init__(self, layer: nn.Module):
        super().__init__()
        self.layer = layer

    def forward(self, x):
        out = self.layer(x)
        return out[0] if isinstance(out, tuple) else out


@pytest.mark.parametrize(("make", "packed", "shape"), [
    (lambda: nn.LSTM(5, 7, num_layers=2, batch_first=True), PackedRecurrent, (4, 6, 5)),
    (lambda: nn.GRU(5, 7, batch_first=True), PackedRecurrent, (4, 6, 5)),
    (lambda: nn.RNN(5, 7, nonlinearity="relu", bias=False, batch_first=True), PackedRecurrent, (4, 6, 5)),
])
def test_packed_recurrent_layers_run_each_copy_through_its_own_kernel(make, packed, shape) -> None:
    """On a CPU, vmap over the stacked layer gives each copy exactly what the layer alone gives,
    forward and backward, for K batches and for one shared batch (evaluation)."""
    torch.manual_seed(0)
    nets = [_Holder(make()) for _ in range(3)]
    copies = [stackable(n) for n in nets]
    assert type(copies[0].layer) is packed
    params, _ = stack_module_state(copies)
    x = torch.randn(3, *shape, requires_grad=True)
    out = vmap(lambda p, xb: functional_call(copies[0], p, (xb,)))(params, x)
    alone = torch.stack([net(x[k]) for k, net in enumerate(nets)])
    assert torch.equal(out, alone)
    g = torch.randn_like(out)
    ours = torch.autograd.grad(out, [x, *params.values()], g)
    theirs = torch.autograd.grad(alone, [x, *[p for net in nets for p in net.parameters()]], g)
    per_param = [torch.stack(theirs[1 + i::len(params)]) for i in range(len(params))]
    torch.testing.assert_close(ours[0], theirs[0], rtol=0, atol=0)
    for a, b in zip(ours[1:], per_param, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    shared = torch.randn(*shape)
    with torch.no_grad():
        out = vmap(lambda p: functional_call(copies[0], p, (shared,)))(params)
        assert torch.equal(out, torch.stack([net(shared) for net in nets]))


def test_vmap_over_stacked_models_gives_each_models_output() -> None:
    torch.manual_seed(0)
    nets = [nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(),
                          nn.Dropout(0.5), nn.Linear(4 * 6 * 6, 3)) for _ in range(3)]
    copies = [stackable(n) for n in nets]
    assert isinstance(copies[0][4], MaskedDropout)
    params, buffers = stack_module_state(copies)
    base = copies[0]
    x = torch.randn(3, 2, 3, 8, 8)
    for net in nets:
        net.eval()
    base.eval()
    out = vmap(lambda p, b, xb: functional_call(base, (p, b), (xb,)))(params, buffers, x)
    torch.testing.assert_close(out, torch.stack([n(x[i]) for i, n in enumerate(nets)]))


CASES = [
    (torch.optim.SGD, [dict(lr=0.1, momentum=0.9, weight_decay=5e-4), dict(lr=0.05, momentum=0.0),
                       dict(lr=0.01, momentum=0.5, dampening=0.1)]),
    (torch.optim.SGD, [dict(lr=0.1, momentum=0.9, nesterov=True)] * 3),
    (torch.optim.Adam, [dict(lr=1e-3), dict(lr=1e-2, betas=(0.8, 0.99), weight_decay=1e-3), dict(lr=3e-4)]),
    (torch.optim.AdamW, [dict(lr=1e-3), dict(lr=1e-2, betas=(0.8, 0.99), weight_decay=1e-1), dict(lr=3e-4)]),
    (torch.optim.RMSprop, [dict(lr=1e-3), dict(lr=1e-2, momentum=0.9, weight_decay=1e-3), dict(lr=3e-4, alpha=0.9)]),
]


@pytest.mark.parametrize(("cls", "settings"), CASES, ids=[c.__name__ for c, _ in CASES])
def test_stacked_optimizer_follows_each_runs_own_optimizer(cls, settings) -> None:
    torch.manual_seed(0)
    k = len(settings)
    alone = [torch.randn(5, 4, requires_grad=True) for _ in range(k)]
    optimizers = [cls([p], **s) for p, s in zip(alone, settings, strict=True)]
    stacked = nn.Parameter(torch.stack([p.detach().clone() for p in alone]))
    runs = [cls([nn.Parameter(torch.zeros(5, 4))], **s) for s in settings]
    pack = StackedOptimizer([stacked], runs)
    for _ in range(20):
        grads = torch.randn(k, 5, 4)
        for i in range(k):
            alone[i].grad = grads[i].clone()
            optimizers[i].step()
        stacked.grad = grads.clone()
        pack.step()
    for i in range(k):
        torch.testing.assert_close(stacked[i].detach(), alone[i].detach(), atol=1e-5, rtol=1e-5)
        # the run's slice of state loads into its own optimizer and matches what that one holds
        state, own = pack.state_of(i), optimizers[i].state_dict()
        assert state["state"].keys() == own["state"].keys()
        for key, value in own["state"].get(0, {}).items():
            torch.testing.assert_close(torch.as_tensor(state["state"][0][key]).float(),
                                       torch.as_tensor(value).float(), atol=1e-5, rtol=1e-5)
        cls([nn.Parameter(alone[i].detach().clone())], **settings[i]).load_state_dict(state)


def test_a_frozen_run_keeps_its_weights_and_state() -> None:
    runs = [torch.optim.Adam([nn.Parameter(torch.zeros(3))], lr=0.1) for _ in range(2)]
    stacked = nn.Parameter(torch.zeros(2, 3))
    pack = StackedOptimizer([stacked], runs)
    stacked.grad = torch.ones(2, 3)
    pack.step()
    before = stacked[1].detach().clone(), pack.state[stacked]["exp_avg"][1].clone()
    pack.frozen = [1]
    stacked.grad = torch.full((2, 3), float("nan"))
    pack.step()
    assert torch.equal(stacked[1].detach(), before[0]) and torch.equal(pack.state[stacked]["exp_avg"][1], before[1])
    assert torch.isnan(stacked[0]).all()  # the other run took its (nan) step


def test_optimizers_without_a_stacked_form_are_named() -> None:
    p = [nn.Parameter(torch.zeros(2))]
    assert unsupported_reason(torch.optim.Adam(p, amsgrad=True)) == "optimizer option amsgrad=true has no stacked form"
    assert "has no stacked form" in unsupported_reason(torch.optim.Adagrad(p))
    assert unsupported_reason(torch.optim.SGD(p, lr=0.1)) is None


@pytest.mark.parametrize("algorithm", ["norm", "value"])
def test_each_run_of_a_pack_is_clipped_by_its_own_gradient(algorithm: str) -> None:
    from dlhw.lit.packed import PackedClassifier

    torch.manual_seed(0)
    nets = [nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3)) for _ in range(3)]
    optimizers = [torch.optim.SGD(n.parameters(), lr=0.1) for n in nets]
    pack = PackedClassifier(nets, nn.CrossEntropyLoss(), optimizers, [None] * 3,
                            [torch.Generator() for _ in range(3)])
    scales = (0.01, 1.0, 100.0)  # one run under the limit, two over it
    for p, (name, _) in zip(pack.stacked.parameters(), nets[0].named_parameters(), strict=True):
        p.grad = torch.stack([torch.randn_like(p[k]) * scales[k] for k in range(3)])
        for k, net in enumerate(nets):
            net.get_parameter(name).grad = p.grad[k].clone()
    pack.configure_gradient_clipping(None, 0.5, algorithm)
    for k, net in enumerate(nets):
        if algorithm == "norm":
            torch.nn.utils.clip_grad_norm_(net.parameters(), 0.5)
        else:
            torch.nn.utils.clip_grad_value_(net.parameters(), 0.5)
        for p, own in zip(pack.stacked.parameters(), net.parameters(), strict=True):
            torch.testing.assert_close(p.grad[k], own.grad)


def test_on_a_cpu_every_run_of_a_pack_takes_its_own_step() -> None:
    import copy

    from dlhw.lit.packed import PackedClassifier

    torch.manual_seed(0)
    nets = [nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3)) for _ in range(3)]
    alone = copy.deepcopy(nets)
    make = [lambda p, lr=lr: torch.optim.SGD(p, lr=lr, momentum=0.9, weight_decay=1e-3) for lr in (0.1, 0.05, 0.2)]
    pack = PackedClassifier(nets, nn.CrossEntropyLoss(), [m(n.parameters()) for m, n in zip(make, nets, strict=True)],
                            [None] * 3, [torch.Generator() for _ in range(3)])
    stacked_optimizer = pack.configure_optimizers()
    own = [m(n.parameters()) for m, n in zip(make, alone, strict=True)]
    x, y = torch.randn(3, 5, 4), torch.randint(0, 3, (3, 5))
    for _ in range(2):
        assert pack.training_step((x, y), 0) is None  # nothing left for Lightning to step
        for k, net in enumerate(alone):
            own[k].zero_grad()
            nn.functional.cross_entropy(net(x[k]), y[k]).backward()
            own[k].step()
    for k, net in enumerate(alone):
        assert all(torch.equal(p[k], q) for p, q in zip(pack.stacked.parameters(), net.parameters(), strict=True))
        saved = stacked_optimizer.state_of(k)["state"]  # what the run's checkpoint holds
        assert torch.equal(saved[0]["momentum_buffer"], own[k].state_dict()["state"][0]["momentum_buffer"])
    x[1, 0, 0] = float("nan")  # run 1 diverges: it takes no step, the others do
    before = [p.detach().clone() for p in pack.stacked.parameters()]
    pack.training_step((x, y), 0)
    assert pack.active.tolist() == [True, False, True]
    after = list(pack.stacked.parameters())
    assert all(torch.equal(b[1], a[1]) for b, a in zip(before, after, strict=True))
    assert not any(torch.equal(b[0], a[0]) for b, a in zip(before, after, strict=True))
    pack.active.zero_()
    assert pack.training_step((x, y), 0) is None  # no run left: nothing computed


def test_packed_layer_on_one_shared_input_sums_the_runs_gradients() -> None:
    """x read by every run (not batched by vmap): its gradient is the sum over the runs."""
    torch.manual_seed(0)
    nets = [_Holder(nn.LSTM(5, 7, batch_first=True)) for _ in range(3)]
    copies = [stackable(n) for n in nets]
    params, _ = stack_module_state(copies)
    x = torch.randn(4, 6, 5, requires_grad=True)
    out = vmap(lambda p: functional_call(copies[0], p, (x,)))(params)
    (gx,) = torch.autograd.grad(out.sum(), [x])
    (alone,) = torch.autograd.grad(sum(net(x).sum() for net in nets), [x])
    torch.testing.assert_close(gx, alone)


def test_map_runs_keeps_order_grad_mode_and_thread_count() -> None:
    from dlhw.nn.run_threads import map_runs

    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        seen: list[tuple[int, bool, int]] = []

        def work(i: int) -> int:
            seen.append((i, torch.is_grad_enabled(), torch.get_num_threads()))
            return i * i

        with torch.no_grad():
            assert map_runs(work, 5) == [0, 1, 4, 9, 16]
        assert sorted(i for i, _, _ in seen) == [0, 1, 2, 3, 4]
        assert all(not grad and threads == 1 for _, grad, threads in seen)
        assert torch.get_num_threads() == 2

        def fail(i: int) -> int:
            if i == 3:
                raise ValueError("run 3")
            return i

        with pytest.raises(ValueError, match="run 3"):
            map_runs(fail, 4)
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
