"""Run guards: stop cleanly on SIGINT/SIGTERM, stop on a non-finite loss, make resumes exact.

``RunGuard`` is always among a run's callbacks (dlhw.run.build adds it). It

- turns SIGINT and SIGTERM into a clean stop at the next batch boundary: a mid-epoch checkpoint
  ``checkpoints/interrupted.ckpt`` is saved, ``RunInterrupted`` ends ``fit`` (dlhw.run.runner.run then
  writes results.json with status "interrupted"). A resume continues from ``last.ckpt``, the end
  of the last finished epoch, so that it ends exactly where an uninterrupted run would. A second
  Ctrl+C stops at once.
- checks the training loss for nan/inf (every step on CPU; every ``check_every`` steps on a GPU,
  where a check is a device sync, still naming the first bad step) and raises ``RunDiverged``
  instead of training on NaNs, before the epoch's checkpoint could store NaN weights.
- keeps the global RNG states (torch, CUDA, numpy, random) in every checkpoint and restores them
  on resume, so dropout and anything else drawing from them continue as if never stopped.
"""

from __future__ import annotations

import logging
import random
import signal
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch

log = logging.getLogger("dlhw")

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class RunStopped(Exception):
    """Training stopped early on purpose (interrupt or divergence); ``info`` goes to results.json."""

    status = "stopped"

    def __init__(self, message: str, **info: Any):
        super().__init__(message)
        self.info = info


class RunInterrupted(RunStopped):
    status = "interrupted"


class RunDiverged(RunStopped):
    status = "diverged"


def exit_code_of(exc: RunStopped) -> int:
    """128 + signal number for an interrupt (the shell's convention), 3 for a divergence."""
    return 128 + int(exc.info.get("signal_number", signal.SIGINT)) if isinstance(exc, RunInterrupted) else 3


class RunGuard(pl.Callback):
    """Signal handling, non-finite loss detection and RNG state in checkpoints (see module doc).

    Args:
        check_every: check the loss every this many steps; None: 1 on CPU, 25 on accelerators.
        ckpt_dir: where interrupted.ckpt goes (default: the trainer's checkpoint folder).
    """

    def __init__(self, check_every: int | None = None, ckpt_dir: str | None = None):
        self.check_every = check_every
        self.ckpt_dir = ckpt_dir
        self.signum: int | None = None
        self._previous: dict[int, Any] = {}
        self._first_bad: torch.Tensor | None = None
        self._step_at_start = 0
        self._batches_this_epoch = 0
        self.stopped: RunStopped | None = None
        self._hook_installed = False

    # ------------------------------------------------------------------ signals
    def _on_signal(self, signum: int, frame) -> None:
        if self.signum is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt  # second Ctrl+C: stop now
        self.signum = signum
        log.warning(
            "Received %s: stopping after this batch and saving a checkpoint (Ctrl+C again to stop now).",
            signal.Signals(signum).name,
        )

    def install(self) -> bool:
        """Route SIGINT/SIGTERM to this guard (main thread only); True when installed."""
        if self._previous or threading.current_thread() is not threading.main_thread():
            return False
        for sig in SIGNALS:
            self._previous[sig] = signal.signal(sig, self._on_signal)
        return True

    def uninstall(self) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler if handler is not None else signal.SIG_DFL)
        self._previous = {}

    @contextmanager
    def signals(self):
        """Handle SIGINT/SIGTERM inside the block, restore the previous handlers after it."""
        installed = self.install()
        try:
            yield self
        finally:
            if installed:
                self.uninstall()

    def __getstate__(self) -> dict:  # ddp_spawn pickles callbacks: handlers stay in the parent
        state = dict(self.__dict__)
        state["_previous"] = {}
        state["_first_bad"] = None
        return state

    def _interrupt_requested(self, trainer: pl.Trainer) -> bool:
        requested = self.signum is not None or trainer.received_sigterm
        if trainer.world_size > 1:  # every rank must stop at the same batch
            requested = trainer.strategy.reduce_boolean_decision(requested, all=False)
        return bool(requested)

    # ------------------------------------------------------------------ hooks
    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # ddp_spawn workers and plain trainer.fit calls; a no-op where run() installed it already
        self._hook_installed = self.install()
        self.stopped = None
        self._first_bad = None

    def _release(self) -> None:
        if getattr(self, "_hook_installed", False):
            self.uninstall()
            self._hook_installed = False

    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._release()

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._batches_this_epoch = 0

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx: int) -> None:
        self._step_at_start = trainer.global_step
        if self._interrupt_requested(trainer):
            signum = self.signum or signal.SIGTERM
            raise RunInterrupted(
                f"interrupted by {signal.Signals(signum).name}",
                signal=signal.Signals(signum).name, signal_number=int(signum),
                epoch=trainer.current_epoch, global_step=trainer.global_step,
                epochs_completed=trainer.fit_loop.epoch_progress.current.completed,
            )

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx: int) -> None:
        self._batches_this_epoch += 1
        loss = outputs.get("loss") if isinstance(outputs, dict) else outputs
        if not isinstance(loss, torch.Tensor):
            return
        loss = loss.detach()
        every = self.check_every or (1 if loss.device.type == "cpu" else 25)
        if every == 1:
            if not torch.isfinite(loss).all():
                self._diverged(trainer, self._step_at_start, loss.float().max().item())
            return
        # accelerators: remember the first bad step on the device, look at it every `every` steps
        if self._first_bad is None or self._first_bad.device != loss.device:
            self._first_bad = torch.full((), -1, dtype=torch.long, device=loss.device)
        bad = ~torch.isfinite(loss).all() & (self._first_bad < 0)
        self._first_bad = torch.where(bad, torch.full_like(self._first_bad, self._step_at_start), self._first_bad)
        last_batch = batch_idx + 1 >= trainer.num_training_batches
        if last_batch or (trainer.global_step % every == 0):
            first = int(self._first_bad.item())
            if first >= 0:
                self._diverged(trainer, first, None)

    def _diverged(self, trainer: pl.Trainer, step: int, value: float | None) -> None:
        shown = "nan/inf" if value is None else str(value)
        raise RunDiverged(
            f"the training loss became {shown} at step {step} (epoch {trainer.current_epoch})",
            diverged_step=step, epoch=trainer.current_epoch, loss=shown,
            epochs_completed=trainer.fit_loop.epoch_progress.current.completed,
        )

    def on_exception(self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException) -> None:
        if isinstance(exception, RunStopped):
            self.stopped = exception
        elif self.signum is not None or trainer.received_sigterm:  # Lightning's own SIGTERM stop
            signum = self.signum or signal.SIGTERM
            self.stopped = RunInterrupted(
                f"interrupted by {signal.Signals(signum).name}",
                signal=signal.Signals(signum).name, signal_number=int(signum),
                epoch=trainer.current_epoch, global_step=trainer.global_step,
                epochs_completed=trainer.fit_loop.epoch_progress.current.completed,
            )
        if isinstance(self.stopped, RunInterrupted) and self._batches_this_epoch > 0:
            path = self._ckpt_dir(trainer) / "interrupted.ckpt"
            trainer.save_checkpoint(path, weights_only=False)
            self.stopped.info["interrupted_ckpt"] = str(path)
        self._release()

    def _ckpt_dir(self, trainer: pl.Trainer) -> Path:
        if self.ckpt_dir:
            return Path(self.ckpt_dir)
        cb = trainer.checkpoint_callback
        if cb is not None and getattr(cb, "dirpath", None):
            return Path(cb.dirpath)
        return Path(trainer.default_root_dir) / "checkpoints"

    # ------------------------------------------------------------------ RNG state in checkpoints
    def state_dict(self) -> dict[str, Any]:
        np_state = np.random.get_state()
        state = {
            "torch": torch.get_rng_state(),
            "numpy": [np_state[0], torch.from_numpy(np_state[1].astype(np.int64)), *map(float, np_state[2:])],
            "python": random.getstate(),
        }
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            state["cuda"] = torch.cuda.get_rng_state_all()
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if "torch" in state:
            torch.set_rng_state(state["torch"])
        if "numpy" in state:
            name, keys, pos, has_gauss, cached = state["numpy"]
            np.random.set_state((name, keys.numpy().astype(np.uint32), int(pos), int(has_gauss), cached))
        if "python" in state:
            version, internal, gauss = state["python"]
            random.setstate((version, tuple(internal), gauss))
        if "cuda" in state and torch.cuda.is_available():
            cuda = state["cuda"][: torch.cuda.device_count()]
            torch.cuda.set_rng_state_all(cuda)
