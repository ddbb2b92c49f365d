"""Where the files that ship with the package are found: the model and its second look
(models/lite0/CARD.md) and the operating point chosen for them. An installed package carries
copies in ``edge/shipped/`` (setup.py puts them there at build time); a source checkout finds
them where they are made.
Standard library only: setup.py reads ``SHIPPED`` before any dependency is installed."""

from __future__ import annotations

from pathlib import Path

# name in edge/shipped/ -> its place in the source tree
SHIPPED = {"lite0.int8.onnx": Path("models/lite0/lite0.int8.onnx"),
           "verifier.int8.onnx": Path("models/lite0/verifier.int8.onnx"),
           "thresholds.json": Path("calibration/thresholds.json")}


def shipped_file(name: str) -> Path | None:
    """A shipped file: ``edge/shipped/<name>`` in the installed package, else its place in the
    source checkout the package runs from; None when neither exists."""
    package = Path(__file__).resolve().parent
    for path in (package / "shipped" / name, package.parent / SHIPPED[name]):
        if path.is_file():
            return path
    return None
