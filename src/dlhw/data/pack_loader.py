"""Batches for K runs at once: each run's own data order and augmentation, stacked (packed runs).

Run k's training batches are exactly those its ``TensorLoader`` gives alone (its seed's
permutation, its augmentation generator); the pack stacks the K batches into (K, N, ...).
Validation and test data are the same for every run and are given once.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import pytorch_lightning as pl
import torch

from dlhw.data.loader import TensorLoader


class PackLoader:
    """Zips K training loaders of equal length into stacked batches."""

    def __init__(self, loaders: Sequence[TensorLoader]):
        self.loaders = list(loaders)

    def __len__(self) -> int:
        return len(self.loaders[0])

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        first = self.loaders[0]
        if first.transform.augment is not None or first.world_size > 1:
            # augmentation draws from each run's own generator: one transform per run
            for batches in zip(*self.loaders, strict=True):
                xs, ys = zip(*batches, strict=True)
                yield torch.stack(xs), torch.stack(ys)
            return
        # no augmentation: the K runs' batches are one gather and one transform
        epoch = int(first.epoch_fn())
        order = torch.stack([loader._indices(epoch) for loader in self.loaders])  # (K, n)
        k = order.shape[0]
        for start in range(0, order.shape[1], first.batch_size):
            flat = order[:, start : start + first.batch_size].reshape(-1)
            x = first.transform(first.x.index_select(0, flat), None, True)
            y = first.y.index_select(0, flat)
            yield x.view(k, -1, *x.shape[1:]), y.view(k, -1)


class PackData(pl.LightningDataModule):
    """A pack's view of one data module: per-run training loaders, shared validation and test."""

    def __init__(self, datamodule, seeds: Sequence[int]):
        super().__init__()
        self.dm = datamodule
        self.seeds = list(seeds)

    def setup(self, stage: str | None = None) -> None:
        self.dm.trainer = self.trainer
        self.dm.setup(stage)

    def train_dataloader(self) -> PackLoader:
        dm = self.dm
        x, y = dm._tensors("train")
        return PackLoader([TensorLoader(x, y, dm.batch_size, dm.transform, True, seed, dm._epoch)
                           for seed in self.seeds])

    def val_dataloader(self):
        return self.dm.val_dataloader()

    def test_dataloader(self):
        return self.dm.test_dataloader()
