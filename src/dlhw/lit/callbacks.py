"""Small training callbacks of the foundation: epoch timing and throughput."""

from __future__ import annotations

import time

import pytorch_lightning as pl
import torch


class EpochTimer(pl.Callback):
    """Logs time/epoch_s (train + val), time/train_s and time/samples_per_s for every epoch.

    The clock is read once per epoch boundary (with a device sync there only), so it costs
    nothing per step. ``epoch_times`` and ``samples_per_s`` keep the history for results.json.
    """

    def __init__(self):
        self.epoch_times: list[float] = []
        self.train_times: list[float] = []
        self.samples_per_s: list[float] = []
        self._t0: float | None = None
        self._train_s: float | None = None
        self._samples = 0

    @staticmethod
    def _now(pl_module: pl.LightningModule) -> float:
        if pl_module.device.type == "cuda":
            torch.cuda.synchronize(pl_module.device)
        return time.perf_counter()

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        self._t0, self._train_s, self._samples = self._now(pl_module), None, 0

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self._samples += len(batch[1])

    def on_validation_epoch_start(self, trainer, pl_module) -> None:
        if trainer.training and self._t0 is not None and self._train_s is None:
            self._train_s = self._now(pl_module) - self._t0

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        if self._t0 is None:
            return
        total = self._now(pl_module) - self._t0
        train_s = self._train_s if self._train_s is not None else total
        rate = self._samples * trainer.world_size / max(train_s, 1e-9)
        self.epoch_times.append(total)
        self.train_times.append(train_s)
        self.samples_per_s.append(rate)
        pl_module.log_dict(
            {"time/epoch_s": total, "time/train_s": train_s, "time/samples_per_s": rate},
            on_step=False, on_epoch=True,
        )


class LastEveryEpoch(pl.callbacks.Checkpoint):
    """Writes the run's last.ckpt at the end of every epoch.

    Lightning's ModelCheckpoint (2.x) writes last.ckpt only in the epochs that also save a best
    checkpoint, so after an epoch that did not improve the monitored metric a resume would restart
    from an older epoch. A Checkpoint callback placed after the ModelCheckpoint runs after it and
    saves last.ckpt wherever it did not.
    """

    def __init__(self, checkpoint: pl.callbacks.ModelCheckpoint):
        self.checkpoint = checkpoint

    def _save_last(self, trainer, at_train_epoch_end: bool) -> None:
        mc = self.checkpoint
        if not mc.save_last or mc._should_skip_saving_checkpoint(trainer):
            return  # skipped also when something was saved at this step: last.ckpt is current
        if mc._should_save_on_train_epoch_end(trainer) == at_train_epoch_end:
            mc._save_last_checkpoint(trainer, mc._monitor_candidates(trainer))

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        self._save_last(trainer, at_train_epoch_end=True)

    def on_validation_end(self, trainer, pl_module) -> None:
        if not trainer.sanity_checking:
            self._save_last(trainer, at_train_epoch_end=False)
