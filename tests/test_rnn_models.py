"""Recurrent models: output shapes and parameter counts against hand-computed numbers."""

from __future__ import annotations

import pytest
import torch

from dlhw.errors import UserError
from dlhw.models import RNNClassifier, Seq2SeqGRU


def n_params(net: torch.nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())


def lstm_params(d: int, h: int) -> int:
    return 4 * (h * d + h * h + 2 * h)  # four gates, input and recurrent weights, two biases


def gru_params(d: int, h: int) -> int:
    return 3 * (h * d + h * h + 2 * h)


# CATALOGUE C: affine 28 -> H, RNN, ReLU, FC H -> 64, ReLU, FC 64 -> 10.
def catalogue_c(h: int, rnn: int) -> int:
    return (28 * h + h) + rnn + (h * 64 + 64) + (64 * 10 + 10)


@pytest.mark.parametrize(
    ("cell", "hidden", "layers", "expected"),
    [
        ("lstm", 32, 1, catalogue_c(32, lstm_params(32, 32))),  # 12,138
        ("lstm", 64, 1, catalogue_c(64, lstm_params(64, 64))),  # 39,946
        ("gru", 32, 1, catalogue_c(32, gru_params(32, 32))),
        ("gru", 64, 1, catalogue_c(64, gru_params(64, 64))),
        ("lstm", 32, 3, catalogue_c(32, 3 * lstm_params(32, 32))),
        ("gru", 32, 3, catalogue_c(32, 3 * gru_params(32, 32))),
    ],
)
def test_catalogue_c_variants_shapes_and_counts(cell, hidden, layers, expected) -> None:
    net = RNNClassifier((28, 28), 10, cell=cell, hidden=hidden, layers=layers)
    assert n_params(net) == expected
    assert net(torch.rand(5, 28, 28)).shape == (5, 10)


def test_hand_computed_numbers_of_two_variants() -> None:
    assert n_params(RNNClassifier((28, 28), 10, cell="lstm", hidden=32)) == 12138
    assert n_params(RNNClassifier((28, 28), 10, cell="lstm", hidden=64)) == 39946


def test_linear_head_reads_the_raw_input() -> None:
    lstm = RNNClassifier((80, 8), 4, cell="lstm", hidden=12, head="linear")
    assert n_params(lstm) == 4 * (12 * 8 + 12 * 12 + 24) + (12 * 4 + 4)  # 1,108
    rnn = RNNClassifier((80, 8), 4, cell="rnn", hidden=12, head="linear")
    assert n_params(rnn) == (12 * 8 + 12 * 12 + 24) + 52  # 316
    assert rnn.rnn.nonlinearity == "relu"
    assert lstm(torch.rand(3, 80, 8)).shape == (3, 4)


def test_output_depends_on_the_last_step_only_through_the_sequence() -> None:
    torch.manual_seed(0)
    net = RNNClassifier((6, 4), 3, cell="gru", hidden=8)
    x = torch.rand(2, 6, 4)
    y = x.clone()
    y[:, 0] += 1.0  # the first step changes the final state, hence the output
    assert not torch.allclose(net(x), net(y))


def test_gated_cell_of_catalogue_g() -> None:
    net = RNNClassifier((8, 8), 4, cell="gated", hidden=12, layers=2, head="linear")
    # per layer W_c, W_x (H x D) and W_h (H x H), no biases; layer 2 reads width 12
    assert n_params(net) == (2 * 12 * 8 + 144) + (2 * 12 * 12 + 144) + 52
    out = net(torch.rand(3, 8, 8))
    out.sum().backward()
    assert out.shape == (3, 4)
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in net.parameters())


def test_scratch_affine_layers_keep_the_parameter_count() -> None:
    torch_net = RNNClassifier((28, 28), 10, cell="lstm", hidden=32, impl="torch")
    scratch_net = RNNClassifier((28, 28), 10, cell="lstm", hidden=32, impl="scratch")
    assert n_params(scratch_net) == n_params(torch_net)
    assert scratch_net(torch.rand(2, 28, 28)).shape == (2, 10)


def test_seq2seq_gru_emits_a_class_per_step() -> None:
    net = Seq2SeqGRU((20, 36), 27, hidden=128)
    assert n_params(net) == gru_params(36, 128) + 128 * 27 + 27  # 67,227
    assert net(torch.rand(4, 25, 36)).shape == (4, 25, 27)  # any length runs


def test_seq2seq_is_causal_so_end_padding_changes_nothing() -> None:
    torch.manual_seed(0)
    net = Seq2SeqGRU((10, 5), 3, hidden=16)
    x = torch.rand(2, 10, 5)
    padded = torch.cat([x, torch.zeros(2, 4, 5)], 1)
    assert torch.allclose(net(padded)[:, :10], net(x), atol=1e-6)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"cell": "transformer"}, "model.cell='transformer'"),
        ({"head": "conv"}, "model.head='conv'"),
        ({"hidden": 0}, "model.hidden=0"),
    ],
)
def test_bad_arguments_are_user_errors(kwargs, message) -> None:
    with pytest.raises(UserError, match=message.replace("(", r"\(")):
        RNNClassifier((28, 28), 10, **kwargs)


def test_image_input_is_refused_with_the_fix() -> None:
    with pytest.raises(UserError, match="mnist_rows"):
        RNNClassifier((1, 28, 28), 10)


def test_seq2seq_stacked_with_hidden_head() -> None:
    net = Seq2SeqGRU((20, 36), 27, hidden=128, layers=2, head_hidden=64)
    expected = gru_params(36, 128) + gru_params(128, 128) + (128 * 64 + 64) + (64 * 27 + 27)
    assert n_params(net) == expected
    assert net(torch.rand(3, 7, 36)).shape == (3, 7, 27)
