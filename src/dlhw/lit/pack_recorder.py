"""The files of every run of a pack: TensorBoard scalars, best and last checkpoints, as a run alone
writes them.

At the end of each epoch (where ``ModelCheckpoint`` saves in a run alone, and before the learning
rates step) the pack's checkpoint is taken once and cut into one ordinary checkpoint per run:
``net.*`` weights of its own model, its own optimizer and schedule states, its ``ModelCheckpoint``
and ``RunGuard`` states (its dropout generator as the global RNG state), and the pack's loop
progress, which is every run's. ``dlhw-eval`` and ``resume=RUN_DIR`` read them as any run's.
"""

from __future__ import annotations

import logging
import os
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from pytorch_lightning.utilities.exceptions import SIGTERMException

from dlhw.lit.guards import RunGuard, RunInterrupted, RunStopped
from dlhw.lit.hparams import hparams_summaries

log = logging.getLogger("dlhw")

# the row of PackedClassifier.epoch_metrics[stage] (loss, acc) that a monitored metric names
MONITORED = {"val/loss": ("val", 0), "val/acc": ("val", 1), "train/loss": ("train", 0), "train/acc": ("train", 1)}


@dataclass
class RunFiles:
    """Where one run of a pack writes, and what it has written so far."""

    run_dir: Path
    checkpoint: pl.callbacks.ModelCheckpoint | None  # the run's own callback: file names, state
    params: dict[str, Any] = field(default_factory=dict)  # its HPARAMS
    swept: list[str] = field(default_factory=list)  # the keys its sweep varies: the first columns
    lr_tag: str = "lr"
    writer: Any = None
    best_score: float | None = None
    best_path: str | None = None
    stopped_epoch: int | None = None
    log_extra: dict[str, Any] = field(default_factory=dict)  # tags its records for its train.log

    @property
    def ckpt_dir(self) -> Path:
        if self.checkpoint is not None and self.checkpoint.dirpath:
            return Path(self.checkpoint.dirpath)
        return self.run_dir / "checkpoints"

    def monitored(self) -> bool:
        return self.checkpoint is not None and bool(self.checkpoint.monitor)


def run_checkpoint(pack_ckpt: dict, k: int, module, files: RunFiles, guard_state: dict) -> dict:
    """Run k's ordinary checkpoint cut out of the pack's."""
    out = {key: v for key, v in pack_ckpt.items()
           if key not in ("state_dict", "optimizer_states", "lr_schedulers", "callbacks")}
    out["state_dict"] = module.run_state_dict(k)
    out["optimizer_states"] = [state["runs"][k] for state in pack_ckpt.get("optimizer_states", [])]
    schedule = module.schedules[k]
    out["lr_schedulers"] = [schedule.state_dict()] if schedule is not None else []
    callbacks: dict[str, Any] = {}
    if files.checkpoint is not None:
        callbacks[files.checkpoint.state_key] = files.checkpoint.state_dict()
    callbacks[RunGuard().state_key] = {**guard_state, "torch": module.generators[k].get_state()}
    out["callbacks"] = callbacks
    return out


def _save(ckpt: dict, path: Path) -> None:
    """Atomically: a checkpoint is never half-written."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(ckpt, tmp)
    os.replace(tmp, path)


class PackRecorder(pl.callbacks.Checkpoint):
    """Writes every run's scalars and checkpoints (see the module doc). A Checkpoint callback, so
    that Lightning runs it after the module's epoch-end hook, as it runs ModelCheckpoint."""

    def __init__(self, runs: list[RunFiles]):
        self.runs = runs
        self._t0: float | None = None
        self.epoch_times: list[float] = []
        self.samples_per_s: list[float] = []
        self._samples = 0

    # ------------------------------------------------------------------ TensorBoard
    def on_fit_start(self, trainer, pl_module) -> None:
        from torch.utils.tensorboard import SummaryWriter

        for files in self.runs:
            if files.writer is None and files.params is not None:
                files.writer = SummaryWriter(str(files.run_dir))
                if files.params:
                    for summary in hparams_summaries(files.params, files.swept):
                        files.writer._get_file_writer().add_summary(summary)

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        self._t0, self._samples = time.perf_counter(), 0

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self._samples += batch[1].shape[1]

    def _scalars(self, trainer, pl_module, epoch_s: float) -> None:
        metrics = pl_module.epoch_metrics
        step = trainer.global_step
        for k, files in enumerate(self.runs):
            if files.writer is None or files.stopped_epoch is not None:
                continue
            for stage in ("train", "val"):
                if stage in metrics:
                    files.writer.add_scalar(f"{stage}/loss", float(metrics[stage][0, k]), step)
                    files.writer.add_scalar(f"{stage}/acc", float(metrics[stage][1, k]), step)
            lr = pl_module.run_optimizers[k].param_groups[0]["lr"]
            files.writer.add_scalar(files.lr_tag, float(lr), step)
            files.writer.add_scalar("time/epoch_s", epoch_s, step)
            files.writer.add_scalar("time/samples_per_s", self._samples / max(epoch_s, 1e-9), step)
            files.writer.flush()

    # ------------------------------------------------------------------ checkpoints
    def on_train_epoch_end(self, trainer, pl_module) -> None:
        if self._t0 is not None:
            if pl_module.device.type == "cuda":
                torch.cuda.synchronize(pl_module.device)
            self.epoch_times.append(time.perf_counter() - self._t0)
            self.samples_per_s.append(self._samples / max(self.epoch_times[-1], 1e-9))
        self.note_divergences(trainer, pl_module)
        self._scalars(trainer, pl_module, self.epoch_times[-1] if self.epoch_times else 0.0)
        self.save(trainer, pl_module, "epoch")
        pl_module.step_plateau_schedules()  # after the checkpoints, as Lightning steps a run's

    def note_divergences(self, trainer, pl_module) -> None:
        """Runs that diverged since the last look: logged once, their files frozen."""
        active = pl_module.active.tolist()
        for k, files in enumerate(self.runs):
            if not active[k] and files.stopped_epoch is None:
                files.stopped_epoch = trainer.current_epoch
                step = int(pl_module.first_bad_step[k])
                log.warning("%s: the training loss became nan/inf at step %d (epoch %d); this run is "
                            "frozen, the others go on.", files.run_dir.name, step, trainer.current_epoch,
                            extra=files.log_extra)
        if not any(active):
            trainer.should_stop = True

    def save(self, trainer, pl_module, when: str) -> None:
        pack_ckpt = trainer._checkpoint_connector.dump_checkpoint(weights_only=False)
        guard_state = pack_ckpt.get("callbacks", {}).get(PackGuard().state_key, {})
        for k, files in enumerate(self.runs):
            if files.stopped_epoch is not None and when == "epoch":
                continue  # a diverged run keeps its last finite checkpoint
            if when == "interrupted":
                _save(run_checkpoint(pack_ckpt, k, pl_module, files, guard_state),
                      files.ckpt_dir / "interrupted.ckpt")
                continue
            score = self._monitored(pl_module, files, k)
            if score is not None:
                self._update_best(trainer, pl_module, k, files, score, pack_ckpt, guard_state)
            if files.checkpoint is None or files.checkpoint.save_last is not False:
                last = files.ckpt_dir / "last.ckpt"
                if files.checkpoint is not None:
                    files.checkpoint.last_model_path = str(last)
                _save(run_checkpoint(pack_ckpt, k, pl_module, files, guard_state), last)

    @staticmethod
    def _monitored(pl_module, files: RunFiles, k: int) -> float | None:
        """Run k's value of the metric its ModelCheckpoint monitors (None: nothing to compare)."""
        if not files.monitored():
            return None
        stage, row = MONITORED.get(files.checkpoint.monitor, (None, None))
        if stage is None:
            raise ValueError(f"a pack cannot monitor {files.checkpoint.monitor}")
        values = pl_module.epoch_metrics.get(stage)
        return float(values[row, k]) if values is not None else None

    def _update_best(self, trainer, pl_module, k: int, files: RunFiles, score: float,
                     pack_ckpt: dict, guard_state: dict) -> None:
        mc = files.checkpoint
        better = files.best_score is None or (score > files.best_score if mc.mode == "max" else score < files.best_score)
        mc.current_score = torch.tensor(score)
        if not better:
            return
        metrics = {"epoch": trainer.current_epoch, "step": trainer.global_step, mc.monitor: torch.tensor(score)}
        path = Path(mc.format_checkpoint_name(metrics))
        old = files.best_path
        files.best_score, files.best_path = score, str(path)
        mc.best_model_score, mc.best_model_path = torch.tensor(score), str(path)
        mc.best_k_models = {str(path): torch.tensor(score)}
        mc.kth_best_model_path, mc.kth_value = str(path), torch.tensor(score)
        _save(run_checkpoint(pack_ckpt, k, pl_module, files, guard_state), path)
        if old and old != str(path) and Path(old).is_file():
            Path(old).unlink()

    def on_exception(self, trainer, pl_module, exception: BaseException) -> None:
        # a signal stops the pack after a whole batch: at the next batch (Ctrl+C, RunInterrupted)
        # or, for SIGTERM, as the batch ends (Lightning's own SIGTERMException)
        by_signal = isinstance(exception, (RunInterrupted, SIGTERMException))
        if by_signal and pl_module.sums.get("train") is not None:
            self.save(trainer, pl_module, "interrupted")

    def on_fit_end(self, trainer, pl_module) -> None:
        self.note_divergences(trainer, pl_module)

    def close(self) -> None:
        for files in self.runs:
            if files.writer is not None:
                files.writer.close()

    # ------------------------------------------------------------------ the pack's own state
    def state_dict(self) -> dict[str, Any]:
        return {"best": [(f.best_score, f.best_path) for f in self.runs]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for files, (score, path) in zip(self.runs, state.get("best", []), strict=False):
            files.best_score, files.best_path = score, path


class PackGuard(RunGuard):
    """RunGuard for a pack: signals stop every run at a batch boundary and the recorder writes each
    run's interrupted.ckpt (the stacked checkpoint is never written); divergence is per run, in
    PackedClassifier, so the summed loss is not checked here."""

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx: int) -> None:
        self._batches_this_epoch += 1

    def on_exception(self, trainer, pl_module, exception: BaseException) -> None:
        if isinstance(exception, RunStopped):
            self.stopped = exception
        elif self.signum is not None or trainer.received_sigterm:  # a second Ctrl+C: stop now
            signum = self.signum or signal.SIGTERM
            self.stopped = RunInterrupted(
                f"interrupted by {signal.Signals(signum).name}", signal=signal.Signals(signum).name,
                signal_number=int(signum), epoch=trainer.current_epoch, global_step=trainer.global_step,
                epochs_completed=trainer.fit_loop.epoch_progress.current.completed)
        self._release()
