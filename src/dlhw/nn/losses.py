"""Training losses selectable as ``loss=NAME``; each says which targets it takes.

``binary``: the loss takes two-class targets only (one score per sample); otherwise any number of
classes (one score per class). ``num_outputs`` turns the number of classes into model outputs.
Per-step targets work with every loss: the module flattens steps into samples first.

``impl`` picks the arithmetic, as ``model.impl`` picks the layers: ``torch`` (torch.nn.functional)
or ``scratch`` (the hand-derived backward passes of dlhw.nn.functional); both give the same value
and gradient.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from dlhw.errors import ConfigValueError
from dlhw.nn import IMPLS
from dlhw.nn import functional as scratch


class _Loss(nn.Module):
    """A loss whose arithmetic comes from torch (``impl="torch"``) or dlhw.nn.functional (``"scratch"``)."""

    def __init__(self, impl: str = "torch"):
        super().__init__()
        if impl not in IMPLS:
            raise ConfigValueError(f"loss.impl={impl!r} is not one of {IMPLS}")
        self.impl = impl

    def extra_repr(self) -> str:
        return f"impl={self.impl}"


class CrossEntropy(_Loss):
    """Softmax cross-entropy over class logits (optional label smoothing)."""

    binary = False  # any number of classes >= 2

    def __init__(self, label_smoothing: float = 0.0, impl: str = "torch"):
        super().__init__(impl)
        self.label_smoothing = label_smoothing

    def num_outputs(self, num_classes: int) -> int:
        return num_classes

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        f = scratch.cross_entropy if self.impl == "scratch" else F.cross_entropy
        return f(logits, target, label_smoothing=self.label_smoothing)


class MulticlassHinge(CrossEntropy):
    """Multiclass SVM loss (Weston-Watkins, margin 1), as torch's multi_margin_loss."""

    def __init__(self, margin: float = 1.0, impl: str = "torch"):
        super().__init__(impl=impl)
        self.margin = margin

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        f = scratch.multiclass_hinge_loss if self.impl == "scratch" else F.multi_margin_loss
        return f(logits, target, margin=self.margin)


class BinaryLogistic(_Loss):
    """Logistic regression loss on one score per sample; targets in {0, 1}."""

    binary = True  # two-class targets only

    def num_outputs(self, num_classes: int) -> int:
        if num_classes != 2:
            raise ConfigValueError(f"{type(self).__name__} needs a two-class data set, this one has {num_classes}")
        return 1

    def forward(self, scores: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if self.impl == "scratch":
            return scratch.binary_logistic_loss(scores.reshape(-1), target)
        return F.binary_cross_entropy_with_logits(scores.reshape(-1), target.float())


class BinaryHinge(BinaryLogistic):
    """Linear-SVM hinge loss mean(max(0, 1 - y s)) with y = 2 * target - 1."""

    def forward(self, scores: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if self.impl == "scratch":
            return scratch.binary_hinge_loss(scores.reshape(-1), target)
        y = target.float() * 2 - 1
        return F.relu(1 - y * scores.reshape(-1)).mean()
