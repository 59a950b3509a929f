"""Helpers of the speed benchmarks (scripts/bench_*.py): synthetic data in the real on-disk formats,
in-process dlhw runs timed per epoch, the hand-written reference loop, interleaved medians.

The benchmarks compare dlhw with what a careful user would write by hand, on the same data,
model, optimizer and batch size; these helpers keep both sides built from one composed config.
"""

from __future__ import annotations

import pickle
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytorch_lightning as pl
import torch

CIFAR_CLASSES = "airplane automobile bird cat deer dog frog horse ship truck".split()


# ----------------------------------------------------------------------------- synthetic data
def _images(n: int, shape: tuple[int, ...], seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Random uint8 images whose class brightens a band of rows (so a model can learn something)."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 10, n)
    x = rng.integers(0, 200, (n, *shape), dtype=np.uint8)
    band = shape[-2] // 10
    for k in range(10):
        x[y == k, ..., k * band : (k + 1) * band, :] = 255
    return x, y


def write_cifar10(root: Path, n_train: int = 50_000, n_test: int = 10_000) -> Path:
    """root/cifar-10-batches-py/ in the official format (5 pickled training batches + test batch)."""
    folder = Path(root) / "cifar-10-batches-py"
    folder.mkdir(parents=True, exist_ok=True)
    per = -(-n_train // 5)
    for k in range(6):
        n = n_test if k == 5 else min(per, n_train - k * per)
        x, y = _images(n, (3, 32, 32), seed=k)
        name = "test_batch" if k == 5 else f"data_batch_{k + 1}"
        with open(folder / name, "wb") as f:
            pickle.dump({"data": x.reshape(n, -1), "labels": y.tolist()}, f, protocol=4)
    with open(folder / "batches.meta", "wb") as f:  # str keys, as Python 2's files read with latin1
        pickle.dump({"label_names": CIFAR_CLASSES}, f)
    return Path(root)


def _write_idx(path: Path, array: np.ndarray) -> None:
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    path.write_bytes(header + array.astype(np.uint8).tobytes())


def write_mnist(root: Path, n_train: int = 60_000, n_test: int = 10_000) -> Path:
    """root/MNIST/raw/ with the four unpacked IDX files, as torchvision's MNIST reads them."""
    raw = Path(root) / "MNIST" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    for prefix, n, seed in (("train", n_train, 0), ("t10k", n_test, 1)):
        x, y = _images(n, (28, 28), seed)
        _write_idx(raw / f"{prefix}-images-idx3-ubyte", x)
        _write_idx(raw / f"{prefix}-labels-idx1-ubyte", y)
    return Path(root)


# ----------------------------------------------------------------------------- configs and runs
def compose(overrides: list[str], output_dir: Path):
    """conf/train.yaml composed as the CLI would, writing into ``output_dir`` (in-process runs)."""
    from dlhw.config.compose import compose as compose_config

    return compose_config(overrides, output_dir=output_dir)


def dlhw_epoch_times(cfg, wall: bool = False) -> list[float]:
    """Train with dlhw's own pipeline (trainer, callbacks, loggers of ``cfg``); seconds per epoch.

    By default EpochTimer's time/epoch_s: training plus validation, up to EpochTimer's own
    epoch-end hook. ``wall=True``: from one epoch's start to the next (the last epoch ends when
    training ends, before the train-end hooks), i.e. every callback's epoch-end work and the
    checkpoint included, which is what the dashboards cost is measured with.
    """
    from dlhw.lit.callbacks import EpochTimer
    from dlhw.run.build import build

    pl.seed_everything(cfg.seed, verbose=False)
    p = build(cfg)
    clock = EpochWallClock()
    if wall:
        p.trainer.callbacks.insert(0, clock)
    p.trainer.fit(p.module, datamodule=p.datamodule)
    if wall:
        return clock.epoch_times
    timer = next(c for c in p.callbacks if isinstance(c, EpochTimer))
    return list(timer.epoch_times)


class EpochWallClock(pl.Callback):
    """Reads the clock at every epoch start and when training ends (first of the train-end hooks)."""

    def __init__(self):
        self.marks: list[float] = []

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        _sync(pl_module.device)
        self.marks.append(time.perf_counter())

    def on_train_end(self, trainer, pl_module) -> None:
        _sync(pl_module.device)
        self.marks.append(time.perf_counter())

    @property
    def epoch_times(self) -> list[float]:
        return [b - a for a, b in zip(self.marks, self.marks[1:], strict=False)]


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def plain_epoch_times(
    cfg, epochs: int, device: str = "cpu", batches: Callable | None = None,
    val_batches: Callable | None = None,
) -> list[float]:
    """The hand-written loop over the same data, model, init, optimizer and batch size; s/epoch.

    The network gets the config's speed options (channels_last, compile) as dlhw applies them.
    Data in memory as uint8 tensors on ``device``, one randperm per epoch, index batches,
    ``(x / 255 - mean) / std``, forward, loss, backward, step; then a no-grad validation pass.
    No logging, no metrics, no checkpoints. ``batches(epoch)`` and ``val_batches()`` replace the
    data source (the loader benchmark feeds torchvision DataLoaders through the same loop).
    """
    from hydra.utils import instantiate

    from dlhw.run.build import apply_speed_options, build_model

    torch.manual_seed(cfg.seed)
    dm = instantiate(cfg.data)
    dm.setup("fit")
    loss_fn, net = build_model(cfg, dm)
    apply_speed_options(net, cfg.get("channels_last", False), cfg.get("compile", False))
    dev = torch.device(device)
    net.to(dev)
    opt = instantiate(cfg.optimizer)(params=net.parameters())
    s = dm.splits
    train_x, train_y = s.train_x[dm.train_idx].to(dev), s.train_y[dm.train_idx].to(dev)
    val_x, val_y = s.train_x[dm.val_idx].to(dev), s.train_y[dm.val_idx].to(dev)
    shape = (1, -1) + (1,) * (train_x.dim() - 2)
    mean = torch.tensor(s.mean, device=dev).view(shape) if s.mean is not None else None
    std = torch.tensor(s.std, device=dev).view(shape) if s.std is not None else None

    def prepare(x: torch.Tensor) -> torch.Tensor:
        x = x.float() / s.scale
        if dm.binarize:
            return (x > 0.5).float()
        return (x - mean) / std if mean is not None else x

    def own_batches(epoch: int):
        perm = torch.randperm(train_x.shape[0], device=dev)
        for i in range(0, len(perm), dm.batch_size):
            idx = perm[i : i + dm.batch_size]
            yield prepare(train_x[idx]), train_y[idx]

    def own_val_batches():
        for i in range(0, val_x.shape[0], dm.eval_batch_size):
            yield prepare(val_x[i : i + dm.eval_batch_size]), val_y[i : i + dm.eval_batch_size]

    times = []
    for epoch in range(epochs):
        _sync(dev)
        start = time.perf_counter()
        net.train()
        for x, y in (batches or own_batches)(epoch):
            x, y = x.to(dev, non_blocking=True), y.to(dev, non_blocking=True)
            opt.zero_grad(set_to_none=True)
            loss_fn(net(x), y).backward()
            opt.step()
        net.eval()
        with torch.inference_mode():
            for x, y in (val_batches or own_val_batches)():
                x, y = x.to(dev, non_blocking=True), y.to(dev, non_blocking=True)
                loss_fn(net(x), y)
        _sync(dev)
        times.append(time.perf_counter() - start)
    return times


# ----------------------------------------------------------------------------- statistics
def steady(times: list[float]) -> float:
    """Median epoch time without the first epoch (warm-up) when there are several."""
    return statistics.median(times[1:] if len(times) > 1 else times)


def interleaved(sides: dict[str, Callable[[], float]], repeats: int) -> dict[str, list[float]]:
    """Each side's result per round; the order alternates every round so drift hits both alike."""
    out: dict[str, list[float]] = {k: [] for k in sides}
    names = list(sides)
    for r in range(repeats):
        for name in names if r % 2 == 0 else names[::-1]:
            out[name].append(sides[name]())
    return out


def ratio_line(label: str, a: str, a_times: list[float], b: str, b_times: list[float],
               target: str, unit: str = "s/epoch") -> str:
    """``LABEL: A 1.234 s/epoch | B 1.111 s/epoch | ratio A/B 1.111 (median of N interleaved ...)``."""
    ma, mb = statistics.median(a_times), statistics.median(b_times)
    return (
        f"{label}: {a} {ma:.3f} {unit} | {b} {mb:.3f} {unit} | ratio {a}/{b} {ma / mb:.3f} "
        f"(median of {len(a_times)} interleaved repeats; target {target}) "
        f"[{a}: {', '.join(f'{t:.3f}' for t in a_times)}; {b}: {', '.join(f'{t:.3f}' for t in b_times)}]"
    )


def machine() -> str:
    """One line about where the numbers come from."""
    import os
    import platform

    from dlhw.sweep.threads import available_cores

    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    load = f", load average {os.getloadavg()[0]:.1f}" if hasattr(os, "getloadavg") else ""
    return (
        f"machine: {platform.processor() or platform.machine()}, {available_cores()} cores, {gpu}, "
        f"torch {torch.__version__}, {torch.get_num_threads()} threads{load}"
    )
