"""The benchmark scripts run on tiny sizes and print their ratio lines (numbers: BENCHMARKS.md).

The in-process ones run by default; those that start dlhw-train subprocesses (memory, sweep) and
the GPU cases on the CPU are marked slow.
"""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"
RATIO = r"ratio {a}/{b} (\d+\.\d{{3}}) \(median of (\d+) interleaved repeats; target [^)]+\)"


def script(name: str):
    spec = importlib.util.spec_from_file_location(name, SCRIPTS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def keep_threads():
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def test_bench_overhead_tiny_prints_both_sides_and_ratio(capsys, keep_threads) -> None:
    assert script("bench_overhead").main(["--tiny", "--threads", "1"]) == 0
    out = capsys.readouterr().out
    for case in ("lenet_cifar10", "lenet_mnist", "lstm64_mnist_rows"):
        line = next(li for li in out.splitlines() if li.startswith(f"{case}: dlhw "))
        m = re.search(RATIO.format(a="dlhw", b="plain"), line)
        assert m and float(m.group(1)) > 0 and m.group(2) == "1"
        assert re.search(r"plain \d+\.\d{3} s/epoch", line)
        line = next(li for li in out.splitlines() if li.startswith(f"{case} dashboards: dlhw "))
        m = re.search(RATIO.format(a="dlhw", b="minimal") + r" \[dlhw: [\d.]+; minimal: [\d.]+\]$", line)
        assert m and float(m.group(1)) > 0 and "target <= 1.05" in line
    assert re.search(r"overhead: worst ratio \d+\.\d{3} \(target <= 1\.10\)", out)
    assert re.search(r"dashboards: worst ratio dlhw/minimal \d+\.\d{3} \(target <= 1\.05\)", out)
    assert "machine: " in out and "cores" in out


def test_bench_loader_tiny_probes_workers_and_prints_ratio(capsys, keep_threads) -> None:
    assert script("bench_loader").main(["--tiny", "--threads", "1"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"s/batch by num_workers: 0: \d.*-> num_workers=\d", out)
    assert re.search(RATIO.format(a="dlhw", b="torchvision"), out)
    assert re.search(RATIO.format(a="tensor", b="torchvision"), out)
    assert re.search(RATIO.format(a="floor", b="torchvision"), out)
    assert re.search(r"loader: dlhw is \d+\.\d\dx faster per epoch .*the compute floor is \d+\.\d\dx", out)


def test_bench_gpu_skips_cleanly_without_cuda(capsys) -> None:
    if torch.cuda.is_available():
        pytest.skip("a CUDA device is present: the skip line does not apply")
    assert script("bench_gpu").main(["--tiny"]) == 0
    assert capsys.readouterr().out.strip() == "no CUDA device: skipped"


@pytest.mark.slow
def test_bench_gpu_cases_run_on_the_cpu(capsys, keep_threads) -> None:
    assert script("bench_gpu").main(["--tiny", "--cpu", "--cases", "lenet,lstm64"]) == 0
    out = capsys.readouterr().out
    assert len(re.findall(r"ratio time/goal \d+\.\d{3}", out)) == 4  # two cases, printed twice


def run_script(*args: str) -> str:
    done = subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


@pytest.mark.slow
def test_bench_memory_tiny_reports_peak_rss() -> None:
    out = run_script(str(SCRIPTS / "bench_memory.py"), "--tiny")
    m = re.search(r"memory: peak RSS (\d+) MB \| limit 2048 MB \| ratio peak/limit (\d+\.\d{3})", out)
    assert m and 50 < int(m.group(1)) < 2048


@pytest.mark.slow
def test_bench_sweep_tiny_splits_threads_and_prints_ratios() -> None:
    out = run_script(str(SCRIPTS / "bench_sweep.py"), "--tiny")
    assert re.search(RATIO.format(a="joblib", b="sequential"), out)
    assert re.search(RATIO.format(a="ray", b="sequential"), out)
    m = re.search(r"threads per job: sequential \[(.*)\], joblib \[(.*)\], ray \[(.*)\]", out)
    cores = len(os.sched_getaffinity(0))
    assert m and all(int(t) == cores for t in m.group(1).split(","))
    assert all(int(t) == 1 for t in m.group(2).split(",") + m.group(3).split(","))  # a core each
    assert "devices: sequential ['cpu'], joblib ['cpu'], ray ['cpu']" in out
    assert re.search(r"sweep: ray/sequential wall-time ratio \d+\.\d{3}", out)


@pytest.mark.slow
def test_bench_threads_tiny_prints_policy_ratio() -> None:
    out = run_script(str(SCRIPTS / "bench_threads.py"), "--tiny")
    assert len(re.findall(r"ms/step", out)) == 3
    assert re.search(r"threads: ratio spin/passive \d+\.\d{3}", out)


def test_bench_layout_tiny_prints_a_ratio_per_model(capsys, keep_threads) -> None:
    assert script("bench_layout").main(["--tiny", "--threads", "1"]) == 0
    out = capsys.readouterr().out
    for case in ("lenet_cifar10", "cnn_mnist"):
        line = next(li for li in out.splitlines() if li.startswith(f"{case} (batch "))
        m = re.search(RATIO.format(a="nhwc", b="nchw"), line)
        assert m and float(m.group(1)) > 0
        assert re.search(r"nchw \d+\.\d{3} ms/step", line)
    with pytest.raises(SystemExit):
        script("bench_layout").main(["--cases", "no_such_model"])
