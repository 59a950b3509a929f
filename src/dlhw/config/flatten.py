"""The settings of a run as TensorBoard's HPARAMS tab shows them: a flat, readable dict."""

from __future__ import annotations

from typing import Any

import yaml
from omegaconf import DictConfig, ListConfig, OmegaConf

# Sections that describe where and how a run executes, not what it computes.
SKIP_SECTIONS = {"hydra", "paths", "callbacks", "logger", "model_checkpoint", "task_name",
                 "ckpt_path", "threads", "optimized_metric", "experiment_name", "overrides", "report",
                 "resume", "compile", "nan_check_every"}
SKIP_KEYS = {"_partial_", "_recursive_", "_convert_", "root", "path", "archive", "num_workers",
             "eval_batch_size", "download", "default_root_dir", "cache_dir"}
TRAINER_KEYS = {"max_epochs", "max_steps", "precision", "gradient_clip_val", "gradient_clip_algorithm",
                "accumulate_grad_batches", "accelerator", "devices", "num_nodes", "strategy"}


def _value(v: Any) -> Any:
    if v is None:
        return "null"
    if isinstance(v, (bool, int, float, str)):
        return v
    return str(v)


def flatten_config(cfg: DictConfig | dict, swept: list[str] = ()) -> dict[str, Any]:
    """Dotted key -> value of the settings that define a run, the ``swept`` overrides first.

    A ``_target_`` becomes its class name under the section's key (``optimizer: Adam``); run
    plumbing (paths, callbacks, logger, hydra) and file locations are left out; lists become text.
    ``swept`` holds the overrides a sweep varies (``init=kaiming``, ``optimizer.lr=0.1``): they
    lead the dict with the value as typed, so that a group shows its option name.
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
    first = {}
    for item in swept:
        key, _, text = str(item).partition("=")
        key = key.lstrip("+~")
        first[key] = _value(_typed(text))
        flat.pop(key, None)
    return first | flat


def swept_keys(swept: list[str]) -> list[str]:
    """The keys of the ``swept`` overrides (``init=kaiming`` -> ``init``), as ``flatten_config``
    names them."""
    return [str(item).partition("=")[0].lstrip("+~") for item in swept]


def _typed(text: str) -> Any:
    """An override's value as YAML reads it (``true`` a bool, ``0.1`` a float), else the text."""
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError:
        return text
    return value if isinstance(value, (bool, int, float, str)) or value is None else text


def swept_overrides() -> list[str]:
    """This job's overrides of the keys its sweep varies, as typed on the command line (empty
    outside a Hydra multirun)."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    if not HydraConfig.initialized() or HydraConfig.get().mode != RunMode.MULTIRUN:
        return []
    hc = HydraConfig.get()
    fixed = set(hc.job.config.override_dirname.exclude_keys or [])
    return [o for o in hc.overrides.task if o.split("=", 1)[0] not in fixed]
