"""MNIST and Fashion-MNIST through torchvision's own data set classes (and Debian's copy)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import torch
import torchvision

from dlhw.data.datamodule import ClassificationData, Splits, check_root, default_data_root
from dlhw.data.idx import read_idx
from dlhw.errors import DataNotFoundError, UserError

_RAW_FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)


def md5sum(path: Path) -> str:
    """The md5 hex digest of a file."""
    h = hashlib.md5()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


class _MNISTLike(ClassificationData):
    """Shared loading of the MNIST family: torchvision reads, dlhw explains what is missing."""

    dataset_cls: type = torchvision.datasets.MNIST
    mean: tuple[float, ...] = (0.1307,)
    std: tuple[float, ...] = (0.3081,)
    alt_dirs: tuple[str, ...] = ()

    def __init__(self, root: str | None = None, download: bool = False, **kwargs):
        super().__init__(**kwargs)
        self.root = check_root(root or default_data_root())
        self.download = download

    @property
    def raw_dir(self) -> Path:
        return self.root / self.dataset_cls.__name__ / "raw"

    def _check_archives(self) -> bool:
        """True when all four .gz files are present; refuse any whose md5 is wrong."""
        present = True
        for filename, md5 in self.dataset_cls.resources:
            path = self.raw_dir / filename
            if not path.is_file():
                present = False
            elif md5sum(path) != md5:
                raise UserError(
                    f"{path} is corrupted or truncated (md5 {md5sum(path)}, expected {md5}). "
                    "Replace it with a good copy of the official file."
                )
        return present

    def _load_torchvision(self) -> tuple:
        have_archives = self._check_archives()
        # download=True on complete, verified archives only extracts them: no network needed.
        download = self.download or have_archives
        try:
            train = self.dataset_cls(str(self.root), train=True, download=download)
            test = self.dataset_cls(str(self.root), train=False, download=download)
        except (RuntimeError, OSError) as exc:
            for name in _RAW_FILES:  # present but damaged: name the file, not "missing"
                if (self.raw_dir / name).is_file():
                    read_idx(self.raw_dir / name)
            raise self._missing(exc) from exc
        return train.data, train.targets, test.data, test.targets, list(train.classes)

    def _load_alt(self) -> tuple | None:
        """Another copy of the four files in a system folder (e.g. Debian's), read as IDX."""
        for folder in map(Path, self.alt_dirs):
            paths = []
            for name in _RAW_FILES:
                found = [p for p in (folder / f"{name}.gz", folder / name) if p.is_file()]
                if not found:
                    break
                paths.append(found[0])
            if len(paths) == 4:
                arrays = [torch.from_numpy(read_idx(p).copy()) for p in paths]
                return (*arrays, list(self.dataset_cls.classes))
        return None

    def _missing(self, exc: Exception) -> DataNotFoundError:
        name = self.dataset_cls.__name__
        wanted = ", ".join(f"{f}.gz" for f in _RAW_FILES)
        return DataNotFoundError(
            f"{name} not found under data.root={self.root} (looked for {self.raw_dir}/ holding "
            f"{wanted}; {'download failed: ' + str(exc) if self.download else 'download is off'}). "
            f"Fix: point data.root (or the DLHW_DATA variable) at a folder that holds "
            f"{name}/raw/ with those files, set data.download=true on a machine with internet, "
            "or use data=digits, which needs no files."
        )

    def declared_shape(self) -> tuple[int, int, int]:
        return (1, 28, 28)

    def declared_classes(self) -> int:
        return len(self.dataset_cls.classes)

    def load(self) -> Splits:
        raw_complete = all((self.raw_dir / f).is_file() for f in _RAW_FILES)
        alt = None if raw_complete or self.download else self._load_alt()
        if alt is None:
            tx, ty, vx, vy, classes = self._load_torchvision()
        else:
            tx, ty, vx, vy, classes = alt
        return Splits(
            tx.unsqueeze(1).to(torch.uint8), ty.long(), vx.unsqueeze(1).to(torch.uint8), vy.long(),
            class_names=classes, mean=self.mean, std=self.std, scale=255.0,
        )


class MNISTData(_MNISTLike):
    """MNIST: 60,000 training and 10,000 test digits, 28x28 grey."""


class FashionMNISTData(_MNISTLike):
    """Fashion-MNIST; also found in Debian's dataset-fashion-mnist package when data.root lacks it."""

    dataset_cls = torchvision.datasets.FashionMNIST
    mean = (0.2860,)
    std = (0.3530,)
    alt_dirs = ("/usr/share/datasets/fashion-mnist",)
