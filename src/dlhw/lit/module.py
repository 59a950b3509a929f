"""The one LightningModule: glues a plain model to a loss, accuracy and an optimizer/schedule."""

from __future__ import annotations

from collections.abc import Callable

import pytorch_lightning as pl
import torch
from torch import nn

from dlhw.lit.metrics import BatchMean

STAGES = ("train", "val", "test")


class Classifier(pl.LightningModule):
    """Trains ``net`` with ``loss``; logs loss and accuracy per epoch without a per-step GPU sync.

    Sequence-to-sequence outputs (N, T, C) with targets (N, T) are scored per position (positions
    whose target is ``ignore_index``, i.e. padding, count in neither loss nor accuracy); a model
    with one output and a binary loss is scored by the sign of its score.

    Args:
        net: the model (a plain nn.Module).
        loss: a loss module from dlhw.nn.losses.
        optimizer: partial taking the parameters (Hydra ``_partial_: true``).
        scheduler: partial taking the optimizer, or None.
        scheduler_interval: "epoch" or "step".
        monitor: metric a plateau scheduler watches.
        log_step_loss: also log the training loss at every logging step (off: no sync per step).
        ignore_index: target value of padding positions in sequence-to-sequence batches.
    """

    def __init__(
        self,
        net: nn.Module,
        loss: nn.Module,
        optimizer: Callable,
        scheduler: Callable | None = None,
        scheduler_interval: str = "epoch",
        monitor: str = "val/loss",
        log_step_loss: bool = False,
        ignore_index: int = -100,
    ):
        super().__init__()
        self.net = net
        self.loss_fn = loss
        self.optimizer_factory = optimizer
        self.scheduler_factory = scheduler
        self.scheduler_interval = scheduler_interval
        self.monitor = monitor
        self.log_step_loss = log_step_loss
        self.ignore_index = ignore_index
        self.metrics = nn.ModuleDict(
            {f"{s}_{m}": BatchMean() for s in STAGES for m in ("loss", "acc")}  # no sync per step
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def _flatten(self, logits: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if logits.dim() == 3 and y.dim() == 2:  # sequence to sequence: score every real position
            logits, y = logits.reshape(-1, logits.shape[-1]), y.reshape(-1)
            keep = y != self.ignore_index
            return logits[keep], y[keep]
        return logits, y

    def predict_classes(self, logits: torch.Tensor) -> torch.Tensor:
        """Class indices: argmax, or score > 0 for single-output binary models."""
        if logits.shape[-1] == 1:
            return (logits[..., 0] > 0).long()
        return logits.argmax(-1)

    def _step(self, batch, stage: str) -> torch.Tensor:
        x, y = batch
        logits, y = self._flatten(self(x), y)
        loss = self.loss_fn(logits, y)
        acc = (self.predict_classes(logits) == y).float().mean()
        n = y.numel()
        self.metrics[f"{stage}_loss"].update(loss.detach(), n)
        self.metrics[f"{stage}_acc"].update(acc, n)
        if stage == "train" and self.log_step_loss:
            self.log("train/loss_step", loss, on_step=True, on_epoch=False)
        return loss

    def _log_epoch(self, stage: str) -> None:
        """Log the stage's epoch means once (``self.log`` costs ~0.7 ms a call: not once per step).

        Logged as the metric objects, so Lightning computes them (summed across DDP ranks) and
        resets them at the end of the epoch; the module's epoch-end hook runs before the checkpoint
        and early-stopping callbacks read ``val/acc`` / ``val/loss``.
        """
        for name in ("loss", "acc"):
            metric = self.metrics[f"{stage}_{name}"]
            if metric.update_count == 0:  # e.g. no validation batches
                continue
            in_bar = stage != "test" if name == "loss" else stage != "train"
            self.log(f"{stage}/{name}", metric, on_step=False, on_epoch=True, prog_bar=in_bar,
                     metric_attribute=f"metrics.{stage}_{name}")

    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        return self._step(batch, "train")

    def validation_step(self, batch, batch_idx: int) -> None:
        self._step(batch, "val")

    def test_step(self, batch, batch_idx: int) -> None:
        self._step(batch, "test")

    def on_train_epoch_end(self) -> None:
        self._log_epoch("train")

    def on_validation_epoch_end(self) -> None:
        self._log_epoch("val")

    def on_test_epoch_end(self) -> None:
        self._log_epoch("test")

    def configure_optimizers(self):
        optimizer = self.optimizer_factory(params=self.parameters())
        if self.scheduler_factory is None:
            return optimizer
        scheduler = self.scheduler_factory(optimizer=optimizer)
        return {
            "optimizer": optimizer,
            "lr_scheduler": {
                "scheduler": scheduler,
                "interval": self.scheduler_interval,
                "monitor": self.monitor,
            },
        }
