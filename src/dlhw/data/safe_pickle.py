"""Unpickling that builds only numpy arrays and plain containers, never running code from the file."""

from __future__ import annotations

import io
import pickle
from pathlib import Path
from typing import Any

from dlhw.errors import UnsafeFileError, UserError

# Globals a pickle of numpy arrays legitimately names (Python 2 and 3, numpy 1 and 2).
_ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("copy_reg", "_reconstructor"),
    ("copyreg", "_reconstructor"),
    ("__builtin__", "object"),
    ("builtins", "object"),
    ("_codecs", "encode"),  # how protocol 2 stores bytes: turns a str into bytes, nothing more
}


class _RestrictedUnpickler(pickle.Unpickler):
    def __init__(self, file: io.BufferedReader, path: Path):
        super().__init__(file, encoding="latin1")
        self._path = path

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _ALLOWED:
            return super().find_class(module, name)
        raise UnsafeFileError(
            f"Refusing to load {self._path}: it asks to call {module}.{name}, and a data file may "
            "only hold numpy arrays and plain containers. Nothing from it was run. "
            "Use a file that stores arrays only (for example numpy.save or a pickle of arrays)."
        )


def load_pickle(path: str | Path) -> Any:
    """Load a pickle (Python 2 or 3) that holds only arrays, numbers, strings, lists, tuples, dicts."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"Data file {path} does not exist. Point the config at an existing file.")
    try:
        with open(path, "rb") as f:
            return _RestrictedUnpickler(f, path).load()
    except UnsafeFileError:
        raise
    except Exception as exc:  # truncated, not a pickle, wrong protocol...
        raise UserError(
            f"Cannot read {path} as a pickle of arrays ({type(exc).__name__}: {exc}). "
            "The file is corrupted, truncated or not a pickle: replace it with a good copy."
        ) from exc
