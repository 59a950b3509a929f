"""The trained network of a saved run, for use in Python: rebuilt from the run's own config (as
dlhw-eval does), its weights from the checkpoint that was tested (best, else last), in eval mode."""

from __future__ import annotations

from pathlib import Path

from dlhw.errors import UserError


def load_trained(run_dir: str | Path, ckpt_path: str | None = None):
    """(network, data module) of the run in ``run_dir``: the network on the CPU in eval mode, the
    data module set up (its in_shape, classes and loaders are the run's)."""
    import torch
    from hydra.utils import instantiate

    from dlhw.run.build import build_model
    from dlhw.run.evaluate import find_checkpoint, load_config

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
