"""``dlhw-train``: compose the config with Hydra, train, test the best checkpoint, write results.json."""

from __future__ import annotations

import logging
import os
import sys
import time
from pathlib import Path

import hydra
from omegaconf import DictConfig, OmegaConf

from dlhw.errors import UserError
from dlhw.results import write_results

log = logging.getLogger("dlhw")
CONFIG_PATH = "pkg://dlhw.conf"

if not OmegaConf.has_resolver("dlhw_pid"):
    OmegaConf.register_new_resolver("dlhw_pid", lambda: str(os.getpid()))


def run_dir_of(cfg: DictConfig) -> Path:
    return Path(cfg.paths.output_dir)


def overrides_of(cfg: DictConfig) -> list[str]:
    """The command-line overrides of this job (empty outside a Hydra app)."""
    from hydra.core.hydra_config import HydraConfig

    if HydraConfig.initialized():
        return list(HydraConfig.get().overrides.task)
    return list(cfg.get("overrides") or [])


def quiet_libraries() -> None:
    """Silence library chatter that says nothing about this run (tips, deprecations of internals)."""
    import warnings

    warnings.filterwarnings("ignore", message=".*LeafSpec.*")
    warnings.filterwarnings("ignore", message=".*smaller than the logging interval.*")
    warnings.filterwarnings("ignore", message=".*does not have many workers.*")
    for name in ("pytorch_lightning.utilities.rank_zero", "lightning.pytorch.utilities.rank_zero"):
        logging.getLogger(name).addFilter(lambda record: "Tip:" not in record.getMessage())


def run(cfg: DictConfig) -> float | None:
    """Train and test one configuration; return the metric a sweeper optimises."""
    import pytorch_lightning as pl
    import torch

    from dlhw.config_tree import print_config
    from dlhw.pipeline import available_cores, build

    quiet_libraries()
    run_dir = run_dir_of(cfg)
    run_dir.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(cfg.get("threads") or available_cores())
    pl.seed_everything(cfg.seed, workers=True, verbose=False)
    print_config(cfg, run_dir / "config.yaml")

    started = time.time()
    p = build(cfg)
    log.info(p.datamodule.describe())
    p.trainer.fit(p.module, datamodule=p.datamodule, ckpt_path=cfg.get("ckpt_path"))
    fit_metrics = {k: v.item() for k, v in p.trainer.callback_metrics.items()}
    ckpt_cb = p.trainer.checkpoint_callback
    best = ckpt_cb.best_model_path if ckpt_cb is not None and ckpt_cb.monitor else ""
    test = p.trainer.test(p.module, datamodule=p.datamodule, ckpt_path=best or None, verbose=False)
    test = test[0] if test else {}

    timer = next((c for c in p.callbacks if type(c).__name__ == "EpochTimer"), None)
    best_score = ckpt_cb.best_model_score if best else None
    results = {
        "status": "completed",
        "test_acc": test.get("test/acc"),
        "test_loss": test.get("test/loss"),
        "best_val_acc": best_score.item() if best_score is not None else fit_metrics.get("val/acc"),
        "final_val_acc": fit_metrics.get("val/acc"),
        "final_val_loss": fit_metrics.get("val/loss"),
        "final_train_loss": fit_metrics.get("train/loss"),
        "epochs": p.trainer.current_epoch,
        "global_steps": p.trainer.global_step,
        "wall_s": round(time.time() - started, 3),
        "epoch_s": _mean(timer.epoch_times) if timer else None,
        "train_samples_per_s": _mean(timer.samples_per_s) if timer else None,
        "params": sum(t.numel() for t in p.net.parameters()),
        "seed": cfg.seed,
        "experiment": cfg.get("experiment_name"),
        "overrides": overrides_of(cfg),
        "best_ckpt": best or None,
        "run_dir": str(run_dir),
    }
    if p.trainer.global_rank == 0:
        write_results(run_dir, results)
        _print_summary(results, run_dir)
    metric = cfg.get("optimized_metric", "val/acc")
    return results["best_val_acc"] if metric == "val/acc" else fit_metrics.get(metric)


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def _print_summary(results: dict, run_dir: Path) -> None:
    acc = results["test_acc"]
    print(
        f"\nTest accuracy: {acc * 100:.2f}%" if acc is not None else "\nTest accuracy: n/a",
        f"(test loss {results['test_loss']:.4f}, {results['epochs']} epochs, {results['wall_s']:.1f} s)"
        if results["test_loss"] is not None else "",
    )
    print(f"Run directory: {run_dir}")
    print(f"TensorBoard:   tensorboard --logdir {run_dir / 'tensorboard'}\n")


def find_user_error(exc: BaseException) -> BaseException | None:
    """The user error behind an exception (Hydra wraps errors raised while instantiating)."""
    from hydra.errors import InstantiationException

    seen = exc
    while seen is not None:
        if isinstance(seen, UserError):
            return seen
        seen = seen.__cause__ or seen.__context__
    return exc if isinstance(exc, InstantiationException) else None


def run_safely(cfg: DictConfig) -> float | None:
    """Run; a user error becomes one message, status "failed" in results.json and exit status 2."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    try:
        return run(cfg)
    except Exception as exc:
        user_error = find_user_error(exc)
        write_results(
            run_dir_of(cfg),
            {"status": "failed", "error": f"{type(exc).__name__}: {exc}", "seed": cfg.get("seed"),
             "overrides": overrides_of(cfg), "run_dir": str(run_dir_of(cfg))},
        )
        if user_error is None or os.environ.get("HYDRA_FULL_ERROR") == "1":
            raise
        multirun = HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN
        log.error("dlhw: %s", user_error)
        if multirun:  # one bad job must not stop the sweep
            return float("nan")
        print(f"dlhw: error: {user_error}", file=sys.stderr)
        raise SystemExit(2) from None


@hydra.main(version_base="1.3", config_path=CONFIG_PATH, config_name="train")
def _hydra_main(cfg: DictConfig) -> float | None:
    return run_safely(cfg)


def main() -> None:
    """Console entry point of ``dlhw-train``."""
    _hydra_main()


if __name__ == "__main__":
    main()
