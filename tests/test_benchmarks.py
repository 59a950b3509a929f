"""The benchmark scripts run on tiny sizes and print their ratio lines (numbers: BENCHMARKS.md).

No test asserts a speed. The harness's statistics and the scripts' figures are checked with
injected timings (each side's figure is its own timings' median, the ratio is the two sides'
quotient, the summary's worst ratio is the worst case's); the tiny real runs check that every
printed ratio is the quotient of the printed sides and each side the median of its printed repeats.
The in-process ones run by default; those that start dlhw-train subprocesses (memory, sweep) and
the GPU cases on the CPU are marked slow.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import statistics
import subprocess
import sys
from pathlib import Path

import pytest
import torch

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"
RATIO = r"ratio {a}/{b} (\d+\.\d{{3}}) \(median of (\d+) interleaved repeats; target [^)]+\)"
LINE = (r"(?P<label>.*): {a} (?P<ma>\d+\.\d{{3}}) (?P<unit>[^|]+?) \| {b} (?P<mb>\d+\.\d{{3}}) (?P=unit) \| "
        r"ratio {a}/{b} (?P<ratio>\d+\.\d{{3}}) \(median of (?P<n>\d+) interleaved repeats; target [^)]+\) "
        r"\[{a}: (?P<ta>[\d., ]+); {b}: (?P<tb>[\d., ]+)\]$")


def script(name: str):
    spec = importlib.util.spec_from_file_location(name, SCRIPTS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def ratio_figures(line: str, a: str, b: str) -> tuple[float, float, float]:
    """(side a, side b, ratio a/b) of a ``ratio_line``, after checking that each side is the median
    of its own printed repeats and the ratio their quotient (up to the printed rounding)."""
    m = re.search(LINE.format(a=re.escape(a), b=re.escape(b)), line)
    assert m, line
    ma, mb, ratio, n = float(m["ma"]), float(m["mb"]), float(m["ratio"]), int(m["n"])
    ta, tb = ([float(t) for t in m[k].split(", ")] for k in ("ta", "tb"))
    assert len(ta) == len(tb) == n
    assert abs(statistics.median(ta) - ma) <= 0.0011 and abs(statistics.median(tb) - mb) <= 0.0011, line
    if mb >= 0.01:  # the quotient of the rounded sides bounds the printed ratio
        slack = 0.0005 * (1 / mb + ma / mb**2) + 0.0006
        assert abs(ratio - ma / mb) <= slack, line
    return ma, mb, ratio


@pytest.fixture
def keep_threads():
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def test_bench_overhead_tiny_prints_both_sides_and_ratio(capsys, keep_threads) -> None:
    assert script("bench_overhead").main(["--tiny", "--threads", "1"]) == 0
    out = capsys.readouterr().out
    overhead, dashboards = [], []
    for case in ("lenet_cifar10", "lenet_mnist", "lstm64_mnist_rows"):
        line = next(li for li in out.splitlines() if li.startswith(f"{case}: dlhw "))
        m = re.search(RATIO.format(a="dlhw", b="plain"), line)
        assert m and m.group(2) == "1"
        assert re.search(r"plain \d+\.\d{3} s/epoch", line)
        dlhw, _, ratio = ratio_figures(line, "dlhw", "plain")
        overhead.append(ratio)
        line = next(li for li in out.splitlines() if li.startswith(f"{case} dashboards: dlhw "))
        m = re.search(RATIO.format(a="dlhw", b="minimal") + r" \[dlhw: [\d.]+; minimal: [\d.]+\]$", line)
        assert m and "target <= 1.05" in line
        same_dlhw, _, ratio = ratio_figures(line, "dlhw", "minimal")
        assert same_dlhw == dlhw  # one dlhw measurement, against both references
        dashboards.append(ratio)
    assert re.search(r"overhead: worst ratio \d+\.\d{3} \(target <= 1\.10\)", out)
    assert re.search(r"dashboards: worst ratio dlhw/minimal \d+\.\d{3} \(target <= 1\.05\)", out)
    assert f"overhead: worst ratio {max(overhead):.3f} " in out
    assert f"dashboards: worst ratio dlhw/minimal {max(dashboards):.3f} " in out
    assert "machine: " in out and "cores" in out


def test_bench_loader_tiny_probes_workers_and_prints_ratio(capsys, keep_threads) -> None:
    assert script("bench_loader").main(["--tiny", "--threads", "1"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"s/batch by num_workers: 0: \d.*-> num_workers=\d", out)
    assert re.search(RATIO.format(a="dlhw", b="torchvision"), out)
    assert re.search(RATIO.format(a="tensor", b="torchvision"), out)
    assert re.search(RATIO.format(a="floor", b="torchvision"), out)
    assert re.search(r"loader: dlhw is \d+\.\d\dx faster per epoch .*the compute floor is \d+\.\d\dx", out)
    lines = {name: next(li for li in out.splitlines() if f"| ratio {name}/torchvision " in li)
             for name in ("dlhw", "tensor", "floor")}
    for name, line in lines.items():
        ratio_figures(line, name, "torchvision")


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
    assert abs(float(m.group(2)) - int(m.group(1)) / 2048) <= 0.0008  # the printed peak over the limit


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
    for name in ("joblib", "ray"):  # the summary's ratio is the ratio line's, from the same repeats
        line = next(li for li in out.splitlines() if f"| ratio {name}/sequential " in li)
        _, _, ratio = ratio_figures(line, name, "sequential")
        assert f"sweep: {name}/sequential wall-time ratio {ratio:.3f} " in out


@pytest.mark.slow
def test_bench_threads_tiny_prints_policy_ratio() -> None:
    out = run_script(str(SCRIPTS / "bench_threads.py"), "--tiny")
    assert len(re.findall(r"ms/step", out)) == 3
    assert re.search(r"threads: ratio spin/passive \d+\.\d{3}", out)
    medians = {}
    for m in re.finditer(r"^(.+): (\d+\.\d) ms/step  \[([\d., ]+)\]$", out, re.MULTILINE):
        repeats = [float(x) for x in m.group(3).split(", ")]
        assert abs(statistics.median(repeats) - float(m.group(2))) <= 0.11, m.group(0)
        medians[m.group(1)] = float(m.group(2))
    spin, passive = list(medians.values())[1:]  # one thread, then all cores spinning, then passive
    ratio = float(re.search(r"threads: ratio spin/passive (\d+\.\d{3})", out).group(1))
    assert abs(ratio - spin / passive) <= 0.05 * (1 / passive + spin / passive**2) + 0.0006


def test_bench_layout_tiny_prints_a_ratio_per_model(capsys, keep_threads) -> None:
    assert script("bench_layout").main(["--tiny", "--threads", "1"]) == 0
    out = capsys.readouterr().out
    for case in ("lenet_cifar10", "cnn_mnist"):
        line = next(li for li in out.splitlines() if li.startswith(f"{case} (batch "))
        m = re.search(RATIO.format(a="nhwc", b="nchw"), line)
        assert m
        assert re.search(r"nchw \d+\.\d{3} ms/step", line)
        ratio_figures(line, "nhwc", "nchw")
    with pytest.raises(SystemExit):
        script("bench_layout").main(["--cases", "no_such_model"])


def test_bench_pack_step_prints_each_cases_throughput_from_its_timings(tmp_path: Path, capsys, keep_threads) -> None:
    figures_file = tmp_path / "step.json"
    assert script("bench_pack_step").main(["--k", "3", "--steps", "3", "--repeats", "1",
                                           "--json", str(figures_file)]) == 0
    out = capsys.readouterr().out
    figures = json.loads(figures_file.read_text())["cases"]
    for case in ("lenet", "mlp", "lstm"):
        ms = figures[case]["ms"]
        assert figures[case]["pack_vs_one_after_another"] == pytest.approx(3 * ms["alone"] / ms["pack"])
        assert figures[case]["pack_vs_runs_on_the_cores"] == pytest.approx(
            3 * ms["alone_1_thread"] / torch.get_num_threads() / ms["pack"])
        assert figures[case]["side_by_side_vs_runs_on_the_cores"] == pytest.approx(  # forked processes
            3 * ms["alone_1_thread"] / torch.get_num_threads() / ms["side_by_side"])
        m = re.search(rf"{case}: one run (\d+\.\d+) ms/step, pack of 3 (\d+\.\d+) ms/step: "
                      rf"throughput (\d+\.\d+)x", out)
        assert m and float(m.group(1)) == pytest.approx(ms["alone"], abs=0.006)
        assert float(m.group(3)) == pytest.approx(figures[case]["pack_vs_one_after_another"], abs=0.006)


# ----------------------------------------------------------------------------- injected timings
# No clock below: each side returns its own made-up times, and the printed figures must be those.


def test_interleaved_keeps_each_sides_results_and_alternates_the_order() -> None:
    from dlhw.bench.harness import interleaved

    calls = []

    def side(name: str, values: list[float]):
        left = iter(values)

        def run() -> float:
            calls.append(name)
            return next(left)

        return run

    out = interleaved({"a": side("a", [1.0, 2.0, 3.0]), "b": side("b", [10.0, 20.0, 30.0]),
                       "c": side("c", [7.0, 8.0, 9.0])}, 3)
    assert out == {"a": [1.0, 2.0, 3.0], "b": [10.0, 20.0, 30.0], "c": [7.0, 8.0, 9.0]}
    assert calls == ["a", "b", "c", "c", "b", "a", "a", "b", "c"]


def test_ratio_line_is_each_sides_median_and_their_quotient() -> None:
    from dlhw.bench.harness import ratio_line, steady

    fast, slow = [0.3, 0.1, 0.2], [0.5, 0.4, 9.0]  # a stalled repeat moves no median
    line = ratio_line("case", "fast", fast, "slow", slow, "<= 1")
    assert line == ("case: fast 0.200 s/epoch | slow 0.500 s/epoch | ratio fast/slow 0.400 (median of 3 "
                    "interleaved repeats; target <= 1) [fast: 0.300, 0.100, 0.200; slow: 0.500, 0.400, 9.000]")
    assert ratio_figures(line, "fast", "slow") == (0.2, 0.5, 0.4)
    swapped = ratio_line("case", "slow", slow, "fast", fast, "<= 1", unit="ms/step")
    assert ratio_figures(swapped, "slow", "fast") == (0.5, 0.2, 2.5) and " ms/step " in swapped
    assert steady([9.0, 1.0, 3.0, 2.0]) == 2.0 and steady([5.0]) == 5.0  # the warm-up epoch dropped


def test_bench_overhead_figures_come_from_each_sides_own_timings(capsys, keep_threads, monkeypatch) -> None:
    from dlhw.bench import harness

    cases: dict = {}

    def case(cfg) -> int:  # 1, 2, 3 in the order the cases run
        return cases.setdefault((cfg.data._target_, cfg.model._target_), len(cases) + 1)

    def dlhw_epoch_times(cfg, wall=False):
        assert wall  # the overhead counts every callback's epoch-end work
        k = case(cfg)
        minimal = "lr_monitor" not in cfg.callbacks  # callbacks=minimal
        return [99.0, 1.0 + 0.1 * k if minimal else 1.0 + 0.2 * k]  # the warm-up epoch first

    def plain_epoch_times(cfg, epochs, device="cpu", batches=None, val_batches=None):
        case(cfg)
        return [99.0] + [1.0] * (epochs - 1)

    monkeypatch.setattr(harness, "dlhw_epoch_times", dlhw_epoch_times)
    monkeypatch.setattr(harness, "plain_epoch_times", plain_epoch_times)
    assert script("bench_overhead").main(["--tiny", "--threads", "1"]) == 0
    out = capsys.readouterr().out
    for k, name in enumerate(("lenet_cifar10", "lenet_mnist", "lstm64_mnist_rows"), start=1):
        dlhw, minimal = 1.0 + 0.2 * k, 1.0 + 0.1 * k
        line = next(li for li in out.splitlines() if li.startswith(f"{name}: dlhw "))
        assert ratio_figures(line, "dlhw", "plain") == pytest.approx((dlhw, 1.0, round(dlhw, 3)))
        line = next(li for li in out.splitlines() if li.startswith(f"{name} dashboards: dlhw "))
        assert ratio_figures(line, "dlhw", "minimal") == pytest.approx((dlhw, minimal, round(dlhw / minimal, 3)))
    assert "overhead: worst ratio 1.600 (target <= 1.10)" in out
    assert f"dashboards: worst ratio dlhw/minimal {1.6 / 1.3:.3f} (target <= 1.05)" in out


def test_bench_loader_figures_come_from_each_sides_own_timings(capsys, keep_threads, monkeypatch) -> None:
    from dlhw.bench import harness

    def dlhw_epoch_times(cfg, wall=False):
        assert cfg.data.augment.crop_padding == 4 and cfg.data.augment.hflip  # the same work as torchvision's
        return [99.0, 0.5]

    def plain_epoch_times(cfg, epochs, device="cpu", batches=None, val_batches=None):
        assert (batches is None) == (val_batches is None)
        return [99.0, 0.25 if batches is None else 2.0]  # the floor's in-memory batches, or torchvision's

    monkeypatch.setattr(harness, "dlhw_epoch_times", dlhw_epoch_times)
    monkeypatch.setattr(harness, "plain_epoch_times", plain_epoch_times)
    assert script("bench_loader").main(["--tiny", "--threads", "1", "--workers", "0"]) == 0
    out = capsys.readouterr().out
    line = next(li for li in out.splitlines() if "| ratio dlhw/torchvision " in li)
    assert ratio_figures(line, "dlhw", "torchvision") == (0.5, 2.0, 0.25)
    line = next(li for li in out.splitlines() if "| ratio floor/torchvision " in li)
    assert ratio_figures(line, "floor", "torchvision") == (0.25, 2.0, 0.125)
    assert "loader: dlhw is 4.00x faster per epoch" in out and "the compute floor is 8.00x faster" in out


def test_bench_layout_figures_come_from_each_sides_own_timings(capsys, keep_threads, monkeypatch) -> None:
    layout = script("bench_layout")
    monkeypatch.setattr(layout, "step_timer", lambda net, shape, batch, channels_last:
                        lambda steps: 0.004 if channels_last else 0.002)
    assert layout.main(["--tiny", "--threads", "1"]) == 0
    out = capsys.readouterr().out
    for case in ("lenet_cifar10", "cnn_mnist"):
        line = next(li for li in out.splitlines() if li.startswith(f"{case} (batch "))
        assert ratio_figures(line, "nhwc", "nchw") == (4.0, 2.0, 2.0) and " ms/step " in line
