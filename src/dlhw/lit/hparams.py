"""TensorBoard's HPARAMS tab: the meaningful config values of a run and its final metrics."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
from omegaconf import DictConfig, ListConfig, OmegaConf

from dlhw.lit.tb import run_dir, tb_writer

log = logging.getLogger("dlhw")

# Sections that describe where and how a run executes, not what it computes.
SKIP_SECTIONS = {"hydra", "paths", "callbacks", "logger", "model_checkpoint", "task_name",
                 "ckpt_path", "threads", "optimized_metric", "experiment_name", "overrides"}
SKIP_KEYS = {"_partial_", "_recursive_", "_convert_", "root", "path", "archive", "num_workers",
             "eval_batch_size", "download", "default_root_dir", "cache_dir"}
TRAINER_KEYS = {"max_epochs", "max_steps", "precision", "gradient_clip_val", "gradient_clip_algorithm",
                "accumulate_grad_batches", "accelerator", "devices", "num_nodes", "strategy"}
METRICS = ("hparams/best_val_acc", "hparams/final_val_acc", "hparams/test_acc", "hparams/test_loss")


def _value(v: Any) -> Any:
    if v is None:
        return "null"
    if isinstance(v, (bool, int, float, str)):
        return v
    return str(v)


def flatten_config(cfg: DictConfig | dict) -> dict[str, Any]:
    """Dotted key -> value of the settings that define a run.

    A ``_target_`` becomes its class name under the section's key (``optimizer: Adam``); run
    plumbing (paths, callbacks, logger, hydra) and file locations are left out; lists become text.
    """
    if isinstance(cfg, DictConfig):
        cfg = OmegaConf.to_container(cfg, resolve=True, throw_on_missing=False)
    flat: dict[str, Any] = {}

    def walk(node: Any, prefix: str) -> None:
        if isinstance(node, dict):
            for k, v in node.items():
                k = str(k)
                if k in SKIP_KEYS or (not prefix and k in SKIP_SECTIONS):
                    continue
                if prefix == "trainer" and k not in TRAINER_KEYS:
                    continue
                if k == "_target_":
                    flat[prefix or "target"] = str(v).rsplit(".", 1)[-1]
                else:
                    walk(v, f"{prefix}.{k}" if prefix else k)
        elif isinstance(node, (list, ListConfig)):
            flat[prefix] = str(list(node))
        else:
            flat[prefix] = _value(node)

    walk(cfg, "")
    return flat


def load_run_config(directory: Path) -> DictConfig | None:
    """The resolved config.yaml of a run directory (else .hydra/config.yaml), or None."""
    for name in ("config.yaml", ".hydra/config.yaml"):
        path = Path(directory) / name
        if path.is_file():
            return OmegaConf.load(path)
    return None


class HParams(pl.Callback):
    """Writes the run's flattened config to the HPARAMS tab with real metric columns.

    At fit start the hyperparameters and the metric names (``hparams/best_val_acc``,
    ``hparams/final_val_acc``, ``hparams/test_acc``, ``hparams/test_loss``) are declared; the values
    are logged when fitting ends (validation) and when testing ends (test), so a sweep can be
    sorted by them in TensorBoard. A run that crashes still shows its hyperparameters.

    Args:
        config_file: the run's config (default: config.yaml in the run directory).
    """

    def __init__(self, config_file: str | None = None):
        self.config_file = config_file
        self.params: dict[str, Any] = {}

    def on_fit_start(self, trainer, pl_module) -> None:
        writer = tb_writer(trainer)
        if writer is None:
            return
        cfg = OmegaConf.load(self.config_file) if self.config_file else load_run_config(run_dir(trainer))
        if cfg is None:
            log.warning("dlhw: no config.yaml in %s; the HPARAMS tab is skipped", run_dir(trainer))
            return
        from torch.utils.tensorboard.summary import hparams

        self.params = flatten_config(cfg)
        exp, ssi, sei = hparams(self.params, {m: 0.0 for m in METRICS})
        file_writer = writer._get_file_writer()
        for summary in (exp, ssi, sei):
            file_writer.add_summary(summary)

    def on_fit_end(self, trainer, pl_module) -> None:
        writer = tb_writer(trainer)
        if writer is None or not self.params:
            return
        metrics = trainer.callback_metrics
        ckpt = trainer.checkpoint_callback
        best = getattr(ckpt, "best_model_score", None) if ckpt is not None and ckpt.monitor else None
        if best is None:
            best = metrics.get("val/acc")
        if best is not None:
            writer.add_scalar("hparams/best_val_acc", float(best), trainer.global_step)
        if "val/acc" in metrics:
            writer.add_scalar("hparams/final_val_acc", float(metrics["val/acc"]), trainer.global_step)
        writer.flush()

    def on_test_end(self, trainer, pl_module) -> None:
        writer = tb_writer(trainer)
        if writer is None or not self.params:
            return
        for key in ("acc", "loss"):
            value = trainer.callback_metrics.get(f"test/{key}")
            if value is not None:
                writer.add_scalar(f"hparams/test_{key}", float(value), trainer.global_step)
        writer.flush()
