"""Loss-spike detector: counts training steps whose loss jumps above a multiple of its recent median."""

from __future__ import annotations

import json
import statistics
from collections import deque

import pytorch_lightning as pl
import torch

from dlhw.lit.tb import run_dir, tb_writer

SPIKES_FILE = "loss_spikes.json"


class LossSpikeDetector(pl.Callback):
    """A step is a spike when its loss exceeds ``factor`` x the median of the previous ``window``.

    Step losses are kept on the device and copied to the host once every ``flush_every`` steps
    (and at each epoch end), so the detector never forces a sync per step. Logs
    ``spikes/count`` (cumulative) and ``spikes/epoch_count`` per epoch, every step's loss as
    ``train/loss_every_step`` (if ``log_losses``), and writes ``loss_spikes.json`` (count and
    each spike's step, loss and median) in the run directory.

    Args:
        factor: how many times the recent median a loss must exceed.
        window: number of previous steps whose median is the reference.
        min_history: steps needed before detection starts.
        flush_every: steps between host copies.
        log_losses: write every step's loss to TensorBoard.
    """

    def __init__(
        self,
        factor: float = 2.0,
        window: int = 50,
        min_history: int = 10,
        flush_every: int = 100,
        log_losses: bool = True,
    ):
        self.factor = factor
        self.window = window
        self.min_history = min_history
        self.flush_every = flush_every
        self.log_losses = log_losses
        self.history: deque[float] = deque(maxlen=window)
        self.spikes: list[dict] = []
        self.epoch_counts: list[int] = []
        self._pending: list[torch.Tensor] = []
        self._steps: list[int] = []
        self._epoch_start = 0

    @property
    def count(self) -> int:
        return len(self.spikes)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        loss = outputs["loss"] if isinstance(outputs, dict) else outputs
        if not isinstance(loss, torch.Tensor):
            return
        self._pending.append(loss.detach())
        self._steps.append(trainer.global_step)
        if len(self._pending) >= self.flush_every:
            self._flush(trainer)

    def _flush(self, trainer) -> None:
        if not self._pending:
            return
        losses = torch.stack(self._pending).float().cpu().tolist()  # one sync per flush
        steps, self._pending, self._steps = self._steps, [], []
        writer = tb_writer(trainer)
        for step, loss in zip(steps, losses, strict=True):
            if len(self.history) >= self.min_history:
                median = statistics.median(self.history)
                if loss > self.factor * median:
                    self.spikes.append({"step": step, "loss": loss, "median": median})
            self.history.append(loss)
            if writer is not None and self.log_losses:
                writer.add_scalar("train/loss_every_step", loss, step)

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        self._epoch_start = self.count

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        self._flush(trainer)
        self.epoch_counts.append(self.count - self._epoch_start)
        writer = tb_writer(trainer)
        if writer is not None:
            writer.add_scalar("spikes/count", self.count, trainer.global_step)
            writer.add_scalar("spikes/epoch_count", self.epoch_counts[-1], trainer.global_step)
        self._save(trainer)

    def on_fit_end(self, trainer, pl_module) -> None:
        self._flush(trainer)
        self._save(trainer)
        writer = tb_writer(trainer)
        if writer is not None and self.spikes:
            lines = [f"| {s['step']} | {s['loss']:.4g} | {s['median']:.4g} |" for s in self.spikes[:200]]
            table = "| step | loss | recent median |\n|---|---|---|\n" + "\n".join(lines)
            writer.add_text("spikes/steps", table, trainer.global_step)

    def _save(self, trainer) -> None:
        if trainer.global_rank != 0:
            return
        out = run_dir(trainer) / SPIKES_FILE
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps({
            "factor": self.factor, "window": self.window, "count": self.count,
            "epoch_counts": self.epoch_counts, "spikes": self.spikes,
        }, indent=1))
