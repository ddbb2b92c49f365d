"""A parcel's pictures as the dashboard shows them, written beside the store:

- ``xray.jpg``: the dual-energy pseudo-colour rendering (what the model and operators see);
- ``grey.jpg``: the single-energy grey rendering;
- ``material.png``: the material classes (organic, inorganic, metal) as a transparent overlay;
- ``photo.jpg``: the top camera's photo, when there is one.

The renderings are JPEG at quality 95 without chroma subsampling (a thin wire keeps its
colour): on a 2-core box PNG would cost the writer tens of milliseconds of a core per parcel
and five times the disk. The overlay has four flat colours and an alpha channel: PNG.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from edge.imaging.material import classify
from edge.imaging.render import render_colour, render_grey
from edge.types import Parcel

IMAGE_FILES = ("xray.jpg", "grey.jpg", "material.png", "photo.jpg")
# Overlay colours, BGRA: organic orange, inorganic green, metal blue; background clear.
MATERIAL_COLOURS = np.array([[0, 0, 0, 0], [0, 140, 255, 150], [40, 200, 40, 150],
                             [255, 80, 0, 170]], np.uint8)
PNG = [cv2.IMWRITE_PNG_COMPRESSION, 1]
RENDERING = [cv2.IMWRITE_JPEG_QUALITY, 95,
             cv2.IMWRITE_JPEG_SAMPLING_FACTOR, cv2.IMWRITE_JPEG_SAMPLING_FACTOR_444]


def write_images(parcel: Parcel, folder: Path,
                 boundaries: tuple[float, float] | None = None) -> int:
    """Write the parcel's pictures into ``folder`` (created); returns the bytes written."""
    folder.mkdir(parents=True, exist_ok=True)
    kwargs = {} if boundaries is None else {"boundaries": boundaries}
    pictures = {
        "xray.jpg": (render_colour(parcel.hi, parcel.lo, **kwargs), RENDERING),
        "grey.jpg": (render_grey(parcel.hi), RENDERING),
        "material.png": (MATERIAL_COLOURS[classify(parcel.hi, parcel.lo, **kwargs)], PNG),
    }
    written = 0
    for name, (image, params) in pictures.items():
        written += _write(folder / name, image, params)
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
