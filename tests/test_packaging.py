"""A plain (non-editable) wheel carries conf/, and an installed dlhw composes its configs."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_wheel_ships_every_config_and_composes_from_it(tmp_path: Path) -> None:
    wheel_dir, target = tmp_path / "wheel", tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
         "-w", str(wheel_dir), str(ROOT)],
        check=True, capture_output=True, timeout=300,
    )
    (wheel,) = wheel_dir.glob("dlhw-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    wanted = {f"dlhw/conf/{p.relative_to(ROOT / 'conf').as_posix()}" for p in (ROOT / "conf").rglob("*.yaml")}
    assert wanted and wanted <= names, sorted(wanted - names)[:5]

    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target), str(wheel)],
        check=True, capture_output=True, timeout=300,
    )
    code = (
        "import dlhw, dlhw.cli.train\n"
        "from hydra import compose, initialize_config_module\n"
        "with initialize_config_module('dlhw.conf', version_base='1.3'):\n"
        "    cfg = compose('train', overrides=['model=mlp', 'data=mnist'])\n"
        "print(dlhw.__file__, cfg.model._target_, cfg.data._target_)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(target)}
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=120, check=True).stdout
    assert out.startswith(str(target)) and "dlhw.models.MLP dlhw.data.MNISTData" in out
