"""Scalar autodiff engine: CATALOGUE E by hand, random programs vs torch.autograd, and the CLI."""

import math
import random

import pytest
import torch

from dlhw.cli.autodiff import main as autodiff_main
from dlhw.theory import autodiff as ad


def test_catalogue_e_at_2_1_by_hand():
    g = ad.trace(ad.catalogue_e, 2)
    y1, y2 = g.forward([2.0, 1.0])
    sig1 = 1 / (1 + math.exp(-1))
    assert y1 == pytest.approx(math.exp(2) + 2 * math.sin(3))  # 7.671296
    assert y2 == pytest.approx(2 + sig1)  # 2.731059
    expected = [
        [math.sin(3), 2 * math.exp(2) + 2 * math.cos(3) * 6],  # 0.141120, 2.898202
        [1.0, 2 + sig1 * (1 - sig1)],  # 1, 2.196612
    ]
    for jac in (g.jacobian_forward(), g.jacobian_reverse()):
        for row, exp_row in zip(jac, expected, strict=True):
            assert row == pytest.approx(exp_row, rel=1e-12)
    assert expected[0][1] == pytest.approx(2.898202, abs=1e-6)


def test_elementary_functions_on_floats_and_tensors():
    assert ad.sigmoid(0.0) == 0.5 and ad.sigmoid(-800.0) == 0.0
    t = torch.tensor([0.3])
    torch.testing.assert_close(ad.tanh(t), torch.tanh(t))
    assert ad.catalogue_e(2.0, 1.0)[0] == pytest.approx(7.671296, abs=1e-6)


UNARY = [
    lambda a: ad.sin(a),
    lambda a: ad.cos(a),
    lambda a: ad.exp(ad.tanh(a)),
    lambda a: ad.log(ad.square(a) + 1.5),
    lambda a: ad.sigmoid(a),
    lambda a: -a,
    lambda a: (ad.square(a) + 0.5) ** 1.5,
    lambda a: ad.sqrt(ad.square(a) + 1),
    lambda a: a**3,
    lambda a: 2.0**a if not isinstance(a, torch.Tensor) else torch.pow(2.0, a),
]
BINARY = [
    lambda a, b: a + b,
    lambda a, b: a - b,
    lambda a, b: a * b,
    lambda a, b: a / (ad.square(b) + 1),
    lambda a, b: 0.7 * a - b * 1.3 + 2,
    lambda a, b: 1 / (1 + ad.square(a)) - b / 3,
    lambda a, b: (ad.square(a) + 1) ** ad.sin(b),
]


def random_program(seed: int, n_in: int = 3, n_ops: int = 12, n_out: int = 2):
    """A random straight-line program over the elementary ops, usable on Nodes and tensors."""
    rng = random.Random(seed)
    plan = [
        (
            rng.random() < 0.5,
            rng.randrange(len(UNARY)),
            rng.randrange(len(BINARY)),
            rng.random(),
            rng.random(),
        )
        for _ in range(n_ops)
    ]

    def f(*xs):
        vals = list(xs)
        for unary, iu, ib, r1, r2 in plan:
            a = vals[int(r1 * len(vals))]
            b = vals[int(r2 * len(vals))]
            vals.append(UNARY[iu](a) if unary else BINARY[ib](a, b))
        return tuple(vals[-n_out:])

    return f


@pytest.mark.parametrize("seed", range(12))
def test_random_programs_match_torch(seed):
    f = random_program(seed)
    rng = random.Random(100 + seed)
    x = [rng.uniform(-1.5, 1.5) for _ in range(3)]
    g = ad.trace(f, 3)
    values = g.forward(x)
    tv, tj = ad.torch_jacobian(f, x)
    assert values == pytest.approx(tv, rel=1e-10, abs=1e-12)
    for jac in (g.jacobian_forward(), g.jacobian_reverse()):
        for row, trow in zip(jac, tj, strict=True):
            assert row == pytest.approx(trow, rel=1e-9, abs=1e-12)


def test_trace_text_and_dot():
    g = ad.trace(lambda a, b: ad.sin(a * b), 2)
    with pytest.raises(RuntimeError):
        g.jacobian_reverse()
    g.forward([1.0, 2.0])
    text, dot = g.to_text(), g.to_dot()
    assert "v2 = v0 * v1" in text and "sin(v2)   -> y1" in text
    assert dot.startswith("digraph") and "v0 -> v2;" in dot and "v2 -> v3;" in dot
    with pytest.raises(ValueError):
        g.forward([1.0])


def test_cli_default(capsys, tmp_path):
    dot = tmp_path / "g.dot"
    assert autodiff_main(["--dot", str(dot)]) == 0
    out = capsys.readouterr().out
    for line in (
        "Computational graph",
        "Forward pass",
        "Forward mode, pass 2",
        "Reverse mode, sweep 2",
        "y1 = 7.671296, y2 = 2.731059",
        "[ 0.141120,  2.898202]",
        "OK: forward mode == reverse mode",
        "OK: reverse mode == torch.autograd.functional.jacobian",
    ):
        assert line in out
    assert "MISMATCH" not in out
    assert dot.read_text().startswith("digraph G {")


def test_cli_other_point_and_dot_stdout(capsys):
    assert autodiff_main(["--x", "0.5", "-1.5", "--dot", "-"]) == 0
    out = capsys.readouterr().out
    assert "digraph G {" in out and out.count("OK:") == 4
    with pytest.raises(SystemExit) as e:
        autodiff_main(["--x", "1"])
    assert e.value.code == 2
