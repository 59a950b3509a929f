"""Folder-per-class image sets (root/train/CLASS/*.jpg, root/test/CLASS/*), decoded once to tensors.

Images are resized to ``size`` and stacked as uint8, then cached beside the data (when the folder
is writable) so the next run starts in a second. ``cifar10_jpeg`` is this source set up for the
CIFAR-10 JPEG archive, which it unpacks into the data root itself.
"""

from __future__ import annotations

import hashlib
import os
import tarfile
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from dlhw.data.cifar10 import CIFAR10_MEAN, CIFAR10_STD
from dlhw.data.datamodule import ClassificationData, Splits, check_root, default_data_root
from dlhw.errors import DataNotFoundError, UserError

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm"}


def safe_extract(archive: Path, target: Path) -> None:
    """Unpack a tar archive, refusing members that would land outside ``target`` or are links."""
    target = target.resolve()
    try:
        with tarfile.open(archive) as tar:
            members = tar.getmembers()
            for m in members:
                dest = (target / m.name).resolve()
                if m.issym() or m.islnk() or m.isdev() or not dest.is_relative_to(target):
                    raise UserError(
                        f"Refusing to unpack {archive}: member {m.name!r} is a link or would be "
                        f"written outside {target}. Nothing was extracted from it; use a clean archive."
                    )
            tar.extractall(target, members=members)
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise UserError(
            f"Cannot unpack {archive} ({exc}): the archive is damaged or truncated. Replace it."
        ) from exc


def list_images(split_dir: Path) -> tuple[list[tuple[Path, int]], list[str]]:
    """(path, class index) for every image under split_dir/CLASS/, classes sorted by name."""
    classes = sorted(d.name for d in split_dir.iterdir() if d.is_dir())
    items = [
        (p, i)
        for i, c in enumerate(classes)
        for p in sorted((split_dir / c).iterdir())
        if p.suffix.lower() in IMAGE_SUFFIXES
    ]
    return items, classes


def decode_images(items: list[tuple[Path, int]], size: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
    """Decode and resize every image to RGB uint8 (N, 3, H, W); an unreadable file is named."""
    out = np.empty((len(items), size[0], size[1], 3), dtype=np.uint8)
    for k, (path, _) in enumerate(items):
        try:
            with Image.open(path) as img:
                img = img.convert("RGB")
                if img.size != (size[1], size[0]):
                    img = img.resize((size[1], size[0]), Image.BILINEAR)
                out[k] = np.asarray(img)
        except (UnidentifiedImageError, OSError, SyntaxError) as exc:
            raise UserError(
                f"Cannot read image {path} ({exc}). Remove or replace that file."
            ) from exc
    labels = torch.tensor([c for _, c in items], dtype=torch.long)
    return torch.from_numpy(out).permute(0, 3, 1, 2).contiguous(), labels


class ImageFolderData(ClassificationData):
    """Any root/train/CLASS and root/test/CLASS image tree, resized to ``size``.

    mean/std: per-channel normalisation; null computes them from the training images.
    train_dir/test_dir: the split folder names (e.g. test_dir=validation for cats vs dogs).
    """

    def __init__(
        self,
        root: str | None = None,
        size: int | list[int] = 32,
        mean: list[float] | None = None,
        std: list[float] | None = None,
        cache: bool = True,
        train_dir: str = "train",
        test_dir: str = "test",
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.root = check_root(root or default_data_root())
        self.train_dir, self.test_dir = train_dir, test_dir
        self.size = (size, size) if isinstance(size, int) else tuple(size)
        self.norm_mean = tuple(mean) if mean else None
        self.norm_std = tuple(std) if std else None
        self.cache = cache

    def image_root(self) -> Path:
        return self.root

    def _split(self, folder: Path, name: str) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
        split_dir = folder / name
        if not split_dir.is_dir():
            raise DataNotFoundError(
                f"No {name}/ folder under {folder}. An image folder data set needs "
                f"{folder}/{self.train_dir}/CLASS/ and {folder}/{self.test_dir}/CLASS/ with images inside: "
                "point data.root at such a folder (or set data.train_dir / data.test_dir)."
            )
        items, classes = list_images(split_dir)
        if not items:
            raise DataNotFoundError(f"No images found under {split_dir}/CLASS/: check data.root.")
        key = hashlib.md5(
            "|".join(f"{p.relative_to(folder)}:{p.stat().st_size}" for p, _ in items).encode()
        ).hexdigest()[:12]
        cache = folder / f".dlhw-cache-{name}-{self.size[0]}x{self.size[1]}-{key}.pt"
        if self.cache and cache.is_file():
            blob = torch.load(cache, weights_only=True)
            return blob["x"], blob["y"], classes
        x, y = decode_images(items, self.size)
        if self.cache and os.access(folder, os.W_OK):
            tmp = cache.with_suffix(f".tmp{os.getpid()}")
            torch.save({"x": x, "y": y}, tmp)
            os.replace(tmp, cache)
        return x, y, classes

    def declared_shape(self) -> tuple[int, int, int]:
        return (3, *self.size)

    def load(self) -> Splits:
        folder = self.image_root()
        tx, ty, classes = self._split(folder, self.train_dir)
        vx, vy, test_classes = self._split(folder, self.test_dir)
        if test_classes != classes:
            raise UserError(
                f"{folder}/{self.train_dir} and {folder}/{self.test_dir} have different class folders "
                f"({classes} vs {test_classes}): make them the same."
            )
        mean, std = self.norm_mean, self.norm_std
        if mean is None or std is None:
            xf = tx.float().div_(255)
            mean = tuple(xf.mean(dim=(0, 2, 3)).tolist())
            std = tuple(xf.std(dim=(0, 2, 3)).tolist())
        return Splits(tx, ty, vx, vy, class_names=classes, mean=mean, std=std, scale=255.0)


class CIFAR10JpegData(ImageFolderData):
    """CIFAR-10 as JPEGs: unpacks ``archive`` into root/cifar10-jpeg on first use."""

    def __init__(self, archive: str | None = None, folder: str = "cifar10-jpeg", **kwargs):
        kwargs.setdefault("mean", list(CIFAR10_MEAN))
        kwargs.setdefault("std", list(CIFAR10_STD))
        super().__init__(**kwargs)
        self.archive = check_root(archive) if archive else self.root / "cifar10-jpeg.tar.gz"
        self.folder = folder

    def declared_classes(self) -> int:
        return 10

    def image_root(self) -> Path:
        target = self.root / self.folder
        if (target / "train").is_dir() and (target / "test").is_dir():
            return target
        if not self.archive.is_file():
            raise DataNotFoundError(
                f"CIFAR-10 JPEG not found: neither {target}/train and test nor the archive "
                f"{self.archive} exist. Fix: set data.archive to the path of cifar10-jpeg.tar.gz "
                "(for example DATA/cifar10-jpeg.tar.gz, docs/catalogue.md#data) and data.root to a writable folder "
                "to unpack it into, or use data=cifar10 or data=digits."
            )
        target.mkdir(parents=True, exist_ok=True)
        safe_extract(self.archive, target)
        inner = [d for d in target.iterdir() if d.is_dir() and (d / "train").is_dir()]
        if not (target / "train").is_dir() and len(inner) == 1:
            return inner[0]
        return target
