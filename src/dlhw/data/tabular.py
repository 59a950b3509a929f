"""Tabular (X, y) pickles such as the course's binary set, loaded without executing the file."""

from __future__ import annotations

import numpy as np
import torch

from dlhw.data.datamodule import ClassificationData, Splits, check_root
from dlhw.data.safe_pickle import load_pickle
from dlhw.errors import DataNotFoundError, UserError


class PickleData(ClassificationData):
    """A pickle of a tuple (X, y): rows [0, n_train) train, the next n_val validate, the rest test.

    ``standardize`` rescales features by the training rows' mean and std.
    """

    def __init__(
        self,
        path: str = "data/data.pkl",
        n_train: int = 500,
        n_val: int = 250,
        standardize: bool = False,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.path = check_root(path)
        self.n_train, self.n_val = n_train, n_val
        self.standardize = standardize

    def declared_shape(self) -> tuple[None]:
        return (None,)  # feature vectors; their width is known once the file is read

    def load(self) -> Splits:
        if not self.path.is_file():
            raise DataNotFoundError(
                f"data.path={self.path} does not exist. Point data.path at the pickle, for example "
                "DATA/eecs-binary/data.pkl (docs/catalogue.md#data)."
            )
        obj = load_pickle(self.path)
        if not (isinstance(obj, (tuple, list)) and len(obj) == 2):
            raise UserError(f"{self.path} must hold a tuple (X, y); it holds {type(obj).__name__}.")
        x, y = (np.asarray(a) for a in obj)
        if x.ndim != 2 or y.ndim != 1 or len(x) != len(y) or not np.issubdtype(x.dtype, np.number):
            raise UserError(
                f"{self.path}: expected numeric X of shape (N, D) and y of shape (N,), got "
                f"{x.shape} and {y.shape}."
            )
        a, b = self.n_train, self.n_train + self.n_val
        if b >= len(x):
            raise UserError(
                f"data.n_train + data.n_val = {b} leaves no test rows out of {len(x)}; lower them."
            )
        x = torch.from_numpy(x.astype(np.float32))
        classes = np.unique(y)
        y = torch.from_numpy(np.searchsorted(classes, y)).long()
        if self.standardize:
            mu, sd = x[:a].mean(0), x[:a].std(0).clamp_min(1e-8)
            x = (x - mu) / sd
        return Splits(
            x[:a], y[:a], x[b:], y[b:], class_names=[str(c) for c in classes.tolist()],
            val_x=x[a:b], val_y=y[a:b],
        )
