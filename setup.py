"""Ships the top-level conf/ inside the wheel as the package ``dlhw.conf`` (one package per group)."""

from pathlib import Path

from setuptools import find_packages, setup

groups = sorted(p.name for p in Path("conf").iterdir() if p.is_dir() and not p.name.startswith("_"))
setup(
    packages=find_packages("src") + ["dlhw.conf"] + [f"dlhw.conf.{g}" for g in groups],
    package_dir={"": "src", "dlhw.conf": "conf"},
    package_data={"dlhw.conf": ["*.yaml"], **{f"dlhw.conf.{g}": ["*.yaml"] for g in groups}},
)
