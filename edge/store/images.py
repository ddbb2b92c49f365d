"""A parcel's pictures as the dashboard shows them, written beside the store:

- ``xray.png``: the dual-energy pseudo-colour rendering (what the model and operators see);
- ``grey.png``: the single-energy grey rendering;
- ``material.png``: the material classes (organic, inorganic, metal) as a transparent overlay;
- ``photo.jpg``: the top camera's photo, when there is one.

PNG at compression level 1: a third of the raw size at a fraction of the time of level 9.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from edge.imaging.material import classify
from edge.imaging.render import render_colour, render_grey
from edge.types import Parcel

IMAGE_FILES = ("xray.png", "grey.png", "material.png", "photo.jpg")
# Overlay colours, BGRA: organic orange, inorganic green, metal blue; background clear.
MATERIAL_COLOURS = np.array([[0, 0, 0, 0], [0, 140, 255, 150], [40, 200, 40, 150],
                             [255, 80, 0, 170]], np.uint8)
PNG = [cv2.IMWRITE_PNG_COMPRESSION, 1]


def write_images(parcel: Parcel, folder: Path,
                 boundaries: tuple[float, float] | None = None) -> int:
    """Write the parcel's pictures into ``folder`` (created); returns the bytes written."""
    folder.mkdir(parents=True, exist_ok=True)
    kwargs = {} if boundaries is None else {"boundaries": boundaries}
    pictures = {
        "xray.png": render_colour(parcel.hi, parcel.lo, **kwargs),
        "grey.png": render_grey(parcel.hi),
        "material.png": MATERIAL_COLOURS[classify(parcel.hi, parcel.lo, **kwargs)],
    }
    written = 0
    for name, image in pictures.items():
        written += _write(folder / name, image, PNG)
    if parcel.photo is not None:
        written += _write(folder / "photo.jpg", parcel.photo.image,
                          [cv2.IMWRITE_JPEG_QUALITY, 85])
    return written


def _write(path: Path, image: np.ndarray, params: list[int]) -> int:
    ok, encoded = cv2.imencode(path.suffix, image, params)
    if not ok:
        raise OSError(f"could not encode {path.name}")
    # Written under a temporary name and renamed: a crash never leaves half a picture.
    partial = path.with_suffix(path.suffix + ".part")
    partial.write_bytes(encoded.tobytes())
    partial.replace(path)
    return len(encoded)
