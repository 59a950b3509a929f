"""Train one pack: K jobs of a sweep as one stacked model, each leaving a whole run directory.

Every run is built as it is built alone (seeded, its model initialised, its own optimizer and
schedule), then the K networks are stacked (``dlhw.lit.packed``). The run directories get what
a run alone writes: config.yaml, TensorBoard scalars and HPARAMS, best and last checkpoints in
the ordinary format, results.json (with ``packed_with``). Resumed runs continue from their own
last.ckpt; runs that stopped at different epochs resume in separate packs.
"""

from __future__ import annotations

import logging
import math
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import pytorch_lightning as pl
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from dlhw.config.flatten import flatten_config, swept_keys
from dlhw.config.validate import check_data, validate
from dlhw.data.datamodule import ClassificationData
from dlhw.data.pack_loader import PackData
from dlhw.errors import UserError
from dlhw.lit.guards import RunGuard, RunInterrupted
from dlhw.lit.module import Classifier
from dlhw.lit.pack_recorder import PackGuard, PackRecorder, RunFiles
from dlhw.lit.packed import PackedClassifier
from dlhw.optim.stacked import unsupported_reason
from dlhw.results import RunResult, read_results, write_results
from dlhw.run.build import build_model, instantiate_dict
from dlhw.run.resume import check_checkpoint, plan_resume
from dlhw.run.runner import metric_of, quiet_libraries
from dlhw.sweep.devices import placement_fields
from dlhw.sweep.threads import configure_threads

log = logging.getLogger("dlhw")


class PackRefused(Exception):
    """The jobs cannot train as one pack after all (found while building); they run alone."""


@dataclass
class PackJob:
    """One job of a pack: its name, composed config, overrides (all and swept) and directory."""

    name: str
    cfg: DictConfig
    overrides: list[str]
    swept: list[str]

    @property
    def run_dir(self) -> Path:
        return Path(self.cfg.paths.output_dir)


@dataclass
class Built:
    """One run, built as alone: network, own optimizer and schedule, dropout generator, files."""

    job: PackJob
    classifier: Classifier
    optimizer: torch.optim.Optimizer
    schedule: object | None
    generator: torch.Generator
    files: RunFiles
    ckpt: dict | None = None


def _optimizer_and_schedule(classifier: Classifier):
    configured = classifier.configure_optimizers()
    if isinstance(configured, dict):
        return configured["optimizer"], configured["lr_scheduler"]["scheduler"]
    return configured, None


def _build_run(job: PackJob, datamodule, ckpt_path: str | None) -> Built:
    cfg = job.cfg
    pl.seed_everything(cfg.seed, workers=True, verbose=False)
    loss, net = build_model(cfg, datamodule)
    generator = torch.Generator()
    generator.set_state(torch.get_rng_state())  # dropout draws of the run alone come from here
    module_cfg = cfg.get("module") or {}
    classifier = Classifier(net, loss, optimizer=instantiate(cfg.optimizer),
                            scheduler=instantiate(cfg.scheduler) if cfg.get("scheduler") else None,
                            **module_cfg)
    optimizer, schedule = _optimizer_and_schedule(classifier)
    reason = unsupported_reason(optimizer)
    if reason:
        raise PackRefused(reason)
    callbacks = instantiate_dict(cfg.get("callbacks"))
    checkpoint = next((c for c in callbacks if isinstance(c, pl.callbacks.ModelCheckpoint)), None)
    has_logger = bool(cfg.get("logger"))
    params = flatten_config(cfg, job.swept)
    files = RunFiles(job.run_dir, checkpoint, params=params if has_logger else None,
                     swept=swept_keys(job.swept),
                     lr_tag=f"lr-{type(optimizer).__name__}")
    built = Built(job, classifier, optimizer, schedule, generator, files)
    if ckpt_path:
        check_checkpoint(ckpt_path, classifier)
        ckpt = torch.load(ckpt_path, map_location="cpu", weights_only=True)
        classifier.load_state_dict(ckpt["state_dict"])
        optimizer.load_state_dict(ckpt["optimizer_states"][0])
        if schedule is not None and ckpt.get("lr_schedulers"):
            schedule.load_state_dict(ckpt["lr_schedulers"][0])
        guard = ckpt.get("callbacks", {}).get(RunGuard().state_key, {})
        if "torch" in guard:
            generator.set_state(guard["torch"])
        if checkpoint is not None and checkpoint.state_key in ckpt.get("callbacks", {}):
            checkpoint.load_state_dict(ckpt["callbacks"][checkpoint.state_key])
            if checkpoint.best_model_score is not None:
                files.best_score = float(checkpoint.best_model_score)
                files.best_path = checkpoint.best_model_path
        built.ckpt = ckpt
    OmegaConf.save(cfg, job.run_dir / "config.yaml", resolve=True)
    return built


def _pack_checkpoint(runs: list[Built], module: PackedClassifier, recorder: PackRecorder, path: Path) -> str:
    """The pack's checkpoint rebuilt from its runs' last.ckpt files (all at the same epoch)."""
    first = runs[0].ckpt
    ckpt = {key: v for key, v in first.items()
            if key not in ("state_dict", "optimizer_states", "lr_schedulers", "callbacks")}
    ckpt["state_dict"] = module.state_dict()
    ckpt["optimizer_states"] = [{"state": {}, "param_groups": [],
                                 "runs": [r.ckpt["optimizer_states"][0] for r in runs]}]
    ckpt["lr_schedulers"] = [{}] if any(r.schedule is not None for r in runs) else []
    ckpt["callbacks"] = {recorder.state_key: recorder.state_dict()}
    torch.save(ckpt, path)
    return str(path)


def _resume_point(built: Built) -> tuple[int, int]:
    """(epoch, step) its last.ckpt resumes from; (-1, 0) for a fresh run."""
    return (int(built.ckpt["epoch"]), int(built.ckpt["global_step"])) if built.ckpt else (-1, 0)


def train_pack(jobs: list[PackJob], log_extra, progress: bool = True,
               threads: int | None = None) -> list[float | None]:
    """Train the jobs as one pack (or as several, by resume point); the metric of each job.
    ``progress``: show the configured progress bar; ``threads``: intra-op threads, set before
    anything is computed, in place of the jobs' own setting (a forked process runs one).

    A job whose own settings or directory are refused (a user error) is recorded failed with one
    message and the others train on; an error common to all (the data) is raised.
    """
    if threads is not None:
        configure_threads(threads)
    quiet_libraries()
    # on a CPU the runs of a pack take their own steps inside training_step (PackedClassifier)
    warnings.filterwarnings("ignore", message=".*training_step.* returned .None.")
    metrics: list[float | None] = [None] * len(jobs)
    todo: list[tuple[int, PackJob, str | None]] = []
    for i, job in enumerate(jobs):
        try:
            validate(job.cfg)
            plan = plan_resume(job.cfg, job.run_dir, job.overrides, True)
        except UserError as exc:
            job_failed(job, exc, log_extra(i))
            metrics[i] = float("nan")
            continue
        if plan.skip:
            log.info("%s already completed (status in results.json): skipped.", job.run_dir, extra=log_extra(i))
            metrics[i] = metric_of(plan.previous, job.cfg)
            continue
        todo.append((i, job, plan.ckpt_path))
    if not todo:
        return metrics
    cfg = todo[0][1].cfg
    configure_threads(threads or cfg.get("threads"))
    datamodule = instantiate(cfg.data)
    datamodule.setup("fit")
    check_data(cfg, datamodule)
    if getattr(datamodule, "per_step_targets", False):
        raise PackRefused("sequence-to-sequence targets are scored by masking padding, which vmap cannot batch")
    if type(datamodule).train_dataloader is not ClassificationData.train_dataloader:
        raise PackRefused(f"{type(datamodule).__name__} makes its own training batches (e.g. fresh "
                          "sequences every epoch), which a pack cannot share out per run")
    built: list[tuple[int, Built]] = []
    for i, job, ckpt in todo:
        try:
            built.append((i, _build_run(job, datamodule, ckpt)))
        except UserError as exc:
            job_failed(job, exc, log_extra(i))
            metrics[i] = float("nan")
    by_point: dict[tuple[int, int], list[tuple[int, Built]]] = {}
    for i, b in built:
        by_point.setdefault(_resume_point(b), []).append((i, b))
    for point, group in sorted(by_point.items()):
        if len(by_point) > 1:
            log.info("Resuming %d run(s) from epoch %d together.", len(group), point[0] + 1)
        for (i, _), value in zip(group, _fit_pack([b for _, b in group], datamodule, log_extra,
                                                  [i for i, _ in group], progress), strict=True):
            metrics[i] = value
    return metrics


def job_failed(job: PackJob, exc: BaseException, extra: dict) -> None:
    """One job of a pack refused: one message, results.json failed (a completed run is kept)."""
    log.error("dlhw: error: %s", exc, extra=extra)
    record_failure(job.run_dir, job.cfg.get("seed"), job.overrides, exc)


def record_failure(run_dir: Path, seed, overrides: list[str], exc: BaseException) -> None:
    """results.json status failed, unless the directory holds a completed run (never lose it)."""
    previous = read_results(run_dir)
    if previous is not None and previous.status == "completed":
        return
    write_results(run_dir, RunResult.create(
        status="failed", error=f"{type(exc).__name__}: {exc}", seed=seed, overrides=overrides,
        run_dir=str(run_dir), previous_status=previous.status if previous is not None else None))


def _fit_pack(runs: list[Built], datamodule, log_extra, indices: list[int], progress: bool) -> list[float | None]:
    cfg = runs[0].job.cfg
    names = [r.job.name for r in runs]
    log.info("Packed %d run%s into one stacked model: %s", len(runs), "s" if len(runs) > 1 else "",
             ", ".join(names))
    module = PackedClassifier(
        [r.classifier.net for r in runs], runs[0].classifier.loss_fn, [r.optimizer for r in runs],
        [r.schedule for r in runs], [r.generator for r in runs],
        scheduler_interval=(cfg.get("module") or {}).get("scheduler_interval", "epoch"),
        monitor=(cfg.get("module") or {}).get("monitor", "val/loss"),
        check_every=cfg.get("nan_check_every") or 25,
    )
    for r, i in zip(runs, indices, strict=True):
        r.files.log_extra = log_extra(i)
    recorder = PackRecorder([r.files for r in runs])
    guard = PackGuard()
    bars = [c for c in instantiate_dict(cfg.get("callbacks")) if isinstance(c, pl.callbacks.ProgressBar)]
    extra = {} if progress else {"enable_progress_bar": False}
    trainer = instantiate(cfg.trainer, callbacks=[recorder, guard, *(bars if progress else [])], logger=False,
                          enable_model_summary=False, **extra)
    data = PackData(datamodule, [int(r.job.cfg.data.get("seed", r.job.cfg.seed)) for r in runs])
    ckpt_path = None
    if runs[0].ckpt is not None:
        # in the first run's directory: packs resumed side by side in several processes never share it
        ckpt_path = _pack_checkpoint(runs, module, recorder, runs[0].job.run_dir / ".pack-resume.ckpt")
    started = time.time()
    try:
        return _fit_and_test(runs, module, recorder, guard, trainer, data, ckpt_path, started)
    finally:
        recorder.close()
        if ckpt_path:
            Path(ckpt_path).unlink(missing_ok=True)


def _fit_and_test(runs, module, recorder, guard, trainer, data, ckpt_path, started) -> list[float | None]:
    names = [r.job.name for r in runs]
    try:
        with guard.signals():
            trainer.fit(module, datamodule=data, ckpt_path=ckpt_path, weights_only=False)
    except BaseException as exc:
        stop = guard.stopped
        if stop is None:
            raise
        recorder.note_divergences(trainer, module)
        active = module.active.tolist()
        for k, r in enumerate(runs):
            if not active[k]:  # diverged before the interrupt: it stays diverged
                write_results(r.job.run_dir, RunResult.create(**_results(
                    r, k, module, trainer, recorder, names, None, None, None, 0.0, 0.0, False)))
                continue
            last = r.files.ckpt_dir / "last.ckpt"
            interrupted = r.files.ckpt_dir / "interrupted.ckpt"
            write_results(r.job.run_dir, RunResult.create(**{
                "status": stop.status, "reason": str(stop), **stop.info,
                "interrupted_ckpt": str(interrupted) if interrupted.is_file() else None,
                "best_val_acc": r.files.best_score, "global_steps": trainer.global_step,
                "wall_s": round(time.time() - started, 3), "seed": r.job.cfg.seed,
                "experiment": r.job.cfg.get("experiment_name"), "overrides": r.job.overrides,
                "run_dir": str(r.job.run_dir), "last_ckpt": str(last) if last.is_file() else None,
                "packed_with": [n for n in names if n != r.job.name],
                "resume": f"dlhw-train -m resume={r.job.run_dir.parent}",
            }))
        if isinstance(stop, RunInterrupted):
            raise stop from exc
        raise
    fit_s = time.time() - started
    val = module.epoch_metrics.get("val")
    train = module.epoch_metrics.get("train")
    # test each run at its best checkpoint (its last weights where nothing was monitored)
    for k, r in enumerate(runs):
        if r.files.best_path and Path(r.files.best_path).is_file():
            best = torch.load(r.files.best_path, map_location="cpu", weights_only=True)
            module.load_run_state_dict(k, best["state_dict"])
    trainer.test(module, datamodule=data, verbose=False)
    test = module.epoch_metrics.get("test")
    wall = round(time.time() - started, 3)
    active = module.active.tolist()
    metrics: list[float | None] = []
    for k, r in enumerate(runs):
        results = _results(r, k, module, trainer, recorder, names, val, train, test, wall, fit_s, active[k])
        write_results(r.job.run_dir, RunResult.create(**results))
        _final_scalars(r.files, results, trainer.global_step)
        if results["status"] == "completed":
            log.info("Test accuracy %.2f%% (best val %.2f%%)", 100 * (results["test_acc"] or 0),
                     100 * (results["best_val_acc"] or 0), extra=r.files.log_extra)
            metrics.append(metric_of(RunResult.create(**results), r.job.cfg))
        else:
            log.error("dlhw: %s", results["reason"], extra=r.files.log_extra)
            metrics.append(float("nan"))
    return metrics


def _results(r: Built, k: int, module, trainer, recorder, names, val, train, test, wall, fit_s, active) -> dict:
    files = r.files
    last = files.ckpt_dir / "last.ckpt"
    common = {
        "seed": r.job.cfg.seed, "experiment": r.job.cfg.get("experiment_name"),
        "overrides": r.job.overrides, "run_dir": str(r.job.run_dir),
        "packed_with": [n for n in names if n != r.job.name], "pack_size": len(names),
        "params": sum(t.numel() for t in r.classifier.net.parameters()),
        "wall_s": wall, "resumed_from": str(files.ckpt_dir / "last.ckpt") if r.ckpt else None,
        "threads": torch.get_num_threads(), **placement_fields(module.device, None, None),
    }
    if not active:
        step = int(module.first_bad_step[k])
        return {
            "status": "diverged", **common,
            "reason": f"run diverged: the training loss became nan/inf at step {step} (epoch "
                      f"{files.stopped_epoch}); its slice of the pack was frozen, the other runs "
                      "went on. Lower optimizer.lr or clip gradients (trainer.gradient_clip_val=1.0).",
            "diverged_step": step, "epoch": files.stopped_epoch,
            "epochs_completed": files.stopped_epoch, "best_val_acc": files.best_score,
            "last_ckpt": str(last) if last.is_file() else None,
        }
    epochs = len(recorder.epoch_times)
    return {
        "status": "completed", **common,
        "test_acc": float(test[1, k]) if test is not None else None,
        "test_loss": float(test[0, k]) if test is not None else None,
        "best_val_acc": files.best_score if files.best_score is not None else (float(val[1, k]) if val is not None else None),
        "final_val_acc": float(val[1, k]) if val is not None else None,
        "final_val_loss": float(val[0, k]) if val is not None else None,
        "final_train_loss": float(train[0, k]) if train is not None else None,
        "epochs": trainer.current_epoch, "global_steps": trainer.global_step,
        "epoch_s": sum(recorder.epoch_times) / epochs if epochs else None,
        "train_samples_per_s": sum(recorder.samples_per_s) / epochs / len(names) if epochs else None,
        "pack_train_samples_per_s": sum(recorder.samples_per_s) / epochs if epochs else None,
        "fit_s": round(fit_s, 3),
        "best_ckpt": files.best_path,
    }


def _final_scalars(files: RunFiles, results: dict, step: int) -> None:
    """test/* and the HPARAMS metric columns, as a run alone logs them at the end."""
    from torch.utils.tensorboard import SummaryWriter

    if files.params is None:
        return
    writer = SummaryWriter(str(files.run_dir))
    for key, tag in (("test_acc", "test/acc"), ("test_loss", "test/loss"),
                     ("best_val_acc", "hparams/best_val_acc"), ("final_val_acc", "hparams/final_val_acc"),
                     ("test_acc", "hparams/test_acc"), ("test_loss", "hparams/test_loss")):
        value = results.get(key)
        if value is not None and math.isfinite(value):
            writer.add_scalar(tag, float(value), step)
    writer.close()
