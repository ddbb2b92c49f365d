"""Pre-processing: the one function that turns an image into model input, shared by the runtime,
INT8 calibration and replay (calibrate on exactly what production feeds the model).

Ordinary images are letterboxed into the model's square input. Parcels much longer than they
are tall are scaled so their height fills the input, then cut into overlapping tiles along the
belt. Padding is white: air, in an X-ray image. A model whose graph takes any tile size gets
an image that fits in one tile cut down to the image, rounded up to a multiple of its largest
stride, rather than padded out to the full square: most parcels are shorter along the belt
than the tunnel is high.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import cv2
import numpy as np

PAD_VALUE = 255
MIN_OVERLAP = 0.25  # of a tile: more than the longest object, so one tile sees it whole


@dataclass(frozen=True)
class Batch:
    """Model input for one image. tensor: [B, 3, H, W], float32 normalised, or uint8 pixels
    for models that normalise inside their graph; offsets: float32 [B, 2] of each tile's
    (x, y) in scaled-image pixels; scale: input pixels per image pixel."""

    tensor: np.ndarray
    offsets: np.ndarray
    scale: float
    image_shape: tuple[int, int]

    @property
    def tile_size(self) -> tuple[int, int]:
        """(H, W) of every tile: the model's input size, or less for a fitted single tile."""
        return self.tensor.shape[2], self.tensor.shape[3]


def as_bgr8(image: np.ndarray) -> np.ndarray:
    """Any scan (grey or colour, 8 or 16 bit) as BGR uint8 [H, W, 3]."""
    image = np.asarray(image)
    if image.size == 0 or image.ndim not in (2, 3):
        raise ValueError(f"expected a non-empty 2D grey or 3D colour image, got shape "
                         f"{image.shape}")
    if image.dtype == np.uint16:
        image = (image >> 8).astype(np.uint8)
    elif image.dtype != np.uint8:
        raise ValueError(f"expected 8- or 16-bit pixels, got {image.dtype}")
    if image.ndim == 2:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    if image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
    if image.shape[2] == 1:
        return cv2.cvtColor(image[:, :, 0], cv2.COLOR_GRAY2BGR)
    if image.shape[2] != 3:
        raise ValueError(f"expected 1, 3 or 4 channels, got {image.shape[2]}")
    return image


def tile_starts(length: int, tile: int, overlap: float = MIN_OVERLAP) -> np.ndarray:
    """Start offsets of tiles of ``tile`` px covering ``length`` px with at least ``overlap``."""
    if length <= tile:
        return np.zeros(1, np.int64)
    step = tile * (1 - overlap)
    count = int(np.ceil((length - tile) / step)) + 1
    return np.round(np.linspace(0, length - tile, count)).astype(np.int64)


def prepare(image: np.ndarray, input_size: tuple[int, int], mean, std,
            channel_order: str = "bgr", max_tiles: int = 8, pixels: bool = False,
            fit_to: int = 0) -> Batch:
    """Image -> Batch: letterbox (scale to fit) or, for long images, tiles along x.
    ``pixels``: the model takes uint8 pixels and normalises them itself (mean and std unused
    here), which leaves pre-processing a resize and a copy. ``fit_to``: the model takes any
    tile whose sides are multiples of this; an image that fits in one tile gets a tile cut
    down to it (0: every tile is ``input_size``)."""
    bgr = as_bgr8(image)
    h, w = bgr.shape[:2]
    layout = _layout(h, w, *input_size, max_tiles, fit_to)
    in_h, in_w = layout.tile
    resized = shrink(bgr, layout.width, layout.height)[:in_h]
    rows = resized.shape[0]
    planes = resized.transpose(2, 0, 1)   # a view: channel, row, column
    if channel_order == "rgb":
        planes = planes[::-1]
    tensor = np.empty((len(layout.starts), 3, in_h, in_w), np.uint8)
    for k, x in enumerate(layout.starts):   # a few tiles; one strided copy each
        cols = min(in_w, layout.width - x)
        tensor[k, :, :rows, :cols] = planes[:, :, x:x + cols]
        # Only what the image leaves uncovered is padded: each byte is written once.
        if rows < in_h:
            tensor[k, :, rows:] = PAD_VALUE
        if cols < in_w:
            tensor[k, :, :rows, cols:] = PAD_VALUE
    if not pixels:
        # One table look-up per plane: uint8 -> normalised float32.
        tables = _normalise_tables(tuple(mean), tuple(std))
        normalised = np.empty(tensor.shape, np.float32)
        for k in range(len(layout.starts)):
            for c in range(3):
                normalised[k, c] = cv2.LUT(tensor[k, c], tables[c])
        tensor = normalised
    return Batch(tensor, layout.offsets, layout.scale, (h, w))


@dataclass(frozen=True)
class _Layout:
    """Where an image of a given size goes in the model input: its scale, its scaled size,
    the x start of each tile (``offsets`` as float32 [B, 2], read-only) and the tiles' size."""

    scale: float
    width: int
    height: int
    starts: tuple[int, ...]
    offsets: np.ndarray
    tile: tuple[int, int]


@functools.lru_cache(maxsize=1024)
def _layout(h: int, w: int, in_h: int, in_w: int, max_tiles: int, fit_to: int = 0
            ) -> _Layout:
    # One scanner's parcels share their height, and their lengths (in lines) repeat: a few
    # hundred sizes, each worked out once.
    # Height fills the input; long images tile along x, short ones letterbox.
    scale = min(in_h / h, in_w / w) if w * in_h <= h * in_w * 1.25 else in_h / h
    scaled_w = max(int(round(w * scale)), 1)
    if scaled_w > in_w * max_tiles * (1 - MIN_OVERLAP):
        scale = in_w * max_tiles * (1 - MIN_OVERLAP) / w  # very long: shrink to max_tiles
        scaled_w = max(int(round(w * scale)), 1)
    scaled_h = max(int(round(h * scale)), 1)
    starts = tuple(tile_starts(max(scaled_w, in_w), in_w).tolist())
    offsets = np.zeros((len(starts), 2), np.float32)
    offsets[:, 0] = starts
    offsets.setflags(write=False)
    tile = (in_h, in_w)
    if fit_to and len(starts) == 1:
        tile = (min(in_h, -(-scaled_h // fit_to) * fit_to),
                min(in_w, -(-scaled_w // fit_to) * fit_to))
    return _Layout(float(scale), scaled_w, scaled_h, starts, offsets, tile)


@functools.lru_cache(maxsize=8)
def _normalise_tables(mean: tuple, std: tuple) -> tuple[np.ndarray, ...]:
    values = np.arange(256, dtype=np.float32)
    return tuple((values - np.float32(m)) / np.float32(sd) for m, sd in zip(mean, std,
                                                                               strict=True))


def shrink(image: np.ndarray, width: int, height: int) -> np.ndarray:
    """Resize to (width, height). Large reductions halve by pixel averaging first (OpenCV's
    fast path), then finish by linear interpolation: the look of area averaging at a tenth of
    its cost for the 2-3x reductions parcels need."""
    h, w = image.shape[:2]
    while w >= 2 * width and h >= 2 * height:
        # Even sides take OpenCV's 2x2 averaging path (ten times faster); the odd last row or
        # column dropped is under a pixel of the result.
        image = cv2.resize(image[:h - h % 2, :w - w % 2], (w // 2, h // 2),
                           interpolation=cv2.INTER_AREA)
        h, w = image.shape[:2]
    if (w, h) == (width, height):
        return image
    return cv2.resize(image, (width, height), interpolation=cv2.INTER_LINEAR)
