"""Generated sequence tasks: temporal order (temporal_order) and echo (echo).

Every set is a pure function of a seed. The validation and test sets are fixed (own seed streams);
the training data is regenerated for every epoch from (seed, epoch) when ``fresh=true`` (the
reference trains on a generator: each epoch sees new sequences), or generated once when
``fresh=false``. Either way a run is reproducible and a resumed run sees the epochs it would have
seen.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import torch
import torch.nn.functional as F

from dlhw.data.datamodule import ClassificationData, Splits
from dlhw.data.loader import TensorLoader
from dlhw.errors import UserError

# ------------------------------------------------------------------ temporal order (D)
SYMBOLS = ("X", "Y", "a", "b", "c", "d", "B", "E")
X, Y, B, E = 0, 1, 6, 7
ORDER_CLASSES = ["XX", "XY", "YX", "YY"]
# (length range, t1 range, t2 range), upper bounds exclusive (Hochreiter & Schmidhuber 1997, 6a).
LEVELS: dict[str, tuple[tuple[int, int], tuple[int, int], tuple[int, int]]] = {
    "easy": ((7, 9), (1, 3), (4, 6)),
    "normal": ((30, 41), (2, 6), (20, 28)),
    "moderate": ((60, 81), (10, 21), (45, 55)),
    "hard": ((100, 111), (10, 21), (50, 61)),
    "nightmare": ((300, 501), (10, 81), (250, 291)),
}
PAD = -100  # target of a padding step: ignored by the loss and by the accuracy


def _gen(seed: int, stream: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed * 1_000_003 + stream)


def temporal_order_symbols(
    n: int, level: str, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """Symbol indices (n, T) with -1 for front padding, and the class (n,) of each sequence.

    T is the longest length of the level. Unpadded, a sequence is B, random a-d, E with X or Y at
    positions t1 and t2 (counted from B); the class is XX, XY, YX, YY = 0..3.
    """
    if level not in LEVELS:
        raise UserError(f"data.level={level!r} is not one of {tuple(LEVELS)}.")
    (l0, l1), (a0, a1), (b0, b1) = LEVELS[level]
    T = l1 - 1
    length = torch.randint(l0, l1, (n,), generator=generator)
    t1 = torch.randint(a0, a1, (n,), generator=generator)
    t2 = torch.randint(b0, b1, (n,), generator=generator)
    which = torch.randint(0, 2, (n, 2), generator=generator)  # 0 = X, 1 = Y
    sym = torch.randint(2, 6, (n, T), generator=generator)  # a-d everywhere, then overwrite
    start = T - length  # first position of B after front padding
    pos = torch.arange(T).expand(n, T)
    rows = torch.arange(n)
    sym[pos < start[:, None]] = -1
    sym[rows, start] = B
    sym[:, T - 1] = E
    sym[rows, start + t1] = which[:, 0]
    sym[rows, start + t2] = which[:, 1]
    return sym, which[:, 0] * 2 + which[:, 1]


def one_hot_padded(sym: torch.Tensor, width: int) -> torch.Tensor:
    """uint8 one-hot (n, T, width) of symbol indices; index -1 (padding) is an all-zero row."""
    return (F.one_hot(sym.clamp(min=0), width) * (sym >= 0).unsqueeze(-1)).to(torch.uint8)


class _GeneratedData(ClassificationData):
    """Shared machinery: fixed val/test sets, a training set per epoch (fresh) or once."""

    STREAM_TRAIN, STREAM_VAL, STREAM_TEST = 0, 1, 2

    def __init__(
        self,
        train_size: int = 992,
        val_size: int = 992,
        test_size: int = 2000,
        fresh: bool = True,
        data_seed: int = 0,
        **kwargs,
    ):
        super().__init__(**kwargs)
        for name, value in (("train_size", train_size), ("val_size", val_size), ("test_size", test_size)):
            if value < 1:
                raise UserError(f"data.{name}={value} must be a positive number of sequences.")
        self.train_size, self.val_size, self.test_size = train_size, val_size, test_size
        self.fresh = fresh
        self.data_seed = data_seed

    def generate(self, part: str, n: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """(x uint8 (n, T, D), y) of one part ("train", "val" or "test")."""
        raise NotImplementedError  # abstract

    def class_list(self) -> list[str]:
        raise NotImplementedError  # abstract

    def _train_generator(self, epoch: int) -> torch.Generator:
        # Training epochs depend on the run's seed; val and test on data_seed only (comparable runs).
        return _gen(self.seed, 1000 + epoch)

    def load(self) -> Splits:
        train_x, train_y = self.generate("train", self.train_size, self._train_generator(0))
        val_x, val_y = self.generate("val", self.val_size, _gen(self.data_seed, self.STREAM_VAL))
        test_x, test_y = self.generate("test", self.test_size, _gen(self.data_seed, self.STREAM_TEST))
        return Splits(train_x, train_y, test_x, test_y, self.class_list(), val_x=val_x, val_y=val_y)

    def train_dataloader(self):
        if not self.fresh or self.max_train_samples is not None:
            return super().train_dataloader()
        return _FreshEpochs(self)


class _FreshEpochs:
    """Training loader that generates the sequences of epoch e from (seed, e) when iterated."""

    def __init__(self, dm: _GeneratedData):
        self.dm = dm

    def __len__(self) -> int:
        world = self.dm.trainer.world_size if getattr(self.dm, "trainer", None) is not None else 1
        return math.ceil(self.dm.train_size // world / self.dm.batch_size)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        dm = self.dm
        epoch = dm._epoch()
        if epoch == 0:
            x, y = dm.splits.train_x, dm.splits.train_y
        else:
            x, y = dm.generate("train", dm.train_size, dm._train_generator(epoch))
        device = dm._device()
        trainer = getattr(dm, "trainer", None)
        rank, world = (trainer.global_rank, trainer.world_size) if trainer is not None else (0, 1)
        loader = TensorLoader(
            x.to(device), y.to(device), dm.batch_size, dm.transform, True, dm.seed,
            lambda: epoch, rank, world,
        )
        yield from loader


class TemporalOrderData(_GeneratedData):
    """temporal_order: one-hot (N, T, 8) sequences zero-padded in front, 4 classes (XX, XY, YX, YY).

    Args:
        level: easy, normal, moderate, hard or nightmare (length and X/Y position ranges).
        train_size: training sequences per epoch (992 as in the reference).
        val_size, test_size: sizes of the fixed validation and test sets.
        fresh: new training sequences every epoch (from seed and epoch) or one fixed set.
        data_seed: seed of the validation and test sets.
    """

    def __init__(self, level: str = "easy", **kwargs):
        if level not in LEVELS:
            raise UserError(f"data.level={level!r} is not one of {tuple(LEVELS)}.")
        super().__init__(**kwargs)
        self.level = level

    def class_list(self) -> list[str]:
        return list(ORDER_CLASSES)

    def declared_shape(self) -> tuple[int, int]:
        return (LEVELS[self.level][0][1] - 1, len(SYMBOLS))

    def declared_classes(self) -> int:
        return len(ORDER_CLASSES)

    def generate(self, part: str, n: int, generator: torch.Generator):
        sym, y = temporal_order_symbols(n, self.level, generator)
        return one_hot_padded(sym, len(SYMBOLS)), y


# ------------------------------------------------------------------ echo (D2)
LETTERS = 26
BLANK = 0


def echo_batch(
    n: int,
    lengths: tuple[int, int],
    delay: int | None,
    max_delay: int,
    generator: torch.Generator,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Echo strings: inputs (n, T, 27 [+ max_delay + 1]) and targets (n, T), T = longest length.

    Letters are 1..26 (index 0 is the blank). The target at step t is the input letter at step
    t - delay, blank before that. ``delay=None`` draws a delay in [0, max_delay] per string and
    appends it as a one-hot over max_delay + 1 channels at every step. Strings shorter than T are
    padded at the end with all-zero inputs and targets PAD (ignored by loss and accuracy).
    """
    lo, hi = lengths
    T = hi
    letters = torch.randint(1, LETTERS + 1, (n, T), generator=generator)
    length = torch.randint(lo, hi + 1, (n,), generator=generator)
    if delay is None:
        d = torch.randint(0, max_delay + 1, (n,), generator=generator)
    else:
        d = torch.full((n,), delay)
    t = torch.arange(T).expand(n, T)
    src = (t - d[:, None]).clamp(min=0)
    y = torch.where(t >= d[:, None], letters.gather(1, src), torch.full_like(letters, BLANK))
    valid = t < length[:, None]
    x = F.one_hot(letters, LETTERS + 1) * valid.unsqueeze(-1)
    if delay is None:
        x = torch.cat([x, F.one_hot(d, max_delay + 1)[:, None].expand(n, T, -1) * valid.unsqueeze(-1)], -1)
    y = torch.where(valid, y, torch.full_like(y, PAD))
    return x.to(torch.uint8), y


def _range(value, name: str) -> tuple[int, int]:
    lo, hi = (value, value) if isinstance(value, int) else tuple(value)
    if not 1 <= lo <= hi:
        raise UserError(f"data.{name}={value!r} must be a length >= 1 or a range [lo, hi] with lo <= hi.")
    return int(lo), int(hi)


class EchoData(_GeneratedData):
    """echo: echo each letter ``delay`` steps later; targets per step, 27 classes.

    Args:
        delay: a fixed delay (int), or "variable" for a delay in [0, max_delay] per string, told
            to the model as max_delay + 1 extra one-hot input channels.
        max_delay: largest variable delay.
        length: training string length (int) or range [lo, hi].
        eval_length: validation and test string lengths [lo, hi] (fresh strings, padded).
        train_size: training strings per epoch; val_size, test_size: fixed sets (test 500).
    """

    def __init__(
        self,
        delay: int | str = 4,
        max_delay: int = 8,
        length: int | list[int] = 15,
        eval_length: int | list[int] = (15, 25),
        **kwargs,
    ):
        kwargs.setdefault("test_size", 500)
        kwargs.setdefault("val_size", 500)
        super().__init__(**kwargs)
        if delay == "variable":
            delay = None
        elif not isinstance(delay, int) or delay < 0:
            raise UserError(f"data.delay={delay!r} must be an integer >= 0 or 'variable'.")
        self.delay, self.max_delay = delay, max_delay
        self.length = _range(length, "length")
        self.eval_length = _range(eval_length, "eval_length")

    per_step_targets = True

    def class_list(self) -> list[str]:
        return ["_"] + [chr(ord("a") + i) for i in range(LETTERS)]

    def declared_shape(self) -> tuple[None, int]:
        extra = self.max_delay + 1 if self.delay is None else 0
        return (None, LETTERS + 1 + extra)  # string lengths vary: T is known per batch

    def declared_classes(self) -> int:
        return LETTERS + 1

    def generate(self, part: str, n: int, generator: torch.Generator):
        lengths = self.length if part == "train" else self.eval_length
        return echo_batch(n, lengths, self.delay, self.max_delay, generator)
