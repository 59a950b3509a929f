"""Shape contracts: what a data set gives and what a model takes, as plain descriptions.

A data module says what it gives (``Gives``: the shape of one input, the number of classes, one
target per sample or one per step); a model class says what it takes (``Takes``, from its
``takes(**arguments)``). ``Takes.problem(gives)`` says in words why the two do not fit. Both
dlhw.data and dlhw.models import this module; it imports nothing of dlhw.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from dlhw.errors import ConfigValueError

IMAGE, SEQUENCE, VECTOR, ANY = "image", "sequence", "vector", "any"


def _dims(shape: Sequence[int | None]) -> str:
    return " x ".join("?" if d is None else str(d) for d in shape)


@dataclass(frozen=True)
class Gives:
    """What a data set gives: one input of ``shape`` (None: known once loaded), its classes.

    The kind follows from the shape: (C, H, W) images, (T, D) sequences, (D,) feature vectors.
    ``per_step``: one target per time step (sequence to sequence) instead of one per sample.
    ``classes``: None while unknown (a folder of images or a pickle, before loading).
    """

    shape: tuple[int | None, ...]
    classes: int | None = None
    per_step: bool = False

    @property
    def kind(self) -> str:
        return {3: IMAGE, 2: SEQUENCE, 1: VECTOR}.get(len(self.shape), f"{len(self.shape)}-d input")

    def describe(self) -> str:
        what = {IMAGE: "images C x H x W", SEQUENCE: "sequences T x D", VECTOR: "feature vectors D"}
        targets = "one target per step" if self.per_step else (
            "one target per sequence" if self.kind == SEQUENCE else "one target per sample")
        return f"{what.get(self.kind, self.kind)} = {_dims(self.shape)}, {targets}"


@dataclass(frozen=True)
class Takes:
    """What a model takes: ``kind`` image, sequence or any (flattened); its outputs per step or not.

    ``min_size``: the smallest H x W an image model reads (its pooling must leave at least 1x1).
    """

    kind: str
    min_size: tuple[int, int] = (1, 1)
    per_step: bool = False

    def describe(self) -> str:
        reads = {IMAGE: f"images C x H x W of at least {self.min_size[0]}x{self.min_size[1]}",
                 SEQUENCE: "sequences T x D", ANY: "any input (flattened)"}[self.kind]
        return f"reads {reads} and gives {'one class per step' if self.per_step else 'one class per sample'}"

    def mismatch(self, gives: Gives) -> tuple[str, str] | None:
        """(short label, sentence) saying why data giving ``gives`` does not fit; None when it fits."""
        if self.kind == IMAGE and gives.kind != IMAGE:
            return "reads images", f"the model reads images C x H x W and the data gives {gives.describe()}"
        if self.kind == SEQUENCE and gives.kind != SEQUENCE:
            return "reads sequences", f"the model reads sequences T x D and the data gives {gives.describe()}"
        if self.kind == IMAGE:
            h, w = gives.shape[1:]
            if (h is not None and h < self.min_size[0]) or (w is not None and w < self.min_size[1]):
                size = f"{self.min_size[0]}x{self.min_size[1]}"
                return (f"needs >= {size}", f"the model needs images of at least {size} pixels and the data "
                        f"gives {_dims(gives.shape)}")
        if self.per_step and not gives.per_step:
            return "one class per step", ("the model gives one class per step and the data has one target "
                                          f"per {'sequence' if gives.kind == SEQUENCE else 'sample'}")
        if gives.per_step and not self.per_step:
            return "targets per step", "the model gives one class per sample and the data has one target per step"
        return None

    def problem(self, gives: Gives) -> str | None:
        """Why a model taking this does not fit data giving ``gives``, in words; None when it fits."""
        found = self.mismatch(gives)
        return found[1] if found else None

    def check(self, in_shape: Sequence[int], model: str) -> None:
        """Raise ConfigValueError (a ValueError) when ``in_shape`` does not fit (a model built by hand, outside a run)."""
        reason = self.problem(Gives(tuple(in_shape), per_step=self.per_step))
        if reason is not None:
            raise ConfigValueError(f"{model} does not fit inputs of shape {tuple(in_shape)}: {reason}")


def smallest_size(out_size: Callable[[int], int], limit: int = 4096) -> int:
    """The smallest input size whose ``out_size`` (after the model's convs and pools) is >= 1."""
    return next((n for n in range(1, limit) if out_size(n) >= 1), limit)
