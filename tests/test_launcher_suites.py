"""Hydra's launcher test suites (tests/hydra_launcher_suites.py) pass for hydra/launcher=packed.
They run in a pytest process of their own: they change Hydra's global state."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def test_hydras_launcher_suites_pass_for_the_packed_launcher(tmp_path: Path) -> None:
    suites = Path(__file__).with_name("hydra_launcher_suites.py")
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(suites)],
                          cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-4000:]
    assert "20 passed" in proc.stdout, proc.stdout[-2000:]
