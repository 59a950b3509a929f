"""A sample-weighted running mean that never waits for the GPU.

torchmetrics' MeanMetric checks every update for NaN with ``if nans.any()``: a device-to-host
sync at every step (two per step here: loss and accuracy), and turning that check off also drops
the weights. ``BatchMean`` adds ``value * n`` and ``n`` on the device; the one sync happens when
the epoch's value is computed. A NaN loss shows up as a NaN epoch mean (RunGuard stops the run).
"""

from __future__ import annotations

import torch
from torchmetrics import Metric


class BatchMean(Metric):
    """Mean of per-batch values weighted by the batch's sample count; summed across DDP ranks."""

    full_state_update = False

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.add_state("total", default=torch.tensor(0.0, dtype=torch.float32), dist_reduce_fx="sum")
        self.add_state("count", default=torch.tensor(0.0, dtype=torch.float32), dist_reduce_fx="sum")

    def update(self, value: torch.Tensor, n: int | float = 1) -> None:
        self.total += value.detach().to(self.total.dtype) * n
        self.count += n

    def compute(self) -> torch.Tensor:
        return (self.total / self.count).float()
