"""Shared fixtures: tiny data sets written in the real on-disk formats, and config composition."""

from __future__ import annotations

import os
import pickle
import signal
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("OMP_NUM_THREADS", "1")  # tiny models: one thread avoids oversubscription
# A suite started in the background of a non-interactive shell ignores SIGINT, and so would every
# dlhw-train it starts: the Ctrl+C tests need the default disposition in their children.
if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


def write_idx(path: Path, array: np.ndarray) -> None:
    """Write an uint8 array in the IDX format (magic 0x0000080N, big-endian dims)."""
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    path.write_bytes(header + array.astype(np.uint8).tobytes())


def _blobs(n: int, shape: tuple[int, ...], classes: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Images whose class is readable: class k brightens its own band of rows (learnable quickly)."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, classes, n)
    x = rng.integers(0, 60, (n, *shape)).astype(np.uint8)
    band = shape[-2] // classes
    for i, k in enumerate(y):
        x[i, ..., k * band : (k + 1) * band, :] = 255
    return x, y


def write_mnist(root: Path, folder: str = "MNIST", n_train: int = 300, n_test: int = 100) -> Path:
    """root/FOLDER/raw/ with the four unpacked IDX files, as torchvision's MNIST reads them."""
    raw = root / folder / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    for prefix, n, seed in (("train", n_train, 0), ("t10k", n_test, 1)):
        x, y = _blobs(n, (28, 28), 10, seed)
        write_idx(raw / f"{prefix}-images-idx3-ubyte", x)
        write_idx(raw / f"{prefix}-labels-idx1-ubyte", y)
    return root


def write_cifar10(root: Path, per_batch: int = 40, n_test: int = 60) -> Path:
    """root/cifar-10-batches-py/ with five training batches, a test batch and batches.meta."""
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True, exist_ok=True)
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    for k, name in enumerate(names):
        n = n_test if name == "test_batch" else per_batch
        x, y = _blobs(n, (3, 32, 32), 10, seed=k)
        with open(folder / name, "wb") as f:
            pickle.dump({b"data": x.reshape(n, -1), b"labels": y.tolist()}, f, protocol=2)
    labels = [c.encode() for c in ("airplane automobile bird cat deer dog frog horse ship truck").split()]
    with open(folder / "batches.meta", "wb") as f:
        pickle.dump({b"label_names": labels}, f)
    return root


def write_image_folder(root: Path, classes=("cat", "dog"), n_train: int = 12, n_test: int = 6) -> Path:
    """root/train/CLASS/*.png and root/test/CLASS/*.png of random 40x36 RGB images."""
    from PIL import Image

    rng = np.random.default_rng(0)
    for split, n in (("train", n_train), ("test", n_test)):
        for k, c in enumerate(classes):
            d = root / split / c
            d.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                img = rng.integers(0, 255, (36, 40, 3), dtype=np.uint8)
                img[..., k] = 255
                Image.fromarray(img).save(d / f"{i:03d}.png")
    return root


@pytest.fixture
def mnist_root(tmp_path: Path) -> Path:
    return write_mnist(tmp_path / "data")


@pytest.fixture
def cifar_root(tmp_path: Path) -> Path:
    return write_cifar10(tmp_path / "data")


@pytest.fixture
def image_folder_root(tmp_path: Path) -> Path:
    return write_image_folder(tmp_path / "folder")


def compose_config(overrides: list[str], output_dir: Path):
    """Compose conf/train.yaml as the CLI would, for an in-process run into ``output_dir``."""
    from dlhw.config.compose import compose

    return compose(overrides, output_dir=output_dir)


@pytest.fixture
def make_cfg(tmp_path: Path):
    """make_cfg(overrides, name="run") -> a composed config writing into tmp_path/name."""

    def make(overrides: list[str] = (), name: str = "run"):
        return compose_config(["threads=1", *overrides], tmp_path / name)

    return make
