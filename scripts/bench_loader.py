#!/usr/bin/env python
"""Benchmark 2, data loading: a LeNet CIFAR-10 epoch with crop+flip, tensor loader vs the usual pipeline.

dlhw side: ``dlhw-train data=cifar10 data.augment.crop_padding=4 data.augment.hflip=true`` (the
default tensor loader: uint8 data on the device, batched augmentation). Usual side: the same
model, optimizer and split trained by a plain loop fed by torchvision's CIFAR10 Dataset with
RandomCrop(32, padding=4) + RandomHorizontalFlip + ToTensor + Normalize and a DataLoader with the
fastest num_workers found on this machine (probed first). Also timed: the compute floor (the
same plain loop on in-memory batches without augmentation: no loader can make an epoch faster
than that) and one epoch of each loader alone, without training. Data: synthetic CIFAR-10
batches in the official format.

    python scripts/bench_loader.py [--repeats 3] [--epochs 2] [--threads 2] [--device cpu|cuda] [--tiny] [KEY=VALUE ...]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as dlhw-train does, before torch loads


def torchvision_loaders(root: Path, dm, workers: int, device: str):
    """(train, val) DataLoaders over torchvision's CIFAR10 with the classic per-sample transforms."""
    import torch
    from torchvision import datasets, transforms

    class LocalCIFAR10(datasets.CIFAR10):
        """torchvision's reader and __getitem__; the md5 check is skipped (synthetic files)."""

        def _check_integrity(self) -> bool:
            return True

        def _load_meta(self) -> None:
            self.classes = [str(i) for i in range(10)]
            self.class_to_idx = {c: i for i, c in enumerate(self.classes)}

    norm = transforms.Normalize(dm.splits.mean, dm.splits.std)
    aug = transforms.Compose([transforms.RandomCrop(32, padding=4), transforms.RandomHorizontalFlip(),
                              transforms.ToTensor(), norm])
    plain = transforms.Compose([transforms.ToTensor(), norm])
    train = torch.utils.data.Subset(LocalCIFAR10(str(root), train=True, transform=aug), dm.train_idx.tolist())
    val = torch.utils.data.Subset(LocalCIFAR10(str(root), train=True, transform=plain), dm.val_idx.tolist())
    common = dict(num_workers=workers, persistent_workers=workers > 0, pin_memory=device == "cuda")
    return (
        torch.utils.data.DataLoader(train, batch_size=dm.batch_size, shuffle=True, **common),
        torch.utils.data.DataLoader(val, batch_size=dm.eval_batch_size, **common),
    )


def best_workers(root: Path, dm, device: str, probe_batches: int) -> tuple[int, dict[int, float]]:
    """The num_workers (0 .. cores) whose DataLoader delivers ``probe_batches`` batches fastest."""
    from dlhw.sweep.threads import available_cores

    rates = {}
    for w in range(0, available_cores() + 1):
        train, _ = torchvision_loaders(root, dm, w, device)
        it = iter(train)
        next(it)  # workers started, first batch in
        start = time.perf_counter()
        for _ in range(probe_batches):
            next(it)
        rates[w] = (time.perf_counter() - start) / probe_batches
        del it, train
    return min(rates, key=rates.get), rates


def loader_epoch(loader) -> float:
    start = time.perf_counter()
    for _ in loader:
        pass
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--epochs", type=int, default=2, help="per run; the first (warm-up) is dropped")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    p.add_argument("--workers", type=int, default=None, help="skip the probe, use this num_workers")
    p.add_argument("--tiny", action="store_true", help="a smoke run on a few hundred samples")
    p.add_argument("overrides", nargs="*", help="extra config overrides for every side, e.g. channels_last=true")
    a = p.parse_args(argv)
    import torch
    from hydra.utils import instantiate

    from dlhw.bench import harness as bench

    if a.device == "cuda" and not torch.cuda.is_available():
        print("no CUDA device: skipped")
        return 0
    torch.set_num_threads(a.threads)
    sizes = (600, 200) if a.tiny else (50_000, 10_000)
    if a.tiny:
        a.repeats, a.epochs = 1, 2
    print(bench.machine())
    work = Path(tempfile.mkdtemp(prefix="dlhw-bench-loader-"))
    root = bench.write_cifar10(work / "data", *sizes)
    overrides = ["data=cifar10", f"data.root={root}", "model=lenet", "data.augment.crop_padding=4",
                 "data.augment.hflip=true", f"trainer.max_epochs={a.epochs}", f"threads={a.threads}"]
    if a.device == "cuda":
        overrides.append("trainer=gpu")
    overrides += a.overrides
    cfg = bench.compose(overrides, work / "runs" / "probe")
    dm = instantiate(cfg.data)
    dm.setup("fit")
    workers = a.workers
    if workers is None:
        workers, rates = best_workers(root, dm, a.device, 3 if a.tiny else 40)
        print("torchvision DataLoader probe, s/batch by num_workers:",
              ", ".join(f"{w}: {r:.4f}" for w, r in rates.items()), f"-> num_workers={workers}")
    tv_train, tv_val = torchvision_loaders(root, dm, workers, a.device)
    counter = iter(range(10**6))

    def dlhw_side() -> float:
        run_cfg = bench.compose(overrides, work / "runs" / f"dlhw-{next(counter)}")
        return bench.steady(bench.dlhw_epoch_times(run_cfg))

    def torchvision_side() -> float:
        times = bench.plain_epoch_times(
            cfg, a.epochs, a.device, batches=lambda epoch: tv_train, val_batches=lambda: tv_val
        )
        return bench.steady(times)

    def floor_side() -> float:  # the same loop on in-memory batches without augmentation
        return bench.steady(bench.plain_epoch_times(cfg, a.epochs, a.device))

    t = bench.interleaved({"dlhw": dlhw_side, "torchvision": torchvision_side, "floor": floor_side},
                          a.repeats)
    target = ">= 5x faster, ratio <= 0.20" if a.device == "cuda" else ">= 2x faster, ratio <= 0.50"
    epoch_line = bench.ratio_line(f"lenet_cifar10_crop_flip ({a.device}, training epoch)",
                                  "dlhw", t["dlhw"], "torchvision", t["torchvision"], target)
    print(epoch_line, flush=True)
    # What no loader can beat: the model's own work. torchvision/floor is the largest speed-up
    # any data pipeline could show against torchvision's on this machine.
    floor_line = bench.ratio_line("compute floor (plain loop, in-memory batches, no augmentation)",
                                  "floor", t["floor"], "torchvision", t["torchvision"], "informative")
    print(floor_line, flush=True)

    # The loaders alone: one pass over the training set with augmentation, no model.
    dm.trainer = None
    tensor_loader = dm.train_dataloader()
    if a.device == "cuda":
        tensor_loader.x, tensor_loader.y = tensor_loader.x.cuda(), tensor_loader.y.cuda()
    alone = bench.interleaved(
        {"tensor": lambda: loader_epoch(tensor_loader), "torchvision": lambda: loader_epoch(tv_train)},
        a.repeats,
    )
    alone_line = bench.ratio_line("loader alone (one augmented pass)", "tensor", alone["tensor"],
                                  "torchvision", alone["torchvision"], "informative")
    print(alone_line)
    tv = statistics.median(t["torchvision"])
    ratio = statistics.median(t["dlhw"]) / tv
    print("\n== summary ==", bench.machine(), f"torchvision num_workers={workers}", epoch_line,
          floor_line, alone_line, sep="\n")
    print(f"loader: dlhw is {1 / ratio:.2f}x faster per epoch ({target}); the compute floor is "
          f"{tv / statistics.median(t['floor']):.2f}x faster than torchvision (the most any loader can gain here)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
