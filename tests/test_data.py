"""Data sources on tiny files in the real formats, the validation split and the tensor loader."""

from __future__ import annotations

import gzip
import io
import os
import pickle
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import write_idx, write_mnist

from dlhw.data import (
    CIFAR10Data,
    CIFAR10JpegData,
    DigitsData,
    FashionMNISTData,
    ImageFolderData,
    MNISTData,
    PickleData,
)
from dlhw.data.idx import read_idx
from dlhw.errors import DataNotFoundError, UnsafeFileError, UserError


def all_batches(loader):
    xs, ys = zip(*list(loader), strict=True)
    return torch.cat(xs), torch.cat(ys)


def test_digits_shapes_and_split() -> None:
    dm = DigitsData(val_fraction=0.1, batch_size=64)
    dm.setup()
    assert dm.in_shape == (1, 28, 28) and dm.num_classes == 10
    n_train, n_val = dm.train_idx.numel(), dm.val_idx.numel()
    assert n_train + n_val == 1797 - 359 and n_val == round(0.1 * (n_train + n_val))
    assert set(dm.train_idx.tolist()).isdisjoint(dm.val_idx.tolist())
    x, y = next(iter(dm.train_dataloader()))
    assert x.dtype == torch.float32 and x.shape == (64, 1, 28, 28)
    assert abs(x.mean().item()) < 0.3 and 0.7 < x.std().item() < 1.3  # normalised


def test_validation_split_is_seeded_by_split_seed_only() -> None:
    a, b = DigitsData(seed=0), DigitsData(seed=5)
    a.setup(), b.setup()
    assert torch.equal(a.val_idx, b.val_idx)
    c = DigitsData(split_seed=1)
    c.setup()
    assert not torch.equal(a.val_idx, c.val_idx)


def test_tensor_loader_visits_every_sample_once_in_seeded_order() -> None:
    dm = DigitsData(batch_size=100, seed=3)
    dm.setup()
    _, y1 = all_batches(dm.train_dataloader())
    assert y1.numel() == dm.num_train_samples
    assert torch.equal(torch.sort(y1).values, torch.sort(dm.splits.train_y[dm.train_idx]).values)
    again = DigitsData(batch_size=100, seed=3)
    again.setup()
    assert torch.equal(all_batches(again.train_dataloader())[1], y1)  # same seed, same order
    other = DigitsData(batch_size=100, seed=4)
    other.setup()
    assert not torch.equal(all_batches(other.train_dataloader())[1], y1)


def test_tensor_loader_shards_partition_the_data_under_ddp() -> None:
    from dlhw.data.loader import BatchTransform, TensorLoader

    x = torch.arange(103).float().view(-1, 1)
    y = torch.arange(103)
    seen = []
    for rank in range(2):
        for train in (True, False):
            loader = TensorLoader(x, y, 10, BatchTransform(), train, seed=1, rank=rank, world_size=2)
            got = torch.cat([b[1] for b in loader])
            assert len(got) == sum(len(b[1]) for b in loader)
            assert len(list(loader)) == len(loader)
            if train:
                assert got.numel() == 51  # equal steps on every rank
            else:
                seen.append(got)
    assert sorted(torch.cat(seen).tolist()) == list(range(103))  # eval shards cover all, once


def test_mnist_through_torchvision_reader(mnist_root: Path) -> None:
    dm = MNISTData(root=str(mnist_root), val_fraction=0.2)
    dm.setup()
    assert dm.in_shape == (1, 28, 28) and dm.num_classes == 10
    assert dm.class_names[0].startswith("0")
    assert dm.splits.test_x.shape == (100, 1, 28, 28) and dm.splits.test_x.dtype == torch.uint8
    assert dm.train_idx.numel() == 240


def test_missing_mnist_names_root_files_and_fixes(tmp_path: Path) -> None:
    with pytest.raises(DataNotFoundError) as err:
        MNISTData(root=str(tmp_path / "nowhere")).setup()
    msg = str(err.value)
    assert str(tmp_path / "nowhere") in msg and "train-images-idx3-ubyte.gz" in msg
    assert "data.root" in msg and "data=digits" in msg


def test_corrupted_mnist_archive_is_named(tmp_path: Path) -> None:
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    (raw / "train-images-idx3-ubyte.gz").write_bytes(b"not the real file")
    with pytest.raises(UserError, match="corrupted or truncated"):
        MNISTData(root=str(tmp_path)).setup()


def test_fashion_mnist_falls_back_to_a_system_copy(tmp_path: Path, monkeypatch) -> None:
    src = write_mnist(tmp_path / "tmp", folder="x") / "x" / "raw"
    debian = tmp_path / "debian"
    debian.mkdir()
    for f in src.iterdir():  # Debian ships gzip files with other headers: read as IDX
        with gzip.open(debian / f"{f.name}.gz", "wb") as out:
            out.write(f.read_bytes())
    monkeypatch.setattr(FashionMNISTData, "alt_dirs", (str(debian),))
    dm = FashionMNISTData(root=str(tmp_path / "empty"))
    dm.setup()
    assert dm.num_classes == 10 and dm.class_names[0] == "T-shirt/top"
    assert dm.splits.train_x.shape == (300, 1, 28, 28)


def test_idx_reader_refuses_truncated_files(tmp_path: Path) -> None:
    path = tmp_path / "x-idx3-ubyte"
    write_idx(path, np.zeros((4, 5, 5), np.uint8))
    assert read_idx(path).shape == (4, 5, 5)
    path.write_bytes(path.read_bytes()[:-3])
    with pytest.raises(UserError, match="truncated"):
        read_idx(path)


def test_cifar10_python_batches(cifar_root: Path) -> None:
    dm = CIFAR10Data(root=str(cifar_root))
    dm.setup()
    assert dm.in_shape == (3, 32, 32) and dm.class_names[0] == "airplane"
    assert dm.splits.train_x.shape == (200, 3, 32, 32) and dm.splits.test_x.shape[0] == 60


def test_cifar10_refuses_a_batch_that_runs_code(cifar_root: Path, tmp_path: Path) -> None:
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    with open(cifar_root / "cifar-10-batches-py" / "data_batch_1", "wb") as f:
        pickle.dump({b"data": Evil(), b"labels": []}, f)
    with pytest.raises(UnsafeFileError, match="posix.system|os.system|system"):
        CIFAR10Data(root=str(cifar_root)).setup()
    assert not marker.exists()


def test_image_folder_decodes_resizes_and_caches(image_folder_root: Path) -> None:
    dm = ImageFolderData(root=str(image_folder_root), size=16)
    dm.setup()
    assert dm.class_names == ["cat", "dog"] and dm.in_shape == (3, 16, 16)
    assert dm.splits.train_x.shape[0] == 24 and dm.splits.test_x.shape[0] == 12
    assert list(image_folder_root.glob(".dlhw-cache-train-16x16-*.pt"))
    cached = ImageFolderData(root=str(image_folder_root), size=16)
    cached.setup()
    assert torch.equal(cached.splits.train_x, dm.splits.train_x)


def test_image_folder_names_an_unreadable_file(image_folder_root: Path) -> None:
    bad = image_folder_root / "train" / "cat" / "broken.jpg"
    bad.write_bytes(b"\xff\xd8 not a jpeg")
    with pytest.raises(UserError, match="broken.jpg"):
        ImageFolderData(root=str(image_folder_root), size=16, cache=False).setup()


def test_cifar10_jpeg_unpacks_its_archive(image_folder_root: Path, tmp_path: Path) -> None:
    archive = tmp_path / "cifar10-jpeg.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(image_folder_root / "train", arcname="train")
        tar.add(image_folder_root / "test", arcname="test")
    dm = CIFAR10JpegData(archive=str(archive), root=str(tmp_path / "root"))
    dm.setup()
    assert dm.in_shape == (3, 32, 32) and dm.class_names == ["cat", "dog"]
    assert (tmp_path / "root" / "cifar10-jpeg" / "train" / "dog").is_dir()


def test_archive_members_escaping_the_target_are_refused(tmp_path: Path) -> None:
    archive = tmp_path / "evil.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        info = tarfile.TarInfo("../escaped.txt")
        data = b"gotcha"
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    with pytest.raises(UserError, match="outside"):
        CIFAR10JpegData(archive=str(archive), root=str(tmp_path / "root")).setup()
    assert not (tmp_path / "escaped.txt").exists()


def _write_binary_pickle(path: Path, n: int = 1000) -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(n, 20))
    y = (x[:, 0] + 0.5 * x[:, 1] > 0).astype(np.int64)
    with open(path, "wb") as f:
        pickle.dump((x, y), f, protocol=0)  # protocol 0, as the course's Python 2 file


def test_pickle_source_uses_the_fixed_500_250_250_split(tmp_path: Path) -> None:
    path = tmp_path / "data.pkl"
    _write_binary_pickle(path)
    dm = PickleData(path=str(path))
    dm.setup()
    assert dm.in_shape == (20,) and dm.num_classes == 2
    assert dm.num_train_samples == 500 and dm.splits.val_x.shape[0] == 250
    assert dm.splits.test_x.shape[0] == 250
    xv, _ = all_batches(dm.val_dataloader())
    assert torch.allclose(xv, dm.splits.val_x)


def test_pickle_that_would_run_code_is_refused(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    payload = f"cos\nsystem\n(S'touch {marker}'\ntR.".encode()
    path = tmp_path / "evil.pkl"
    path.write_bytes(payload)
    with pytest.raises(UnsafeFileError, match="Nothing from it was run"):
        PickleData(path=str(path)).setup()
    assert not marker.exists()
