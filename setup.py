"""Packaging beyond pyproject.toml: the shipped model and its operating point are made outside
the package (models/, calibration/), and an installed package carries copies of them."""

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

from edge.shipping import SHIPPED  # name -> its place in the source tree


class BuildWithShippedFiles(build_py):
    def run(self):
        super().run()
        target = Path(self.build_lib) / "edge" / "shipped"
        target.mkdir(parents=True, exist_ok=True)
        for name, source in SHIPPED.items():
            if not source.is_file():
                raise SystemExit(f"{source} is missing: the package ships it as edge/shipped/"
                                 f"{name}")
            shutil.copyfile(source, target / name)


setup(cmdclass={"build_py": BuildWithShippedFiles})
