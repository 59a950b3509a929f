"""scripts/bench_scratch.py runs (tiny setting) and prints the scratch/torch ratio lines."""

import importlib.util
import re
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "bench_scratch.py"


def test_bench_scratch_tiny(capsys):
    spec = importlib.util.spec_from_file_location("bench_scratch", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    assert mod.main(["--tiny"]) == 0
    out = capsys.readouterr().out
    assert re.search(
        r"scratch/torch epoch time ratio: \d+\.\d+x \(torch \S+ s, scratch \S+ s\)", out
    )
    assert (
        "scratch/torch conv forward ratio:" in out and "scratch/torch conv backward ratio:" in out
    )
    losses = re.search(r"initial loss torch (\S+), scratch (\S+)", out)
    assert losses and abs(float(losses.group(1)) - float(losses.group(2))) < 1e-5  # same weights
