"""Tensor-resident batching: the data set lives on the training device; batches are index slices.

One seeded randperm per epoch shuffles, a slice of it makes a batch, and the batch transform
(normalise, augment) runs on the whole batch on the device. No worker processes, no per-sample
Python, no host-to-device copy per step.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import torch

from dlhw.data.augment import Augment


class BatchTransform:
    """uint8 (or float) batch -> float batch: scale to [0, 1], augment (train only), normalise."""

    def __init__(
        self,
        scale: float = 1.0,
        mean: tuple[float, ...] | None = None,
        std: tuple[float, ...] | None = None,
        augment: Augment | None = None,
        binarize: bool = False,
    ):
        self.scale = scale
        self.mean = mean
        self.std = std
        self.augment = augment if augment is not None and augment.active else None
        self.binarize = binarize
        self._stats: dict[torch.device, tuple[torch.Tensor, torch.Tensor]] = {}

    def _mean_std(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if x.device not in self._stats:
            shape = (1, -1) + (1,) * (x.dim() - 2)
            mean = torch.tensor(self.mean, device=x.device).view(shape)
            std = torch.tensor(self.std, device=x.device).view(shape)
            self._stats[x.device] = (mean, std)
        return self._stats[x.device]

    def __call__(self, x: torch.Tensor, generator: torch.Generator | None = None, train: bool = False):
        x = x.float()
        if self.scale != 1.0:
            x = x * (1.0 / self.scale)
        if self.binarize:
            return (x > 0.5).float()
        if train and self.augment is not None:
            x = self.augment(x, generator)
        if self.mean is not None:
            mean, std = self._mean_std(x)
            x = (x - mean) / std
        return x


class TensorLoader:
    """Iterates (inputs, targets) batches over tensors that already sit on the target device.

    ``epoch_fn`` gives the current epoch, so that the order of epoch e depends only on
    (seed, e): runs are reproducible and a resumed run sees the batches it would have seen.
    Under DDP each rank takes its own stride of the permutation (equal sizes for training).
    """

    def __init__(
        self,
        x: torch.Tensor,
        y: torch.Tensor,
        batch_size: int,
        transform: BatchTransform,
        train: bool = False,
        seed: int = 0,
        epoch_fn: Callable[[], int] | None = None,
        rank: int = 0,
        world_size: int = 1,
    ):
        self.x, self.y = x, y
        self.batch_size = batch_size
        self.transform = transform
        self.train = train
        self.seed = seed
        self.epoch_fn = epoch_fn or (lambda: 0)
        self.rank, self.world_size = rank, world_size

    def _indices(self, epoch: int) -> torch.Tensor:
        n = self.x.shape[0]
        if self.train:
            g = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
            idx = torch.randperm(n, generator=g)
        else:
            idx = torch.arange(n)
        if self.world_size > 1:
            idx = idx[self.rank :: self.world_size]
            if self.train:  # every rank must take the same number of steps
                idx = idx[: n // self.world_size]
        return idx.to(self.x.device)

    def __len__(self) -> int:
        n = self.x.shape[0]
        if self.world_size > 1:
            n = n // self.world_size if self.train else -(-(n - self.rank) // self.world_size)
        return -(-n // self.batch_size)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        epoch = int(self.epoch_fn())
        idx = self._indices(epoch)
        gen = None
        if self.train and self.transform.augment is not None:
            gen = torch.Generator(device=self.x.device)
            gen.manual_seed(self.seed * 1_000_003 + epoch + 7919)
        for start in range(0, idx.numel(), self.batch_size):
            batch = idx[start : start + self.batch_size]
            yield self.transform(self.x[batch], gen, self.train), self.y[batch]


class TransformedTensorDataset(torch.utils.data.Dataset):
    """The classic per-sample Dataset over the same tensors (the ``loader=torch`` path)."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor, transform: BatchTransform, train: bool):
        self.x, self.y, self.transform, self.train = x, y, transform, train

    def __len__(self) -> int:
        return self.x.shape[0]

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.transform(self.x[i : i + 1], None, self.train)[0], self.y[i]
