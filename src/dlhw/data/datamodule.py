"""The one LightningDataModule: a source loads tensors, this class splits, places and batches them."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path

import pytorch_lightning as pl
import torch

from dlhw.data.augment import Augment
from dlhw.data.loader import BatchTransform, TensorLoader, TransformedTensorDataset
from dlhw.errors import UserError
from dlhw.shapes import Gives

LOADERS = ("tensor", "torch")
NORMALIZE = ("standard", "mean", "none")


def default_data_root() -> str:
    """Environment variable DLHW_DATA if set, else ./data."""
    return os.environ.get("DLHW_DATA", "./data")


@dataclass
class Splits:
    """What a source returns: train and test tensors plus how to normalise them.

    Images are uint8 (N, C, H, W) with ``scale`` 255; other inputs are stored in their compact
    native type with ``scale`` 1 and no mean/std.
    """

    train_x: torch.Tensor
    train_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    class_names: list[str]
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    scale: float = 1.0
    val_x: torch.Tensor | None = None  # a fixed validation set (else val_fraction is carved out)
    val_y: torch.Tensor | None = None


class ClassificationData(pl.LightningDataModule):
    """Base datamodule: subclasses implement ``load()``; the rest (val split, loaders) lives here.

    Args:
        batch_size: training batch size.
        eval_batch_size: batch size for validation and test (no gradients, so larger).
        val_fraction: share of the training set held out for validation (seeded by split_seed).
        loader: "tensor" (data resident on the device, batched by slicing) or "torch" (DataLoader).
        num_workers: DataLoader workers for loader=torch.
        augment: crop_padding / hflip / rotation / scale for training batches.
        seed: shuffling and augmentation seed (the run's seed).
        split_seed: seed of the validation split, fixed so that the runs of a study compare.
        max_train_samples: keep a seeded random subset of this many training samples (quick runs),
            null for all.
        binarize: threshold inputs at 0.5 after scaling to [0, 1] (rnn_rows_mnist).
        as_sequence: drop the channel axis of one-channel images: (1, H, W) -> H steps of W.
        normalize: "standard" ((x - mean) / std per channel), "mean" (subtract the mean only and
            keep the 0-255 pixel scale, as Caffe's CIFAR-10 examples do) or "none".
    """

    def __init__(
        self,
        batch_size: int = 128,
        eval_batch_size: int = 1000,
        val_fraction: float = 0.1,
        loader: str = "tensor",
        num_workers: int = 0,
        augment: dict | None = None,
        seed: int = 0,
        split_seed: int = 0,
        max_train_samples: int | None = None,
        binarize: bool = False,
        as_sequence: bool = False,
        normalize: str = "standard",
    ):
        super().__init__()
        if loader not in LOADERS:
            raise UserError(f"data.loader={loader!r} is not one of {LOADERS}.")
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size
        self.val_fraction = val_fraction
        self.loader = loader
        self.num_workers = num_workers
        self.augment = Augment(**(augment or {}))
        self.seed = seed
        self.split_seed = split_seed
        self.max_train_samples = max_train_samples
        self.binarize = binarize
        self.as_sequence = as_sequence
        if normalize not in NORMALIZE:
            raise UserError(f"data.normalize={normalize!r} is not one of {NORMALIZE}.")
        self.normalize = normalize
        self.splits: Splits | None = None
        self._on_device: dict[tuple[str, str], tuple[torch.Tensor, torch.Tensor]] = {}

    per_step_targets = False  # one target per time step (sequence to sequence) instead of per sample

    # ----------------------------------------------------------------- sources override
    def load(self) -> Splits:
        """Read the data set into tensors (subclasses)."""
        raise NotImplementedError  # abstract

    def declared_shape(self) -> tuple[int | None, ...] | None:
        """The shape of one input the source gives, known before loading (None: unknown)."""
        return None

    def declared_classes(self) -> int | None:
        """The number of classes, when known before loading."""
        return None

    # ----------------------------------------------------------------- the shape contract
    def gives(self) -> Gives | None:
        """What this data set gives a model: measured once loaded, else as declared (None: unknown)."""
        if self.splits is not None:
            return Gives(self.in_shape, self.num_classes, self.per_step_targets)
        shape = self.declared_shape()
        if shape is None:
            return None
        if self.as_sequence and len(shape) == 3 and shape[0] == 1:
            shape = shape[1:]
        return Gives(tuple(shape), self.declared_classes(), self.per_step_targets)

    # ----------------------------------------------------------------- set-up
    def setup(self, stage: str | None = None) -> None:
        if self.splits is not None:
            return
        splits = self.load()
        if self.as_sequence:
            if splits.train_x.dim() != 4 or splits.train_x.shape[1] != 1:
                raise UserError(
                    f"data.as_sequence=true needs one-channel images; got inputs of shape "
                    f"{tuple(splits.train_x.shape[1:])}. Use a grey-scale data set (mnist, digits)."
                )
            splits.train_x, splits.test_x = splits.train_x[:, 0], splits.test_x[:, 0]
            splits.mean = splits.std = None
        if self.max_train_samples is not None and self.max_train_samples < splits.train_x.shape[0]:
            # A seeded random subset: sources may be sorted by class (image folders), so the first
            # N samples could hold only a few classes.
            g = torch.Generator().manual_seed(self.split_seed + 1)
            keep = torch.randperm(splits.train_x.shape[0], generator=g)[: self.max_train_samples].sort().values
            splits.train_x, splits.train_y = splits.train_x[keep], splits.train_y[keep]
        n = splits.train_x.shape[0]
        n_val = 0 if splits.val_x is not None else int(round(n * self.val_fraction))
        if not 0 <= n_val < n:
            raise UserError(
                f"data.val_fraction={self.val_fraction} leaves no training data out of {n} samples; "
                "use a value in [0, 1)."
            )
        perm = torch.randperm(n, generator=torch.Generator().manual_seed(self.split_seed))
        self.train_idx, self.val_idx = perm[n_val:].sort().values, perm[:n_val].sort().values
        if splits.val_x is not None:
            self.val_idx = torch.arange(splits.val_x.shape[0])
        if self.normalize == "none" or splits.mean is None:
            splits.mean = splits.std = None
        elif self.normalize == "mean":  # (x / scale - mean) * scale: pixel units, mean removed
            splits.std = tuple(1.0 / splits.scale for _ in splits.mean)
        self.splits = splits
        self.transform = BatchTransform(
            splits.scale, splits.mean, splits.std, self.augment, binarize=self.binarize
        )

    @property
    def in_shape(self) -> tuple[int, ...]:
        self.setup()
        return tuple(self.splits.train_x.shape[1:])

    @property
    def num_classes(self) -> int:
        self.setup()
        return len(self.splits.class_names)

    @property
    def class_names(self) -> list[str]:
        self.setup()
        return list(self.splits.class_names)

    @property
    def num_train_samples(self) -> int:
        self.setup()
        return int(self.train_idx.numel())

    # ----------------------------------------------------------------- loaders
    def _device(self) -> torch.device:
        trainer = getattr(self, "trainer", None)
        return trainer.strategy.root_device if trainer is not None else torch.device("cpu")

    def _tensors(self, part: str) -> tuple[torch.Tensor, torch.Tensor]:
        """The (x, y) of train / val / test, on the loader's device (cached, moved once)."""
        self.setup()
        device = self._device() if self.loader == "tensor" else torch.device("cpu")
        key = (part, str(device))
        if key not in self._on_device:
            s = self.splits
            if part == "test":
                x, y = s.test_x, s.test_y
            elif part == "val" and s.val_x is not None:
                x, y = s.val_x, s.val_y
            else:
                idx = self.train_idx if part == "train" else self.val_idx
                x, y = s.train_x[idx], s.train_y[idx]
            self._on_device[key] = (x.to(device), y.to(device))
        return self._on_device[key]

    def _epoch(self) -> int:
        trainer = getattr(self, "trainer", None)
        return trainer.current_epoch if trainer is not None else 0

    def _make_loader(self, part: str):
        x, y = self._tensors(part)
        train = part == "train"
        batch_size = self.batch_size if train else self.eval_batch_size
        if self.loader == "torch":
            return torch.utils.data.DataLoader(
                TransformedTensorDataset(x, y, self.transform, train),
                batch_size=batch_size,
                shuffle=train,
                generator=torch.Generator().manual_seed(self.seed) if train else None,
                num_workers=self.num_workers,
                persistent_workers=self.num_workers > 0,
                # fork explicitly: inside a joblib (loky) job the default start method is loky's
                # own, which cannot start DataLoader workers
                multiprocessing_context="fork" if self.num_workers > 0 and sys.platform == "linux" else None,
            )
        trainer = getattr(self, "trainer", None)
        rank, world = (trainer.global_rank, trainer.world_size) if trainer is not None else (0, 1)
        return TensorLoader(
            x, y, batch_size, self.transform, train, self.seed, self._epoch, rank, world
        )

    def train_dataloader(self):
        return self._make_loader("train")

    def val_dataloader(self):
        if self.val_idx.numel() == 0:
            return []
        return self._make_loader("val")

    def test_dataloader(self):
        return self._make_loader("test")

    def describe(self) -> str:
        """One line: sizes, shape and classes (printed at the start of a run)."""
        self.setup()
        return (
            f"{type(self).__name__}: {self.train_idx.numel()} train / {self.val_idx.numel()} val / "
            f"{self.splits.test_x.shape[0]} test, input {self.in_shape}, {self.num_classes} classes, "
            f"loader={self.loader}"
        )


def check_root(root: str | os.PathLike) -> Path:
    """Expand ~ and environment variables in a data root."""
    return Path(os.path.expandvars(os.path.expanduser(str(root))))
