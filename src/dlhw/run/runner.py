"""One run from a composed config: validate, build, fit, test, write results.json.

``run`` does the work; ``run_safely`` turns what can go wrong (user errors, interrupts,
divergence, a failing sweep job) into one message, a results.json status and an exit code.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from omegaconf import DictConfig

from dlhw.errors import UserError
from dlhw.results import RunResult, read_results, write_results

if TYPE_CHECKING:
    from dlhw.lit.guards import RunStopped

log = logging.getLogger("dlhw")


def run_dir_of(cfg: DictConfig) -> Path:
    return Path(cfg.paths.output_dir)


def overrides_of(cfg: DictConfig) -> list[str]:
    """The command-line overrides of this job (empty outside a Hydra app)."""
    from hydra.core.hydra_config import HydraConfig

    if HydraConfig.initialized():
        return list(HydraConfig.get().overrides.task)
    return list(cfg.get("overrides") or [])


TIP_LOGGERS = ("pytorch_lightning.utilities.rank_zero", "lightning.pytorch.utilities.rank_zero")


def _no_tips(record: logging.LogRecord) -> bool:
    return "Tip:" not in record.getMessage()


def quiet_libraries() -> None:
    """Silence library chatter that says nothing about this run (tips, deprecations of internals).

    Idempotent: every run of a process (a sweep's jobs, the tests) calls it, and each filter is
    installed once (the same function object; warnings replaces an identical filter).
    """
    import warnings

    warnings.filterwarnings("ignore", message=".*LeafSpec.*")
    warnings.filterwarnings("ignore", message=".*smaller than the logging interval.*")
    warnings.filterwarnings("ignore", message=".*does not have many workers.*")
    for name in TIP_LOGGERS:
        logging.getLogger(name).addFilter(_no_tips)  # a filter already there is not added again


def run(cfg: DictConfig) -> float | None:
    """Train and test one configuration; return the metric a sweeper optimises."""
    import pytorch_lightning as pl

    from dlhw.config.tree import print_config
    from dlhw.config.validate import check_output_dir, validate
    from dlhw.data.loader import check_fits, data_bytes
    from dlhw.lit.guards import RunGuard
    from dlhw.run.build import build
    from dlhw.run.resume import check_checkpoint, plan_resume
    from dlhw.sweep.devices import (
        assigned_share,
        cap_gpu_memory,
        ddp_for_sweeps,
        out_of_share,
        placement_fields,
    )
    from dlhw.sweep.threads import configure_threads

    quiet_libraries()
    validate(cfg)  # before any data is loaded or model built
    ddp_for_sweeps(cfg, is_multirun())
    run_dir = run_dir_of(cfg)
    check_output_dir(run_dir)
    plan = plan_resume(cfg, run_dir, overrides_of(cfg), is_multirun())
    if plan.skip:
        log.info("%s already completed (status in results.json): skipped.", run_dir)
        return metric_of(plan.previous, cfg)
    threads = configure_threads(cfg.get("threads"))  # owned cores, split among parallel jobs
    pl.seed_everything(cfg.seed, workers=True, verbose=False)
    print_config(cfg, run_dir / "config.yaml")

    started = time.time()
    p = build(cfg)
    log.info(p.datamodule.describe())
    share, device = assigned_share(), p.trainer.strategy.root_device
    gpu_cap = cap_gpu_memory(share, device)  # a Ray job sharing a GPU: at most its share of memory
    check_fits(data_bytes(p.datamodule), device)
    if plan.ckpt_path:
        check_checkpoint(plan.ckpt_path, p.module)
        log.info("Resuming from %s", plan.ckpt_path)
    guard = next(c for c in p.callbacks if isinstance(c, RunGuard))
    try:
        with guard.signals():
            p.trainer.fit(p.module, datamodule=p.datamodule, ckpt_path=plan.ckpt_path, weights_only=True)
    except BaseException as exc:
        if guard.stopped is None:
            oom = out_of_share(exc, gpu_cap, data_bytes(p.datamodule))
            if oom is not None:
                raise oom from exc
            raise
        _record_stop(guard.stopped, p, cfg, run_dir, started)
        raise guard.stopped from None
    fit_metrics = {k: v.item() for k, v in p.trainer.callback_metrics.items()}
    ckpt_cb = p.trainer.checkpoint_callback
    best = ckpt_cb.best_model_path if ckpt_cb is not None and ckpt_cb.monitor else ""
    test = tester_for(p.trainer).test(
        p.module, datamodule=p.datamodule, ckpt_path=best or None, verbose=False
    )
    test = test[0] if test else {}

    timer = next((c for c in p.callbacks if type(c).__name__ == "EpochTimer"), None)
    best_score = ckpt_cb.best_model_score if best else None
    result = record_of(
        cfg,
        status="completed",
        test_acc=test.get("test/acc"),
        test_loss=test.get("test/loss"),
        best_val_acc=best_score.item() if best_score is not None else fit_metrics.get("val/acc"),
        final_val_acc=fit_metrics.get("val/acc"),
        final_val_loss=fit_metrics.get("val/loss"),
        final_train_loss=fit_metrics.get("train/loss"),
        **_progress(p.trainer, run_dir),
        wall_s=round(time.time() - started, 3),
        epoch_s=_mean(timer.epoch_times) if timer else None,
        train_samples_per_s=_mean(timer.samples_per_s) if timer else None,
        params=sum(t.numel() for t in p.net.parameters()),
        threads=threads,
        **placement_fields(device, share, gpu_cap),
        best_ckpt=best or None,
        resumed_from=plan.ckpt_path,
    )
    if p.trainer.global_rank == 0:
        write_results(run_dir, result)
        _print_summary(result, run_dir)
    metric = cfg.get("optimized_metric", "val/acc")
    return result.best_val_acc if metric == "val/acc" else fit_metrics.get(metric)


def record_of(cfg: DictConfig, /, **values) -> RunResult:
    """The results.json record of this run: what every record holds (seed, experiment, overrides,
    run directory), then ``values`` (a key that is no RunResult field is kept as extra)."""
    try:
        experiment = cfg.get("experiment_name")
    except Exception:  # ${hydra:...} outside a Hydra app (a failure before the job started)
        experiment = None
    return RunResult.create(**{
        "seed": cfg.get("seed"), "experiment": experiment,
        "overrides": overrides_of(cfg), "run_dir": str(run_dir_of(cfg)), **values,
    })


def tester_for(trainer):
    """The trainer that tests: after ddp_spawn, one device in this process (no second spawn).

    The test pass needs no gradient sync, and spawning the ranks a second time right after the
    first group was torn down occasionally aborted a gloo rank on CPU.
    """
    import pytorch_lightning as pl
    from pytorch_lightning.strategies.launchers.multiprocessing import _MultiProcessingLauncher

    if not isinstance(trainer.strategy.launcher, _MultiProcessingLauncher):
        return trainer
    keep = [
        cb for cb in trainer.callbacks
        if not isinstance(cb, (pl.callbacks.ModelCheckpoint, pl.callbacks.ProgressBar))
    ]
    return pl.Trainer(
        accelerator=trainer.strategy.root_device.type, devices=1, logger=trainer.loggers or False,
        callbacks=keep, enable_progress_bar=False, enable_model_summary=False,
        precision=trainer.precision, default_root_dir=trainer.default_root_dir,
    )


def _progress(trainer, run_dir: Path) -> dict:
    """Epochs and steps trained; under ddp_spawn the ranks kept them, so read them from last.ckpt."""
    epochs, steps = trainer.current_epoch, trainer.global_step
    last = run_dir / "checkpoints" / "last.ckpt"
    if steps == 0 and trainer.strategy.launcher is not None and last.is_file():
        import torch

        ckpt = torch.load(last, map_location="cpu", weights_only=True)
        epochs, steps = ckpt["epoch"] + 1, ckpt["global_step"]
    return {"epochs": epochs, "global_steps": steps}


def is_multirun() -> bool:
    """True inside a Hydra multirun job (a sweep)."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


def metric_of(result: RunResult, cfg: DictConfig) -> float | None:
    """The optimised metric of a finished run, read back from its results.json."""
    metric = cfg.get("optimized_metric", "val/acc")
    key = {"val/acc": "best_val_acc", "val/loss": "final_val_loss", "train/loss": "final_train_loss"}
    return result.get(key.get(metric, metric))


def _record_stop(stop: RunStopped, p, cfg: DictConfig, run_dir: Path, started: float) -> None:
    """results.json of a run stopped by a signal or a non-finite loss (finished epochs are kept)."""
    last = run_dir / "checkpoints" / "last.ckpt"
    ckpt_cb = p.trainer.checkpoint_callback
    best = getattr(ckpt_cb, "best_model_score", None)
    stop.info.update(run_dir=str(run_dir), last_ckpt=str(last) if last.is_file() else None)
    if p.trainer.global_rank == 0:
        write_results(run_dir, record_of(
            cfg, status=stop.status, reason=str(stop), **stop.info,
            best_val_acc=best.item() if best is not None else None,
            global_steps=p.trainer.global_step, wall_s=round(time.time() - started, 3),
            resume=f"dlhw-train resume={run_dir}",
        ))


def _stop_message(stop: RunStopped) -> str:
    from dlhw.lit.guards import RunInterrupted

    info = stop.info
    if isinstance(stop, RunInterrupted):
        saved = info.get("last_ckpt") or "none yet (interrupted in the first epoch)"
        return (f"run {stop} at epoch {info.get('epoch')}, step {info.get('global_step')}; "
                f"{info.get('epochs_completed')} finished epoch(s) kept (last checkpoint: {saved}). "
                f"Continue it with: dlhw-train resume={info.get('run_dir')}")
    return (f"run diverged: {stop}; stopped instead of training on NaNs (results.json status "
            "diverged). Lower optimizer.lr, clip gradients (trainer.gradient_clip_val=1.0) "
            "or check the inputs.")


def _record_failure(cfg: DictConfig, exc: BaseException) -> None:
    """results.json status failed, unless the directory holds a completed run (never lose it)."""
    run_dir = run_dir_of(cfg)
    previous = read_results(run_dir)
    if previous is not None and previous.completed:
        log.error("%s keeps its completed results.json; this attempt failed: %s", run_dir, exc)
        return
    try:
        write_results(run_dir, record_of(
            cfg, status="failed", error=f"{type(exc).__name__}: {exc}",
            previous_status=previous.status if previous is not None else None,
        ))
    except OSError:  # the directory itself is the problem (already reported)
        pass


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def _print_summary(result: RunResult, run_dir: Path) -> None:
    acc = result.test_acc
    print(
        f"\nTest accuracy: {acc * 100:.2f}%" if acc is not None else "\nTest accuracy: n/a",
        f"(test loss {result.test_loss:.4f}, {result.epochs} epochs, {result.wall_s:.1f} s)"
        if result.test_loss is not None else "",
    )
    print(f"Run directory: {run_dir}")
    print(f"TensorBoard:   tensorboard --logdir {run_dir}\n")


def find_user_error(exc: BaseException) -> UserError | None:
    """The user error behind an exception, or None: a bug, which keeps its traceback.

    Hydra wraps what a constructor raises in an InstantiationException; only a UserError found in
    the chain of causes is the user's (a bad value, a missing file: constructors and checks raise
    UserError for those), whatever else a constructor raises is a bug in it.
    """
    seen, visited = exc, set()
    while seen is not None and id(seen) not in visited:
        if isinstance(seen, UserError):
            return seen
        visited.add(id(seen))
        seen = seen.__cause__ or seen.__context__
    return None


def _tell_user(message: str) -> None:
    """The message once on stderr; the log file (not the console log) gets a copy."""
    for handler in logging.getLogger().handlers:
        if type(handler) is logging.StreamHandler and not getattr(handler, "_dlhw_filtered", False):
            handler.addFilter(lambda record: not getattr(record, "file_only", False))
            handler._dlhw_filtered = True
    log.error(message, extra={"file_only": True})
    print(message, file=sys.stderr)


def run_safely(cfg: DictConfig) -> float | None:
    """Run; errors become one message and an exit status, and never stop the other jobs of a sweep.

    A user error: "dlhw: error: ..." on stderr, status failed, exit 2. An interrupt: status
    interrupted, exit 128 + signal (a sweep stops there too). A divergence: status diverged, exit
    3. In a sweep every failure (bugs included) is recorded and the sweep goes on (the job
    returns nan). HYDRA_FULL_ERROR=1 shows the traceback instead.
    """
    from dlhw.lit.guards import RunInterrupted, RunStopped, exit_code_of

    multirun = is_multirun()
    try:
        return run(cfg)
    except RunStopped as stop:
        message = _stop_message(stop)
        if multirun and not isinstance(stop, RunInterrupted):
            log.error("dlhw: %s", message)
            return float("nan")
        _tell_user(f"dlhw: {message}")
        raise SystemExit(exit_code_of(stop)) from None
    except KeyboardInterrupt:  # Ctrl+C before training started or after it ended: nothing half-done
        _tell_user("dlhw: interrupted outside training; finished epochs are in checkpoints/last.ckpt. "
                   f"Continue with: dlhw-train resume={run_dir_of(cfg)}")
        raise SystemExit(130) from None
    except Exception as exc:
        user_error = find_user_error(exc)
        _record_failure(cfg, exc)
        if os.environ.get("HYDRA_FULL_ERROR") == "1":
            raise
        if multirun:  # one bad job must not stop the sweep
            if user_error is None:
                log.exception("dlhw: job failed (the sweep goes on): %s", exc)
            else:
                log.error("dlhw: %s", user_error)
            return float("nan")
        if user_error is None:
            raise
        _tell_user(f"dlhw: error: {user_error}")
        raise SystemExit(2) from None
