"""A real top camera, read through ``cv2.VideoCapture``: a device index, a stream URL or a
video file. ``open_camera`` returns the camera the config's ``camera.type`` names, or None for
``none`` (parcels are then named by their sequence number)."""

from __future__ import annotations

from pathlib import Path

import cv2

from edge.config import CaptureCameraConfig, NoCameraConfig
from edge.types import BeltEvent, Photo


class CameraError(RuntimeError):
    """A camera that cannot be opened or read; the message names the source."""


class CaptureCamera:
    """A real camera read through ``cv2.VideoCapture`` (device index, stream URL or file)."""

    def __init__(self, config: CaptureCameraConfig):
        self.source = config.source
        # A file path that is not there deserves a plainer word than "cannot open".
        if isinstance(self.source, str) and "://" not in self.source:
            if not Path(self.source).exists():
                raise CameraError(f"camera source {self.source!r}: no such file or device")
        self._cap = cv2.VideoCapture(self.source)
        if not self._cap.isOpened():
            raise CameraError(f"cannot open camera source {self.source!r} (device index, "
                              "stream URL or video file)")

    def grab(self, t: float, encoder: int) -> Photo:
        """The next frame as a BGR uint8 photo stamped with ``t`` (s) and ``encoder``."""
        ok, frame = self._cap.read()
        if not ok or frame is None:
            raise CameraError(f"camera source {self.source!r} gave no frame (end of the video, "
                              "device unplugged or stream dropped)")
        if frame.ndim == 2:
            frame = cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR)
        elif frame.shape[2] == 4:
            frame = cv2.cvtColor(frame, cv2.COLOR_BGRA2BGR)
        return Photo(frame, float(t), int(encoder))

    def photograph(self, event: BeltEvent) -> Photo:
        """The frame the photo-eye's ``event`` triggered: the next one, as it is."""
        return self.grab(event.t, event.encoder)

    def close(self) -> None:
        self._cap.release()

    def __enter__(self) -> CaptureCamera:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def open_camera(config: CaptureCameraConfig | NoCameraConfig) -> CaptureCamera | None:
    """The real camera ``config.type`` names (``capture``), or None for ``none``."""
    if config.type == "capture":
        return CaptureCamera(config)
    if config.type == "none":
        return None
    raise ValueError(f"camera.type {config.type!r} is not a real camera; valid here: "
                     "'capture', 'none' (a simulated camera needs the simulated scanner)")
