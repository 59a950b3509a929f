"""CIFAR-10 from the official python batches, read without executing anything from them."""

from __future__ import annotations

import numpy as np
import torch
from torchvision.datasets import CIFAR10
from torchvision.datasets.utils import download_and_extract_archive

from dlhw.data.datamodule import ClassificationData, Splits, check_root, default_data_root
from dlhw.data.safe_pickle import load_pickle
from dlhw.errors import DataNotFoundError, UserError

CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2470, 0.2435, 0.2616)


def read_cifar_batch(path) -> tuple[np.ndarray, np.ndarray]:
    """One python batch -> uint8 images (N, 3, 32, 32) and int64 labels, with shape checks."""
    batch = load_pickle(path)
    if not isinstance(batch, dict):
        raise UserError(f"{path} is not a CIFAR-10 batch (a dict with data and labels): replace it.")
    data = batch.get(b"data", batch.get("data"))
    labels = batch.get(b"labels", batch.get("labels", batch.get(b"fine_labels")))
    if not isinstance(data, np.ndarray) or data.ndim != 2 or data.shape[1] != 3072 or labels is None:
        raise UserError(
            f"{path} does not hold CIFAR-10 data (expected uint8 data of shape (N, 3072) and "
            "labels): the file is damaged or of another data set. Replace it."
        )
    labels = np.asarray(labels, dtype=np.int64)
    if len(labels) != len(data):
        raise UserError(f"{path}: {len(data)} images but {len(labels)} labels; replace the file.")
    return data.astype(np.uint8).reshape(-1, 3, 32, 32), labels


class CIFAR10Data(ClassificationData):
    """CIFAR-10: root/cifar-10-batches-py/{data_batch_1..5, test_batch, batches.meta}."""

    def __init__(self, root: str | None = None, download: bool = False, **kwargs):
        super().__init__(**kwargs)
        self.root = check_root(root or default_data_root())
        self.download = download

    def declared_shape(self) -> tuple[int, int, int]:
        return (3, 32, 32)

    def declared_classes(self) -> int:
        return 10

    def load(self) -> Splits:
        folder = self.root / CIFAR10.base_folder
        names = [n for n, _ in CIFAR10.train_list] + [n for n, _ in CIFAR10.test_list]
        if not all((folder / n).is_file() for n in names) and self.download:
            try:
                download_and_extract_archive(
                    CIFAR10.url, str(self.root), filename=CIFAR10.filename, md5=CIFAR10.tgz_md5
                )
            except Exception as exc:  # no network, wrong md5, ...
                raise self._missing(folder, names, f"download failed: {exc}") from exc
        missing = [n for n in names if not (folder / n).is_file()]
        if missing:
            raise self._missing(folder, names, "download is off" if not self.download else "")
        train = [read_cifar_batch(folder / n) for n, _ in CIFAR10.train_list]
        test_x, test_y = read_cifar_batch(folder / CIFAR10.test_list[0][0])
        classes = list(CIFAR10_CLASSES)
        meta = folder / CIFAR10.meta["filename"]
        if meta.is_file():
            meta_dict = load_pickle(meta)
            names_in_meta = (
                meta_dict.get(b"label_names", meta_dict.get("label_names"))
                if isinstance(meta_dict, dict) else None
            )
            if names_in_meta:
                classes = [n.decode() if isinstance(n, bytes) else str(n) for n in names_in_meta]
        return Splits(
            torch.from_numpy(np.concatenate([x for x, _ in train])),
            torch.from_numpy(np.concatenate([y for _, y in train])),
            torch.from_numpy(test_x),
            torch.from_numpy(test_y),
            class_names=classes, mean=CIFAR10_MEAN, std=CIFAR10_STD, scale=255.0,
        )

    def _missing(self, folder, names, why: str) -> DataNotFoundError:
        return DataNotFoundError(
            f"CIFAR-10 not found under data.root={self.root} (looked for {folder}/ holding "
            f"{', '.join(names)}; {why}). Fix: point data.root (or DLHW_DATA) at a folder that "
            "holds cifar-10-batches-py/, set data.download=true on a machine with internet, "
            "use data=cifar10_jpeg with the JPEG archive, or use data=digits, which needs no files."
        )


CIFAR10_CLASSES = (
    "airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck",
)
