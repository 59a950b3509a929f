"""Training losses selectable as ``loss=NAME``; each says which targets it takes.

``binary``: the loss takes two-class targets only (one score per sample); otherwise any number of
classes (one score per class). ``num_outputs`` turns the number of classes into model outputs.
Per-step targets work with every loss: the module flattens steps into samples first.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from dlhw.errors import ConfigValueError


class CrossEntropy(nn.Module):
    """Softmax cross-entropy over class logits (optional label smoothing)."""

    binary = False  # any number of classes >= 2

    def __init__(self, label_smoothing: float = 0.0):
        super().__init__()
        self.label_smoothing = label_smoothing

    def num_outputs(self, num_classes: int) -> int:
        return num_classes

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(logits, target, label_smoothing=self.label_smoothing)


class MulticlassHinge(CrossEntropy):
    """Multiclass SVM loss (Weston-Watkins, margin 1), as torch's multi_margin_loss."""

    def __init__(self, margin: float = 1.0):
        super().__init__()
        self.margin = margin

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return F.multi_margin_loss(logits, target, margin=self.margin)


class BinaryLogistic(nn.Module):
    """Logistic regression loss on one score per sample; targets in {0, 1}."""

    binary = True  # two-class targets only

    def num_outputs(self, num_classes: int) -> int:
        if num_classes != 2:
            raise ConfigValueError(f"{type(self).__name__} needs a two-class data set, this one has {num_classes}")
        return 1

    def forward(self, scores: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return F.binary_cross_entropy_with_logits(scores.reshape(-1), target.float())


class BinaryHinge(BinaryLogistic):
    """Linear-SVM hinge loss mean(max(0, 1 - y s)) with y = 2 * target - 1."""

    def forward(self, scores: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        y = target.float() * 2 - 1
        return F.relu(1 - y * scores.reshape(-1)).mean()
