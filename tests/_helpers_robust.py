"""Fault injection for the robustness tests: signals at a chosen batch, a loss that turns NaN."""

from __future__ import annotations

import os
import signal
import time

import pytorch_lightning as pl
import torch
from hydra.experimental.callback import Callback


class SignalAt(pl.Callback):
    """Sends ``signum`` to this process at the start of batch ``batch`` of epoch ``epoch``."""

    def __init__(self, epoch: int = 1, batch: int = 0, signum: int = int(signal.SIGINT)):
        self.epoch, self.batch, self.signum = epoch, batch, signum

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx: int) -> None:
        if trainer.current_epoch == self.epoch and batch_idx == self.batch:
            os.kill(os.getpid(), self.signum)


class NaNLossAt(pl.Callback):
    """Poisons the weights after optimizer step ``step`` so the next loss is NaN."""

    def __init__(self, step: int = 3):
        self.step = step

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx: int) -> None:
        if trainer.global_step == self.step:
            with torch.no_grad():
                for p in pl_module.parameters():
                    p.fill_(float("nan"))


class RaiseAt(pl.Callback):
    """A bug in the middle of training: raises RuntimeError at batch ``batch`` of the first epoch."""

    def __init__(self, batch: int = 1):
        self.batch = batch

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx: int) -> None:
        if batch_idx == self.batch:
            raise RuntimeError("injected bug")


class BrokenInit(pl.Callback):
    """A bug in a constructor: instantiating this raises KeyError (Hydra wraps it)."""

    def __init__(self):
        raise KeyError("injected constructor bug")


class InterruptAfterJob(Callback):
    """A Hydra callback: Ctrl+C (SIGINT to this process) when job ``after`` has ended, i.e.
    between two jobs of a sweep (two trials of a search), outside any run."""

    def __init__(self, after: int = 0):
        self.after = after

    def on_job_end(self, config, job_return, **kwargs) -> None:
        if config.hydra.job.num == self.after:
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(5)  # the KeyboardInterrupt is raised here, before the next job


class Hostile:
    """Unpickling this runs ``touch MARKER``: what a malicious data file or checkpoint would do."""

    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))
