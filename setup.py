"""Ships the top-level conf/ inside the wheel as the package ``dlhw.conf`` (one package per folder),
and dlhw's Hydra launchers and sweepers in the ``hydra_plugins`` namespace (where Hydra looks for them)."""

from pathlib import Path

from setuptools import find_packages, setup

conf_packages = ["dlhw.conf"] + [
    "dlhw.conf." + ".".join(p.relative_to("conf").parts)
    for p in sorted(Path("conf").rglob("*"))
    if p.is_dir() and "__pycache__" not in p.parts
]
setup(
    packages=find_packages("src") + ["hydra_plugins", "hydra_plugins.dlhw_launchers", "hydra_plugins.dlhw_sweepers"] + conf_packages,
    package_dir={"": "src", "dlhw.conf": "conf"},
    package_data={name: ["*.yaml"] for name in conf_packages},
)
