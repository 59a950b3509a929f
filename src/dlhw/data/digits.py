"""scikit-learn's bundled handwritten digits (1,797 real 8x8 images), resized to 28x28.

No download, trains in seconds, and every MNIST model runs on it unchanged.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from dlhw.data.datamodule import ClassificationData, Splits


class DigitsData(ClassificationData):
    """Digits at ``size`` x ``size``; a fixed, seeded ``test_fraction`` is the test set."""

    def __init__(self, size: int = 28, test_fraction: float = 0.2, **kwargs):
        super().__init__(**kwargs)
        self.size = size
        self.test_fraction = test_fraction

    def declared_shape(self) -> tuple[int, int, int]:
        return (1, self.size, self.size)

    def declared_classes(self) -> int:
        return 10

    def load(self) -> Splits:
        from sklearn.datasets import load_digits

        digits = load_digits()
        x = torch.from_numpy(digits.images).float().div(16.0).unsqueeze(1)
        x = F.interpolate(x, size=(self.size, self.size), mode="bilinear", align_corners=False)
        x = (x.clamp(0, 1) * 255).round().to(torch.uint8)
        y = torch.from_numpy(digits.target).long()
        perm = torch.randperm(len(y), generator=torch.Generator().manual_seed(12345))
        n_test = int(round(len(y) * self.test_fraction))
        test, train = perm[:n_test], perm[n_test:]
        xf = x[train].float() / 255
        return Splits(
            x[train], y[train], x[test], y[test],
            class_names=[str(i) for i in range(10)],
            mean=(xf.mean().item(),), std=(xf.std().item(),), scale=255.0,
        )
