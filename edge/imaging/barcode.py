"""Parcel labels: draw a parcel ID as a QR code or a Code 128 barcode; read it back from a photo.

Pure, no I/O. Images are uint8 ``[H, W]`` grey or ``[H, W, 3]`` BGR; sizes are in px.

Reading looks first at label-like blobs (bright and colourless, cropped with a margin), then at
the whole image. In each it tries Code 128 first (cheap to rule out, while the QR finder is slow
on bars), then QR: ``cv2.QRCodeDetector``, then ``cv2.QRCodeDetectorAruco``, which reads a few
blurred or small-module codes the first one misses; small crops are also tried at twice the size.
OpenCV's ``cv2.barcode.BarcodeDetector`` decodes EAN-8/13 and UPC-A/E only, so Code 128 is
located and decoded here: regions of strong, single-direction gradient (the structure tensor)
are turned so the bars stand upright, averaged along the bars into profiles (also sharpened,
against blur), cut at several grey levels into bar/space runs and decoded by
``edge.imaging.code128``, checksum verified, both ways round.
"""

from __future__ import annotations

import cv2
import numpy as np

from edge.imaging.code128 import QUIET_MODULES, check_text, decode_runs, encode_code128

__all__ = ["draw_code128", "draw_qr", "encode_code128", "read_label"]

_QR = cv2.QRCodeDetector()
_QR_ARUCO = cv2.QRCodeDetectorAruco()
QR_QUIET_MODULES = 4  # the QR standard's quiet zone
TENSOR_WINDOW_PX = 15  # averages gradients over a few bars, so spaces inside a code stay in it
MIN_COHERENCE = 0.75  # 1 = every gradient in one direction (bars); text and noise sit lower
MIN_ENERGY = 120.0  # mean squared gradient, (grey levels / px)^2: a printed code, not paper grain
BAND_SHARE = (0.5, 0.3, 0.7, 0.15, 0.85)  # scan lines, as shares of the region's height
LEVELS = (0.5, 0.35, 0.65)  # cut levels between dark and light; blur thins narrow elements
SHARPEN = (0.0, 1.5, 3.0)  # unsharp-mask gains: blur merges narrow elements, sharpening parts them


def draw_code128(text: str, module_px: int = 3, height_px: int = 60) -> np.ndarray:
    """uint8 ``[height_px + 10 * module_px, (n + 20) * module_px]`` black-on-white Code 128 of
    ``text`` (code set B, n modules), with 10-module quiet zones left and right and 5 above and
    below."""
    if module_px < 1 or height_px < 1:
        raise ValueError(f"module_px and height_px must be >= 1, got {module_px}, {height_px}")
    modules = np.pad(encode_code128(text), QUIET_MODULES)
    row = np.where(np.repeat(modules, module_px) == 1, 0, 255).astype(np.uint8)
    margin = np.full((5 * module_px, row.size), 255, np.uint8)
    return np.vstack([margin, np.tile(row, (height_px, 1)), margin])


def draw_qr(text: str, module_px: int = 4) -> np.ndarray:
    """uint8 ``[S, S]`` black-on-white QR code of ``text`` (error correction M) with a 4-module
    quiet zone, ``module_px`` px per module."""
    check_text(text)
    if module_px < 1:
        raise ValueError(f"module_px must be >= 1, got {module_px}")
    params = cv2.QRCodeEncoder_Params()
    params.correction_level = cv2.QRCodeEncoder_CORRECT_LEVEL_M
    code = cv2.QRCodeEncoder.create(params).encode(text)  # 1 px per module, thin quiet zone
    dark = np.flatnonzero((code < 128).any(axis=1))
    code = np.pad(code[dark[0]:dark[-1] + 1, dark[0]:dark[-1] + 1], QR_QUIET_MODULES,
                  constant_values=255)
    return cv2.resize(code, None, fx=module_px, fy=module_px, interpolation=cv2.INTER_NEAREST)


def read_label(image: np.ndarray) -> str | None:
    """The text of a QR code or Code 128 barcode in a photo, or None when none decodes."""
    grey = _to_grey(image)
    if grey is None or min(grey.shape) < 16:
        return None
    for crop in [*_label_crops(image, grey), grey]:
        text = _read_code128(crop) or _read_qr(crop)
        if text:
            return text
    return None


def _to_grey(image: np.ndarray) -> np.ndarray | None:
    image = np.asarray(image)
    if image.dtype != np.uint8:
        image = cv2.normalize(image.astype(np.float32), None, 0, 255, cv2.NORM_MINMAX)
        image = image.astype(np.uint8)
    if image.ndim == 3 and image.shape[2] in (3, 4):
        return cv2.cvtColor(image, cv2.COLOR_BGR2GRAY if image.shape[2] == 3 else
                            cv2.COLOR_BGRA2GRAY)
    if image.ndim == 3 and image.shape[2] == 1:
        return image[:, :, 0]
    return image if image.ndim == 2 else None


def _label_crops(image: np.ndarray, grey: np.ndarray, most: int = 3) -> list[np.ndarray]:
    """Grey crops around the largest bright, colourless blobs (paper labels), biggest first."""
    step = max(1, max(grey.shape) // 640)  # blobs show on a thinned image; it is much cheaper
    small = grey[::step, ::step]
    mask = small > max(140.0, float(np.median(small)) + 40)
    if image.ndim == 3 and image.shape[2] >= 3:
        bgr = image[::step, ::step, :3]
        mask &= (bgr.max(axis=2).astype(np.int16) - bgr.min(axis=2)) < 60
    mask = cv2.morphologyEx(mask.astype(np.uint8), cv2.MORPH_CLOSE, np.ones((5, 5), np.uint8))
    contours = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)[0]
    min_area = max(400.0, 2e-4 * grey.size) / step**2
    crops = []
    for contour in sorted(contours, key=cv2.contourArea, reverse=True)[:most]:
        if cv2.contourArea(contour) < min_area:
            break
        x, y, w, h = (v * step for v in cv2.boundingRect(contour))
        pad = max(8, (w + h) // 10)
        crop = grey[max(0, y - pad):y + h + pad, max(0, x - pad):x + w + pad]
        if crop.size < grey.size:
            crops.append(crop)
    return crops


def _read_qr(grey: np.ndarray) -> str | None:
    """QR text in a grey image; small images are also tried at twice the size, where the
    detectors find blurred modules more often."""
    images = [grey]
    if max(grey.shape) < 600:
        images.append(cv2.resize(grey, None, fx=2, fy=2, interpolation=cv2.INTER_CUBIC))
    for image in images:
        for detector in (_QR, _QR_ARUCO):
            try:
                text = detector.detectAndDecode(image)[0]
            except cv2.error:  # some degenerate inputs make a detector throw rather than fail
                continue
            if text:
                return text
    return None


def _read_code128(grey: np.ndarray) -> str | None:
    """Code 128 in a grey image, tried at full, half and quarter scale (the tensor window
    suits bars of 1-4 px)."""
    for _ in range(3):
        if min(grey.shape) < 40:
            break
        for centre, direction, length, height in _bar_regions(grey):
            text = _decode_region(grey, centre, direction, length, height)
            if text:
                return text
        grey = cv2.resize(grey, None, fx=0.5, fy=0.5, interpolation=cv2.INTER_AREA)
    return None


def _bar_regions(grey: np.ndarray, most: int = 6):
    """Regions of parallel bars: (centre xy px, unit scan direction, length along it px,
    height across it px), biggest first."""
    g = grey.astype(np.float32)
    gx = cv2.Sobel(g, cv2.CV_32F, 1, 0, ksize=3, scale=0.125)
    gy = cv2.Sobel(g, cv2.CV_32F, 0, 1, ksize=3, scale=0.125)
    window = (TENSOR_WINDOW_PX, TENSOR_WINDOW_PX)
    jxx, jyy, jxy = (cv2.boxFilter(a, -1, window) for a in (gx * gx, gy * gy, gx * gy))
    energy = jxx + jyy
    coherence = np.sqrt((jxx - jyy) ** 2 + 4 * jxy ** 2) / (energy + 1e-6)
    mask = ((coherence > MIN_COHERENCE) & (energy > MIN_ENERGY)).astype(np.uint8)
    # Close the gaps wide spaces leave, then drop thin lines (a lone edge, a label's border).
    mask = cv2.morphologyEx(mask, cv2.MORPH_CLOSE, np.ones((9, 9), np.uint8))
    mask = cv2.morphologyEx(mask, cv2.MORPH_OPEN, np.ones((5, 5), np.uint8))
    contours = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)[0]
    for contour in sorted(contours, key=cv2.contourArea, reverse=True)[:most]:
        if cv2.contourArea(contour) < 150:
            return
        x, y, w, h = cv2.boundingRect(contour)
        inside = np.zeros((h, w), np.uint8)
        cv2.drawContours(inside, [contour - (x, y)], -1, 1, -1)
        sums = [float((a[y:y + h, x:x + w] * inside).sum()) for a in (jxx, jyy, jxy)]
        angle = 0.5 * np.arctan2(2 * sums[2], sums[0] - sums[1])  # the gradients' direction
        u = np.array([np.cos(angle), np.sin(angle)])
        v = np.array([-u[1], u[0]])
        points = contour.reshape(-1, 2).astype(np.float64)
        pu, pv = points @ u, points @ v
        centre = u * (pu.min() + pu.max()) / 2 + v * (pv.min() + pv.max()) / 2
        yield centre, u, float(np.ptp(pu)), float(np.ptp(pv))


def _decode_region(grey, centre, u, length: float, height: float) -> str | None:
    """Turn the region so its bars stand upright, and decode profiles along a few bands."""
    if length < 30 or height < 6:
        return None
    upsample = 2.0
    # Pad along the scan so the quiet zones come in; the tensor window already overhangs by half.
    width_px = int((length * 1.2 + 20) * upsample)
    height_px = int(max(height - TENSOR_WINDOW_PX, 4) * upsample)
    v = np.array([-u[1], u[0]])
    origin = centre - (u * width_px + v * height_px) / (2 * upsample)
    matrix = np.column_stack([u / upsample, v / upsample, origin]).astype(np.float32)
    strip = cv2.warpAffine(grey, matrix, (width_px, height_px),
                           flags=cv2.INTER_CUBIC | cv2.WARP_INVERSE_MAP,
                           borderMode=cv2.BORDER_REPLICATE).astype(np.float32)
    half = max(1, int(height_px * 0.06))
    for sharpen in SHARPEN:
        for share in BAND_SHARE:
            row = int(share * (height_px - 1))
            profile = strip[max(0, row - half):row + half + 1].mean(axis=0)
            if sharpen:
                soft = cv2.GaussianBlur(profile[None], (0, 0), 2.0)[0]
                profile = profile + sharpen * (profile - soft)
            text = _decode_profile(profile)
            if text:
                return text
    return None


def _decode_profile(profile: np.ndarray) -> str | None:
    """Code 128 text along a grey profile (float ``[n]``), read both ways, or None."""
    dark, light = np.percentile(profile, (2, 98))
    if light - dark < 25:
        return None
    for level in LEVELS:
        runs = _runs(profile - (dark + level * (light - dark)))
        for candidate in (runs, runs[::-1]):
            text = decode_runs(candidate)
            if text:
                return text
    return None


def _runs(signed: np.ndarray) -> np.ndarray:
    """Light/dark run widths, px, between sub-pixel zero crossings of ``signed`` (light > 0),
    framed by the light runs at both ends (0 wide where the profile ends on a bar)."""
    s = signed.astype(np.float64)
    k = np.flatnonzero((s[:-1] > 0) != (s[1:] > 0))
    cuts = k + s[k] / (s[k] - s[k + 1])
    edges = np.concatenate([[0.0], cuts, [float(s.size - 1)]])
    runs = np.diff(edges)
    if s[0] <= 0:
        runs = np.concatenate([[0.0], runs])
    if s[-1] <= 0:
        runs = np.concatenate([runs, [0.0]])
    return runs
