"""Learning-rate schedules beyond torch's: a linear warm-up followed by any epoch schedule.

Selected as ``scheduler=warmup_step`` / ``scheduler=warmup_cosine`` (conf/scheduler/); the
schedule after the warm-up is itself a ``_partial_`` scheduler config under ``after``.
"""

from __future__ import annotations

from collections.abc import Callable

from torch.optim import Optimizer
from torch.optim.lr_scheduler import CosineAnnealingLR, LRScheduler, ReduceLROnPlateau

from dlhw.errors import UserError


def cosine(optimizer: Optimizer, epochs: int, skip: int = 0, eta_min: float = 0.0) -> CosineAnnealingLR:
    """Cosine decay over ``epochs - skip`` epochs (the epochs left after a warm-up of ``skip``)."""
    return CosineAnnealingLR(optimizer, T_max=max(1, int(epochs) - int(skip)), eta_min=eta_min)


class LinearWarmup(LRScheduler):
    """lr rises linearly from ``start_factor`` x base to base over ``warmup_epochs`` steps; then
    ``after`` (a scheduler factory taking the optimizer) runs from its own step 0.

    Epoch e < W: base * (start_factor + (1 - start_factor) * e / W); epoch W + k: the value
    ``after`` gives at its step k (constant base lr when ``after`` is None).
    """

    def __init__(
        self,
        optimizer: Optimizer,
        after: Callable[..., LRScheduler] | None = None,
        warmup_epochs: int = 5,
        start_factor: float = 0.1,
        last_epoch: int = -1,
    ):
        if warmup_epochs < 0 or not 0 < start_factor <= 1:
            raise UserError(
                f"scheduler.warmup_epochs={warmup_epochs} must be >= 0 and scheduler.start_factor="
                f"{start_factor} in (0, 1]."
            )
        self.warmup_epochs = int(warmup_epochs)
        self.start_factor = float(start_factor)
        # Built first, while every group is at its base lr: that is the after-schedule's step 0.
        self.after = after(optimizer) if after is not None else None
        if isinstance(self.after, ReduceLROnPlateau):
            raise UserError(
                "scheduler.after cannot be ReduceLROnPlateau: a warm-up is followed by an epoch "
                "schedule (step, multistep, cosine). Use scheduler=plateau on its own."
            )
        super().__init__(optimizer, last_epoch)

    def _factor(self, epoch: int) -> float:
        return self.start_factor + (1.0 - self.start_factor) * epoch / self.warmup_epochs

    def step(self, epoch: int | None = None) -> None:  # noqa: ARG002 - torch's signature
        self._step_count = getattr(self, "_step_count", 0) + 1
        self.last_epoch += 1
        e = self.last_epoch
        groups = self.optimizer.param_groups
        if e < self.warmup_epochs:
            for group, base in zip(groups, self.base_lrs, strict=True):
                group["lr"] = base * self._factor(e)
        elif e == self.warmup_epochs or self.after is None:
            for group, base in zip(groups, self.base_lrs, strict=True):
                group["lr"] = base
        else:
            self.after.step()
        self._last_lr = [group["lr"] for group in groups]

    def get_lr(self) -> list[float]:
        return [group["lr"] for group in self.optimizer.param_groups]

    def state_dict(self) -> dict:
        keys = ("warmup_epochs", "start_factor", "base_lrs", "last_epoch", "_step_count", "_last_lr")
        state = {k: getattr(self, k) for k in keys if hasattr(self, k)}
        state["after"] = self.after.state_dict() if self.after is not None else None
        return state

    def load_state_dict(self, state_dict: dict) -> None:
        state = dict(state_dict)
        after = state.pop("after", None)
        self.__dict__.update(state)
        if self.after is not None and after is not None:
            self.after.load_state_dict(after)
