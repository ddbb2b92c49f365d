"""Packaging beyond pyproject.toml: the shipped model and its operating point are made outside
the package (models/, calibration/), and an installed package carries copies of them."""

import importlib.util
import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

# A build runs this file where the package is not importable (an isolated build environment has
# only the build requirements), so the list of shipped files is read from its module by path.
_spec = importlib.util.spec_from_file_location(
    "_shipping", Path(__file__).resolve().parent / "edge" / "shipping.py")
_shipping = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_shipping)
SHIPPED = _shipping.SHIPPED  # name -> its place in the source tree


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
