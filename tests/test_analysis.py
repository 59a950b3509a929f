"""Shapes, parameter and multiplication counts: formulas vs hooks on real models, and the CLI."""

import itertools

import pytest
import torch
from torch import nn

from dlhw.cli.analyze import main as analyze_main
from dlhw.theory import counting as an


def test_conv_output_shape_known_cases():
    assert an.conv_output_shape(3, 32, 32, 5, filters=6) == (6, 28, 28)
    assert an.conv_output_shape(6, 28, 28, 2, stride=2) == (6, 14, 14)
    assert an.conv_output_shape(6, 14, 14, 5, filters=16) == (16, 10, 10)
    assert an.conv_output_shape(16, 10, 10, 2, stride=2) == (16, 5, 5)
    assert an.conv_output_shape(3, 224, 224, 11, padding=2, stride=4, filters=64) == (64, 55, 55)
    assert an.conv_output_shape(1, 7, 9, 3, padding=1, stride=2, dilation=2, filters=4) == (4, 3, 4)
    assert an.conv_output_shape(2, 5, 5, (3, 1), padding=(0, 1)) == (2, 3, 7)


@pytest.mark.parametrize(
    "kw", [dict(kernel=3, padding=1, stride=2, dilation=2), dict(kernel=4, stride=3)]
)
def test_conv_output_shape_matches_torch(kw):
    conv = nn.Conv2d(
        3, 5, kw["kernel"], kw.get("stride", 1), kw.get("padding", 0), kw.get("dilation", 1)
    )
    y = conv(torch.zeros(1, 3, 13, 10))
    assert an.conv_output_shape(3, 13, 10, filters=5, **kw) == tuple(y.shape[1:])


@pytest.mark.parametrize(
    "args",
    [
        (3, -1, 5, 3),
        (0, 5, 5, 3),
        (3, 5, 5, 7),
        (3, 5, 5, 3, 0, 1, 3),
        (3, 5, 5, 3, -1),
        (3, 5, 5, 3, 0, 0),
    ],
)
def test_conv_output_shape_rejects_bad_input(args):
    with pytest.raises(ValueError):
        an.conv_output_shape(*args)


def lenet_seq() -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(3, 6, 5),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(6, 16, 5),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(400, 120),
        nn.ReLU(),
        nn.Linear(120, 84),
        nn.ReLU(),
        nn.Linear(84, 10),
    )


def test_shape_trace_lenet():
    shapes = [s for _, _, s in an.shape_trace(lenet_seq(), (3, 32, 32))]
    assert shapes[:6] == [
        (6, 28, 28),
        (6, 28, 28),
        (6, 14, 14),
        (16, 10, 10),
        (16, 10, 10),
        (16, 5, 5),
    ]
    assert shapes[6:] == [(400,), (120,), (120,), (84,), (84,), (10,)]


def test_counts_lenet():
    m = lenet_seq()
    assert an.count_params(m) == 62006
    mc = an.count_multiplications(m, (3, 32, 32))
    fwd = [6 * 28 * 28 * 3 * 25, 16 * 10 * 10 * 6 * 25, 400 * 120, 120 * 84, 84 * 10]
    assert [f for _, _, f, _ in mc.layers] == fwd
    assert [b for _, _, _, b in mc.layers] == [fwd[0]] + [2 * f for f in fwd[1:]]
    assert mc.forward == sum(fwd) == 651720 and mc.total == 3 * sum(fwd) - fwd[0]
    assert m.training  # mode restored


@pytest.mark.parametrize("d,L,n,c", [(784, 2, 100, 10), (20, 0, 5, 3), (12, 3, 7, 1)])
@pytest.mark.parametrize("impl", ["torch", "scratch"])
def test_mlp_closed_forms_match_hooks(d, L, n, c, impl):
    from dlhw.models.mlp import MLP

    model = MLP((d,), c, hidden=(n,) * L, impl=impl)
    mc = an.count_multiplications(model, (d,))
    assert an.count_params(model) == an.mlp_param_count(d, L, n, c)
    assert mc.forward == an.mlp_forward_multiplications(d, L, n, c)
    assert mc.total == an.mlp_backprop_multiplications(d, L, n, c)


def test_mlp_closed_forms_on_plain_sequential():
    d, n, c = 9, 4, 3
    model = nn.Sequential(nn.Linear(d, n), nn.ReLU(), nn.Linear(n, n), nn.ReLU(), nn.Linear(n, c))
    mc = an.count_multiplications(model, (d,))
    assert an.count_params(model) == an.mlp_param_count(d, 2, n, c) == 9 * 4 + 4 + 20 + 15
    assert mc.total == an.mlp_backprop_multiplications(d, 2, n, c) == 3 * (36 + 16 + 12) - 36


@pytest.mark.parametrize(
    "d,L,n,c", [(1, 0, 1, 1), (2, 0, 3, 2), (2, 1, 3, 2), (3, 2, 2, 2), (2, 3, 2, 1)]
)
def test_path_enumeration_bruteforce_equals_closed_form(d, L, n, c):
    brute = an.path_enumeration_multiplications_bruteforce(d, L, n, c)
    assert brute == an.path_enumeration_multiplications(d, L, n, c)


def test_path_enumeration_is_exponential():
    bp = [an.mlp_backprop_multiplications(10, L, 10, 10) for L in range(1, 6)]
    pe = [an.path_enumeration_multiplications(10, L, 10, 10) for L in range(1, 6)]
    assert all(b2 - b1 == 300 for b1, b2 in itertools.pairwise(bp))  # backprop: linear in L
    assert all(p2 / p1 > 10 for p1, p2 in itertools.pairwise(pe))  # paths: x n per extra layer


def test_cli_conv(capsys):
    assert analyze_main(["conv", "--in", "3", "32", "32", "--kernel", "5", "--filters", "6"]) == 0
    out = capsys.readouterr().out
    assert "input 3x32x32 -> output 6x28x28" in out and "parameters: 456" in out
    assert analyze_main(["conv", "--in", "6", "28", "28", "--kernel", "2", "--stride", "2"]) == 0
    assert "-> output 6x14x14" in capsys.readouterr().out


def test_cli_mlp(capsys):
    assert analyze_main(["mlp", "--d", "784", "--layers", "3", "--units", "100", "--classes", "10"]) == 0
    out = capsys.readouterr().out
    assert "path enumeration" in out
    assert "189,800" in out and "89,610" in out  # L = 2: backprop mults, params


def test_cli_model(capsys):
    assert analyze_main(["model", "--model", "lenet", "--in", "3", "32", "32", "--classes", "10"]) == 0
    out = capsys.readouterr().out
    assert "16x5x5" in out and "parameters: 62,006" in out and "total: 1,602,360" in out
    assert (
        analyze_main(
            ["model", "--model", "mlp", "--in", "1", "8", "8", "--hidden", "5", "--impl", "scratch"]
        )
        == 0
    )
    assert "parameters: 385" in capsys.readouterr().out


def test_fallback_models_match_project_models():
    for name, shape, hidden in (("lenet", (3, 32, 32), ()), ("mlp", (1, 8, 8), (7, 5))):
        model, _ = an.build_model(name, shape, 10, hidden)
        fallback = an._fallback_model(name, shape, 10, hidden, "torch")
        assert an.count_params(fallback) == an.count_params(model)
        assert (
            an.count_multiplications(fallback, shape).total
            == an.count_multiplications(model, shape).total
        )


@pytest.mark.parametrize(
    "argv",
    [
        ["conv", "--in", "3", "4", "4", "--kernel", "7"],
        ["conv", "--in", "-3", "32", "32", "--kernel", "5"],
        ["conv", "--in", "3", "32", "32", "--kernel", "5", "--stride", "0"],
        ["mlp", "--d", "-1", "--layers", "2", "--units", "3", "--classes", "2"],
        ["model", "--model", "lenet", "--in", "3", "8", "8"],
        ["model", "--model", "mlp", "--in", "0", "4"],
        ["conv", "--in", "3", "32"],
    ],
)
def test_cli_bad_input_exit_2(argv, capsys):
    with pytest.raises(SystemExit) as e:
        analyze_main(argv)
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert "error:" in err and "Traceback" not in err
