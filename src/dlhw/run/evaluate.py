"""``dlhw-eval RUN_DIR [key=value ...]``: rebuild a saved run's model, test its checkpoint, save eval.json.

RUN_DIR is a run's directory or a job directory of a sweep (``SWEEP/0_init=default``: an argument
that is an existing directory is the run directory, whatever it contains). The config is the
run's own (.hydra/config.yaml, else config.yaml); overrides after the run directory change it (``data=fashion_mnist``, ``data.root=...``, ``trainer=cpu``); ``ckpt_path=FILE``
picks another checkpoint (default: the run's best, else last). ``dlhw-eval ckpt_path=FILE`` alone
finds the run directory from the checkpoint (FILE's folder's parent).
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import yaml
from omegaconf import DictConfig, OmegaConf, open_dict

from dlhw.errors import UserError
from dlhw.results import read_results

EVAL_FILE = "eval.json"
GROUPS = ("data", "model", "init", "loss", "optimizer", "scheduler", "trainer", "logger", "callbacks")


def parse_args(argv: list[str]) -> tuple[Path, list[str], str | None]:
    """(run directory, config overrides, checkpoint) from the command line."""
    run_dir, overrides, ckpt = None, [], None
    for arg in argv:
        if run_dir is None and Path(arg).is_dir():  # a sweep's job directory is named KEY=VALUE,...
            run_dir = Path(arg)
        elif arg.startswith("ckpt_path="):
            ckpt = arg.split("=", 1)[1] or None
        elif "=" in arg and not _looks_like_path(arg):
            overrides.append(arg)
        elif run_dir is None:
            run_dir = Path(arg)
        else:
            raise UserError(f"dlhw-eval: unexpected argument {arg!r}; give one run directory, then "
                            "key=value overrides.")
    if run_dir is None:
        if ckpt is None:
            raise UserError("usage: dlhw-eval RUN_DIR [key=value ...] [ckpt_path=FILE]")
        run_dir = Path(ckpt).resolve().parent.parent
    if not run_dir.is_dir():
        raise UserError(f"dlhw-eval: run directory {run_dir} does not exist.")
    return run_dir, overrides, ckpt


def _looks_like_path(arg: str) -> bool:
    """``outputs/x/0_init=default`` or ``0_init=default``: a path (that does not exist), not a
    ``key=value`` override. A key holds no path separator, except a config group's
    (``hydra/launcher=...``), and does not start like a sweep's job directory (``0_``)."""
    key = arg.split("=", 1)[0].lstrip("+~")
    if re.match(r"\d+(_|$)", key):
        return True
    return ("/" in key or os.sep in key) and key.split("/")[0] not in (*GROUPS, "hydra")


def load_config(run_dir: Path, overrides: list[str]) -> DictConfig:
    """The run's saved config with ``overrides`` applied (group options re-composed by Hydra)."""
    saved = run_dir / ".hydra" / "config.yaml"
    if not saved.is_file():
        saved = run_dir / "config.yaml"
    if not saved.is_file():
        raise UserError(f"dlhw-eval: {run_dir} holds neither .hydra/config.yaml nor config.yaml; "
                        "pass the directory of a dlhw-train run.")
    cfg = OmegaConf.load(saved)
    with open_dict(cfg):
        cfg.paths.output_dir = str(run_dir)
        cfg.experiment_name = None
    group_choices = [o for o in overrides if o.split("=", 1)[0].lstrip("+") in GROUPS]
    if group_choices:  # a new data set (or trainer...) comes from its own config file
        fresh = _compose(run_dir, overrides)
        for o in group_choices:
            group = o.split("=", 1)[0].lstrip("+")
            with open_dict(cfg):
                cfg[group] = fresh[group]
    for o in overrides:
        if o in group_choices:
            continue
        key, value = o.split("=", 1)
        try:
            OmegaConf.update(cfg, key.lstrip("+"), yaml.safe_load(value), force_add=True)
        except Exception as exc:
            raise UserError(f"dlhw-eval: cannot apply override {o!r}: {exc}") from None
    return cfg


def _compose(run_dir: Path, overrides: list[str]) -> DictConfig:
    from dlhw.config.compose import compose

    try:
        original = yaml.safe_load((run_dir / ".hydra" / "overrides.yaml").read_text()) or []
    except OSError:
        original = []
    new_keys = {o.split("=", 1)[0] for o in overrides}
    kept = [o for o in original if o.split("=", 1)[0] not in new_keys]
    try:
        cfg = compose(kept + overrides)
    except Exception as exc:
        raise UserError(f"dlhw-eval: the overrides {overrides} do not compose: {exc}") from None
    with open_dict(cfg):
        cfg.paths.output_dir = str(run_dir)
    return cfg


def find_checkpoint(run_dir: Path, ckpt: str | None) -> Path:
    """The checkpoint to test: ``ckpt``, else the run's best, else checkpoints/last.ckpt."""
    if ckpt:
        path = Path(ckpt)
        if not path.is_file():
            raise UserError(f"dlhw-eval: ckpt_path={ckpt} does not exist.")
        return path
    result = read_results(run_dir)
    candidates = []
    if result is not None and result.best_ckpt:
        best = Path(result.best_ckpt)
        candidates += [best, run_dir / "checkpoints" / best.name]
    candidates += sorted((run_dir / "checkpoints").glob("best*.ckpt"))
    candidates.append(run_dir / "checkpoints" / "last.ckpt")
    for path in candidates:
        if path.is_file():
            return path
    raise UserError(f"dlhw-eval: no checkpoint in {run_dir / 'checkpoints'}; pass ckpt_path=FILE.")


def evaluate(run_dir: str | Path, overrides: list[str] = (), ckpt_path: str | None = None) -> dict:
    """Test a saved run's checkpoint; return the metrics and write them to RUN_DIR/eval.json."""
    import pytorch_lightning as pl
    import torch

    from dlhw.run.build import build
    from dlhw.sweep.threads import configure_threads

    run_dir = Path(run_dir)
    cfg = load_config(run_dir, list(overrides))
    ckpt = find_checkpoint(run_dir, ckpt_path)
    configure_threads(cfg.get("threads"))
    pl.seed_everything(cfg.get("seed", 0), verbose=False)
    with open_dict(cfg):
        cfg.callbacks = None  # no checkpoints, dashboards or progress bar while testing
        cfg.logger = None
        cfg.trainer.enable_model_summary = False
        cfg.trainer.enable_progress_bar = False
    p = build(cfg)
    try:
        state = torch.load(ckpt, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise UserError(f"dlhw-eval: cannot read checkpoint {ckpt}: {exc}") from None
    weights = state.get("state_dict", state) if isinstance(state, dict) else None
    if not isinstance(weights, dict):
        raise UserError(f"dlhw-eval: {ckpt} holds no state_dict; pass a Lightning checkpoint.")
    try:
        p.module.load_state_dict(weights, strict=True)
    except RuntimeError as exc:
        detail = " ".join(str(exc).split())[:600].rstrip(".")
        raise UserError(
            f"dlhw-eval: checkpoint {ckpt} does not match the model built from {run_dir}'s config "
            f"({cfg.model.get('_target_')}): {detail}. Use the run directory the checkpoint came "
            "from, or override model.* to match it."
        ) from None
    tested = p.trainer.test(p.module, datamodule=p.datamodule, verbose=False)
    metrics = tested[0] if tested else {}
    out = {
        "test_acc": metrics.get("test/acc"),
        "test_loss": metrics.get("test/loss"),
        "checkpoint": str(ckpt),
        "data": cfg.data.get("_target_"),
        "test_samples": int(p.datamodule.splits.test_x.shape[0]) if getattr(p.datamodule, "splits", None)
        else None,
        "overrides": list(overrides),
        "run_dir": str(run_dir),
    }
    (run_dir / EVAL_FILE).write_text(json.dumps(out, indent=2))
    return out


def load_trained(run_dir: str | Path, ckpt_path: str | None = None):
    """(network, data module) of the run in ``run_dir``: the network on the CPU in eval mode, the
    data module set up (its in_shape, classes and loaders are the run's)."""
    import torch
    from hydra.utils import instantiate

    from dlhw.run.build import build_model

    run_dir = Path(run_dir)
    cfg = load_config(run_dir, [])
    ckpt = find_checkpoint(run_dir, ckpt_path)
    datamodule = instantiate(cfg.data)
    datamodule.setup("fit")
    with torch.random.fork_rng(devices=[]):  # the initialisation is overwritten: keep the RNG
        _, net = build_model(cfg, datamodule)
    state = torch.load(ckpt, map_location="cpu", weights_only=True).get("state_dict", {})
    weights = {k.removeprefix("net."): v for k, v in state.items() if k.startswith("net.")}
    try:
        net.load_state_dict(weights)
    except RuntimeError as exc:
        raise UserError(f"checkpoint {ckpt} does not match the model of {run_dir}: "
                        f"{' '.join(str(exc).split())[:400]}") from None
    return net.eval(), datamodule
