"""Ships the top-level conf/ inside the wheel as the package ``dlhw.conf``."""

from setuptools import find_packages, setup

setup(
    packages=find_packages("src") + ["dlhw.conf"],
    package_dir={"": "src", "dlhw.conf": "conf"},
    package_data={"dlhw.conf": ["*.yaml", "*/*.yaml", "*/*/*.yaml"]},
)
