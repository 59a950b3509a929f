"""Generated sequence tasks: temporal order (D) and echo (D2), and padding-aware scoring."""

from __future__ import annotations

import pytest
import torch

from dlhw.data.sequences import (
    LEVELS,
    PAD,
    EchoData,
    TemporalOrderData,
    echo_batch,
    temporal_order_symbols,
)
from dlhw.errors import UserError


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize("level", list(LEVELS))
def test_temporal_order_sequences_follow_the_level(level: str) -> None:
    (l0, l1), (a0, a1), (b0, b1) = LEVELS[level]
    sym, y = temporal_order_symbols(300, level, gen(0))
    assert sym.shape == (300, l1 - 1)
    lengths, t1s, t2s = set(), set(), set()
    for row, label in zip(sym.tolist(), y.tolist(), strict=True):
        n_pad = sum(1 for s in row if s == -1)
        assert all(s == -1 for s in row[:n_pad])  # padding only in front
        seq = row[n_pad:]
        lengths.add(len(seq))
        assert l0 <= len(seq) < l1
        assert seq[0] == 6 and seq[-1] == 7  # B ... E
        xy = [i for i, s in enumerate(seq) if s in (0, 1)]
        assert len(xy) == 2
        t1, t2 = xy
        t1s.add(t1)
        t2s.add(t2)
        assert a0 <= t1 < a1 and b0 <= t2 < b1
        assert label == 2 * seq[t1] + seq[t2]  # XX, XY, YX, YY = 0..3
        assert all(2 <= s <= 5 for i, s in enumerate(seq[1:-1], 1) if i not in xy)
    if level == "easy":  # every value of the small ranges occurs
        assert lengths == {7, 8} and t1s == {1, 2} and t2s == {4, 5}
    assert set(y.tolist()) == {0, 1, 2, 3}


def test_temporal_order_one_hot_and_padding_in_front() -> None:
    dm = TemporalOrderData(level="normal", train_size=50, val_size=20, test_size=30)
    dm.setup()
    x = dm.splits.train_x
    assert x.shape == (50, 40, 8) and x.dtype == torch.uint8
    per_step = x.sum(-1)
    assert set(per_step.unique().tolist()) <= {0, 1}
    starts = per_step.argmax(1)  # first real step
    for i, s in enumerate(starts.tolist()):
        assert per_step[i, :s].sum() == 0 and per_step[i, s:].min() == 1
    assert dm.in_shape == (40, 8) and dm.num_classes == 4
    assert dm.class_names == ["XX", "XY", "YX", "YY"]
    assert dm.splits.val_x.shape[0] == 20 and dm.splits.test_x.shape[0] == 30


def test_generation_is_deterministic_by_seed() -> None:
    a, ya = temporal_order_symbols(64, "moderate", gen(3))
    b, yb = temporal_order_symbols(64, "moderate", gen(3))
    c, _ = temporal_order_symbols(64, "moderate", gen(4))
    assert torch.equal(a, b) and torch.equal(ya, yb) and not torch.equal(a, c)


def _epoch_batches(dm, epoch: int) -> torch.Tensor:
    dm._epoch = lambda: epoch  # the loader reads the epoch from the trainer; no trainer here
    return torch.cat([x for x, _ in dm.train_dataloader()])


def test_fresh_epochs_are_new_but_reproducible_and_eval_sets_fixed() -> None:
    kw = {"level": "easy", "train_size": 96, "val_size": 40, "test_size": 40, "batch_size": 32}
    dm = TemporalOrderData(seed=0, **kw)
    dm.setup()
    loader = dm.train_dataloader()
    assert len(loader) == 3
    e0, e1 = _epoch_batches(dm, 0), _epoch_batches(dm, 1)
    assert e0.shape == (96, 8, 8) and not torch.equal(e0, e1)
    same = TemporalOrderData(seed=0, **kw)
    same.setup()
    assert torch.equal(_epoch_batches(same, 1), e1)
    other = TemporalOrderData(seed=1, **kw)  # another run seed: other training data, same eval sets
    other.setup()
    assert not torch.equal(other.splits.train_x, dm.splits.train_x)
    assert torch.equal(other.splits.test_x, dm.splits.test_x)
    assert torch.equal(other.splits.val_y, dm.splits.val_y)
    fixed = TemporalOrderData(seed=0, fresh=False, **kw)
    fixed.setup()
    fixed_e0 = _epoch_batches(fixed, 0)
    fixed_e1 = _epoch_batches(fixed, 1)
    assert torch.equal(fixed_e0.sum(0), fixed_e1.sum(0))  # same set, another order


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"level": "impossible"}, "data.level=.impossible."), ({"train_size": 0}, "data.train_size=0")],
)
def test_temporal_order_bad_values(kwargs, message) -> None:
    with pytest.raises(UserError, match=message):
        TemporalOrderData(**kwargs)


def test_echo_fixed_delay_targets() -> None:
    x, y = echo_batch(40, (15, 15), 4, 8, gen(0))
    assert x.shape == (40, 15, 27) and y.shape == (40, 15)
    letters = x.argmax(-1)
    assert (x.sum(-1) == 1).all() and (letters >= 1).all()  # letters 1..26, never the blank
    assert (y[:, :4] == 0).all()  # blank before the first echo
    assert torch.equal(y[:, 4:], letters[:, :-4])


def test_echo_variable_delay_is_told_and_lengths_are_padded() -> None:
    x, y = echo_batch(200, (15, 25), None, 8, gen(1))
    assert x.shape == (200, 25, 27 + 9)
    real = x.sum(-1) > 0
    lengths = real.sum(1)
    assert lengths.min() >= 15 and lengths.max() <= 25 and len(set(lengths.tolist())) > 5
    delays = x[:, 0, 27:].argmax(-1)
    assert set(delays.tolist()) == set(range(9))
    for i in range(200):
        n, d = int(lengths[i]), int(delays[i])
        assert (x[i, :n].sum(-1) == 2).all()  # one letter + one delay channel per real step
        assert (x[i, :n, 27:].argmax(-1) == d).all()
        assert real[i, :n].all() and not real[i, n:].any()  # padding only at the end
        letters = x[i, :n, :27].argmax(-1)
        assert (y[i, :d] == 0).all()
        assert torch.equal(y[i, d:n], letters[: n - d])
        assert (y[i, n:] == PAD).all()


def test_echo_datamodule_sizes_and_classes() -> None:
    dm = EchoData(delay="variable", length=20, train_size=64, batch_size=16)
    dm.setup()
    assert dm.in_shape == (20, 36) and dm.num_classes == 27
    assert dm.splits.test_x.shape == (500, 25, 36)  # 500 fresh strings of length 15-25
    assert dm.class_names[0] == "_" and dm.class_names[1] == "a"
    assert (dm.splits.test_y == PAD).any()
    with pytest.raises(UserError, match="data.delay='sometimes'"):
        EchoData(delay="sometimes")
    with pytest.raises(UserError, match="data.length"):
        EchoData(length=[20, 10])


def test_padding_positions_count_in_neither_loss_nor_accuracy() -> None:
    from functools import partial

    from dlhw.lit.module import Classifier
    from dlhw.nn.losses import CrossEntropy

    module = Classifier(torch.nn.Identity(), CrossEntropy(), partial(torch.optim.SGD, lr=0.1))
    y = torch.tensor([[1, 2, PAD, PAD], [0, 1, 2, PAD]])
    logits = torch.full((2, 4, 3), -10.0)
    for i in range(2):
        for t in range(4):
            # right on every real step, wrong (class 0 favoured) on padding
            logits[i, t, int(y[i, t]) if y[i, t] != PAD else 0] = 10.0
    flat_logits, flat_y = module._flatten(logits, y)
    assert flat_y.tolist() == [1, 2, 0, 1, 2]
    assert (module.predict_classes(flat_logits) == flat_y).all()
    module._step((logits, y), "val")
    assert module.metrics["val_acc"].compute().item() == pytest.approx(1.0)
    assert module.metrics["val_loss"].compute().item() < 1e-3
