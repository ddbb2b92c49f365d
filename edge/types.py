"""The few core types that flow through the pipeline.

Image conventions, used everywhere after segmentation:
- a parcel image is ``[H, W]`` with ``H`` = detector pixels across the tunnel (y) and
  ``W`` = scan lines along the belt (x), so the belt runs left to right;
- boxes are ``xyxy`` in that image's pixels, float32, ``x2 > x1`` and ``y2 > y1``;
- attenuation is the dimensionless log-attenuation ``-ln(I / I0)`` (0 = air, larger = denser).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum

import numpy as np


def _check(condition: bool, message: str, *values) -> None:
    """Raise ValueError(message.format(*values)) unless ``condition``. The message is formatted
    only when it is raised: these types are built for every scan block and box set."""
    if not condition:
        raise ValueError(message.format(*values))


@dataclass(frozen=True)
class LineBlock:
    """A run of consecutive scan lines from a dual-energy line-scan detector.

    hi, lo: uint16 ``[rows, n_pixels]`` raw detector counts, high and low energy.
    t: float64 ``[rows]`` acquisition time of each line, seconds (monotonic clock).
    encoder: int64 ``[rows]`` belt encoder count at each line.
    """

    hi: np.ndarray
    lo: np.ndarray
    t: np.ndarray
    encoder: np.ndarray

    def __post_init__(self) -> None:
        _check(self.hi.ndim == 2, "hi must be 2D [rows, n_pixels], got shape {}", self.hi.shape)
        _check(self.hi.shape == self.lo.shape, "hi and lo must have one shape, got {} and {}",
               self.hi.shape, self.lo.shape)
        rows = self.hi.shape[0]
        _check(self.t.shape == (rows,), "t must have shape ({},), got {}", rows, self.t.shape)
        _check(self.encoder.shape == (rows,), "encoder must have shape ({},), got {}", rows,
               self.encoder.shape)

    def __len__(self) -> int:
        return self.hi.shape[0]

    @property
    def n_pixels(self) -> int:
        return self.hi.shape[1]


@dataclass(frozen=True)
class BeltEvent:
    """A parcel's leading edge crossing the photo-eye at the top camera, upstream of the scan
    plane: the time (s, monotonic clock) and the belt encoder count then."""

    t: float
    encoder: int


@dataclass(frozen=True)
class Photo:
    """A top-camera photo of a parcel. image: BGR uint8 ``[H, W, 3]``."""

    image: np.ndarray
    t: float
    encoder: int


@dataclass
class Detections:
    """Boxes as a struct of arrays.

    xyxy: float32 ``[N, 4]`` in image pixels. score: float32 ``[N]`` in [0, 1].
    class_id: int64 ``[N]`` into the model's class list.
    Indexing with a boolean mask or an index array filters every array at once.
    """

    xyxy: np.ndarray
    score: np.ndarray
    class_id: np.ndarray

    def __post_init__(self) -> None:
        self.xyxy = np.asarray(self.xyxy, dtype=np.float32)
        if self.xyxy.size == 0:
            self.xyxy = self.xyxy.reshape(0, 4)
        self.score = np.asarray(self.score, dtype=np.float32)
        self.class_id = np.asarray(self.class_id, dtype=np.int64)
        _check(self.xyxy.ndim == 2 and self.xyxy.shape[1] == 4,
               "xyxy must be a 2D array with shape (N, 4), but got shape {}", self.xyxy.shape)
        n = self.xyxy.shape[0]
        _check(self.score.shape == (n,), "score must have shape ({},) to match xyxy, but got {}",
               n, self.score.shape)
        _check(self.class_id.shape == (n,),
               "class_id must have shape ({},) to match xyxy, but got {}", n, self.class_id.shape)

    @classmethod
    def empty(cls) -> Detections:
        return cls(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros(0, np.int64))

    @classmethod
    def merge(cls, parts: Sequence[Detections]) -> Detections:
        if not parts:
            return cls.empty()
        return cls(np.concatenate([p.xyxy for p in parts]),
                   np.concatenate([p.score for p in parts]),
                   np.concatenate([p.class_id for p in parts]))

    def __len__(self) -> int:
        return self.xyxy.shape[0]

    def __getitem__(self, index) -> Detections:
        index = np.atleast_1d(np.asarray(index)) if np.isscalar(index) else index
        return Detections(self.xyxy[index], self.score[index], self.class_id[index])


@dataclass
class Parcel:
    """One parcel cut from the corrected line stream.

    hi, lo: float32 ``[H, W]`` log-attenuation (H detector pixels, W scan lines).
    encoder, t: ``[W]`` encoder count and time of each line.
    truth: ground-truth threat boxes when the source knows them (simulator, labelled recording),
        with ``score`` 1; ``truth_labels`` gives their class names.
    """

    id: str
    seq: int
    hi: np.ndarray
    lo: np.ndarray
    encoder: np.ndarray
    t: np.ndarray
    photo: Photo | None = None
    truth: Detections | None = None
    truth_labels: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        _check(self.hi.ndim == 2 and self.hi.shape == self.lo.shape,
               "hi and lo must be 2D of one shape, got {} and {}", self.hi.shape, self.lo.shape)
        width = self.hi.shape[1]
        _check(self.encoder.shape == (width,) and self.t.shape == (width,),
               "encoder and t must have shape ({},), got {}, {}", width, self.encoder.shape,
               self.t.shape)

    @property
    def encoder_range(self) -> tuple[int, int]:
        return int(self.encoder[0]), int(self.encoder[-1])

    @property
    def shape(self) -> tuple[int, int]:
        return self.hi.shape


class Action(StrEnum):
    CLEAR = "clear"
    DIVERT = "divert"
    UNINSPECTED = "uninspected"


@dataclass
class Verdict:
    """The decision on one parcel, with the detections that caused it."""

    parcel_id: str
    action: Action
    detections: Detections
    reason: str = ""
    deadline_t: float | None = None
