#!/usr/bin/env python
"""Peak resident memory of a LeNet CIFAR-10 (JPEG) run with the tensor loader, on the CPU.

Runs ``dlhw-train data=cifar10_jpeg data.archive=ARCHIVE data.root=ROOT trainer.max_epochs=1``
twice in a subprocess: the first run unpacks the archive and decodes the 60,000 JPEGs into a
cached tensor file (skipped when ROOT already holds them), the second reads the cache. The peak
RSS of each child comes from wait4(); the target is under 2 GB.

    python scripts/bench_memory.py [--archive /work/shared/data/cifar10-jpeg.tar.gz]
                                   [--root /tmp/dlhw-data] [--threads 1] [--tiny]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

LIMIT_MB = 2048


def peak_rss_mb(cmd: list[str]) -> tuple[float, float, int, str]:
    """(peak RSS in MB, wall seconds, exit status, output tail) of one child process."""
    start = time.perf_counter()
    with tempfile.TemporaryFile("w+") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        log.seek(0)
        tail = log.read()[-2000:]
    return usage.ru_maxrss / 1024, time.perf_counter() - start, proc.returncode, tail


def tiny_archive(folder: Path) -> Path:
    """A CIFAR-10-like JPEG archive (train/CLASS/*.jpg, test/CLASS/*.jpg) of a few images."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    tree = folder / "tree"
    for split, n in (("train", 20), ("test", 6)):
        for k in range(3):
            d = tree / split / f"class{k}"
            d.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                Image.fromarray(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)).save(d / f"{i:04d}.jpg")
    archive = folder / "tiny-jpeg.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        for split in ("train", "test"):
            tar.add(tree / split, arcname=split)
    return archive


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--archive", default="/work/shared/data/cifar10-jpeg.tar.gz")
    p.add_argument("--root", default="/tmp/dlhw-data")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--tiny", action="store_true", help="one run on a JPEG archive of 78 images")
    a = p.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="dlhw-bench-memory-"))
    archive, root = Path(a.archive), Path(a.root)
    if a.tiny:
        archive, root = tiny_archive(work), work / "data"
    if not archive.is_file() and not (root / "cifar10-jpeg" / "train").is_dir():
        print(f"memory: skipped, neither {archive} nor {root}/cifar10-jpeg exists (use --archive)")
        return 0
    overrides = ["data=cifar10_jpeg", f"data.archive={archive}", f"data.root={root}", "model=lenet",
                 "trainer.max_epochs=1", f"threads={a.threads}", "callbacks.progress_bar=null",
                 "data.val_fraction=0.1", *(["data.batch_size=16"] if a.tiny else [])]
    peaks = []
    labels = ("first run (unpack/decode/cache unless cached)", "cached run")
    for label in labels[:1] if a.tiny else labels:
        cmd = [sys.executable, "-m", "dlhw.cli.train", *overrides, f"hydra.run.dir={work}/run-{len(peaks)}"]
        mb, wall, rc, tail = peak_rss_mb(cmd)
        if rc != 0:
            sys.exit(f"dlhw-train failed (exit {rc}): {' '.join(cmd)}\n{tail}")
        peaks.append(mb)
        print(f"{label}: peak RSS {mb:.0f} MB, {wall:.1f} s wall", flush=True)
    peak = max(peaks)
    print(f"memory: peak RSS {peak:.0f} MB | limit {LIMIT_MB} MB | ratio peak/limit {peak / LIMIT_MB:.3f} "
          f"(target < 1.0; LeNet, data=cifar10_jpeg, data.loader=tensor, CPU)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
