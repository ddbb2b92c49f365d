"""The simulated hub scanner: a belt carrying parcels through a dual-energy line-scan detector.

Belt coordinates are millimetres of belt travel. Line ``i`` is acquired at time
``t0 + i / line_rate`` when the belt has travelled ``s(i)`` mm; ``s`` wobbles around
``pitch * i`` (belt speed jitter), which stretches and squeezes parcels along x exactly as a real
belt does, while the encoder reports the true travel. Parcels are composed ahead of the scan
plane (``simulator.parcels``), sampled at the belt positions of the lines that see them, and
exposed by the detector model. The same seed gives the same stream, line for line.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field

import cv2
import numpy as np

from edge.config import SimScannerConfig
from edge.types import BeltEvent, LineBlock
from simulator.column import DetectorModel
from simulator.parcels import ParcelScene, ScanGeometry, compose_parcel

KEEP_PLACED = 64  # parcels remembered behind the scan plane, for ground-truth look-ups


@dataclass(frozen=True)
class Placed:
    """A parcel on the belt: its leading edge sits at belt coordinate ``start_mm``."""

    id: str
    seq: int
    start_mm: float
    scene: ParcelScene
    threat: bool

    def end_mm(self, pitch: float) -> float:
        return self.start_mm + self.scene.width * pitch


@dataclass(frozen=True)
class Arrival(BeltEvent):
    """A parcel's leading edge passing the top camera's photo-eye, with what the simulator
    knows of the parcel (the live loop reads only the ``BeltEvent`` part)."""

    parcel_id: str
    size_mm: tuple[float, float, float]
    kind: str


@dataclass(frozen=True)
class Truth:
    """Ground truth of one simulated parcel within a span of lines.

    boxes: float32 [N, 4] xyxy with x in lines from the span's first line, y in pixels;
    item_boxes the same for every placed item, benign or not, named by ``families``."""

    parcel_id: str
    boxes: np.ndarray
    labels: list[str]
    first_line: int
    last_line: int
    grey_visible: list[bool] = field(default_factory=list)  # per label; empty = all
    families: list[str] = field(default_factory=list)
    item_boxes: np.ndarray = field(default_factory=lambda: np.zeros((0, 4), np.float32))

    def labels_in(self, render: str) -> list[bool]:
        """Per label: whether a screener could call it in ``render`` ("colour" or "grey")."""
        if render == "grey" and self.grey_visible:
            return list(self.grey_visible)
        return [True] * len(self.labels)


def blurred(scene: ParcelScene, sigma_px: float) -> ParcelScene:
    """Focal-spot and detector blur act on intensity, so blur transmission, not attenuation."""
    if sigma_px <= 0:
        return scene
    out = []
    for att in (scene.att_lo, scene.att_hi):
        trans = cv2.GaussianBlur(np.exp(-att), (0, 0), sigma_px)
        out.append(-np.log(np.clip(trans, 1e-30, 1.0)))
    return ParcelScene(scene.kind, scene.size_mm, out[0], out[1], scene.boxes, scene.labels,
                       scene.families, scene.item_boxes, scene.grey_visible)


class SimScanner:
    """Endless stream of LineBlocks from a simulated belt (see module docstring)."""

    def __init__(self, config: SimScannerConfig, start_time: float | None = None):
        self.config = config
        self.geometry = ScanGeometry(config.n_pixels, config.pitch_mm,
                                     (config.low_kev, config.high_kev))
        seed = config.seed
        self.detector = DetectorModel.draw(config, np.random.default_rng([seed, 1]))
        self._noise_rng = np.random.default_rng([seed, 2])
        self._scene_rng = np.random.default_rng([seed, 3])
        jitter_rng = np.random.default_rng([seed, 4])
        self._periods = jitter_rng.uniform(300, 3000, 2)
        self._phases = jitter_rng.uniform(0, 2 * np.pi, 2)
        self.t0 = time.monotonic() if start_time is None else start_time
        self.line = 0
        self.placed: deque[Placed] = deque()
        self._next_start_mm = config.gap_mm[0]
        self._seq = 0
        self._arrivals: deque[tuple[int, Arrival]] = deque()  # (line at the photo-eye, arrival)

    # --- belt kinematics ------------------------------------------------------------------

    def belt_mm(self, lines: np.ndarray) -> np.ndarray:
        """Belt travel (mm) at line indices; speed wobbles by ``speed_jitter`` (rms)."""
        i = np.asarray(lines, dtype=np.float64)
        wobble = np.zeros_like(i)
        for period, phase in zip(self._periods, self._phases, strict=True):
            # Each sinusoid has unit rms speed share 1/sqrt(2); integrate speed to position.
            w = 2 * np.pi / period
            wobble += (np.cos(phase) - np.cos(w * i + phase)) / w
        return self.config.pitch_mm * (i + self.config.speed_jitter * wobble)

    def line_at_mm(self, mm: float) -> int:
        """First line whose belt travel reaches ``mm`` (belt speed stays positive)."""
        guess = int(mm / self.config.pitch_mm)
        span = np.arange(max(guess - 2000, 0), guess + 2000)
        return int(span[np.searchsorted(self.belt_mm(span), mm)])

    def encoder(self, lines: np.ndarray) -> np.ndarray:
        return np.floor(self.belt_mm(lines) * self.config.encoder_counts_per_mm).astype(np.int64)

    def encoder_now(self) -> int:
        """Encoder count of the belt at this instant (the clock the PLC's diverter runs on)."""
        line = (time.monotonic() - self.t0) * self.config.line_rate_hz
        return int(self.encoder(np.array([max(line, 0.0)]))[0])

    def time_of(self, lines: np.ndarray) -> np.ndarray:
        return self.t0 + np.asarray(lines, dtype=np.float64) / self.config.line_rate_hz

    # --- parcels ----------------------------------------------------------------------------

    def _place_next(self) -> None:
        cfg, rng = self.config, self._scene_rng
        threat = bool(rng.random() < cfg.threat_share)
        scene = blurred(compose_parcel(rng, self.geometry, threat, cfg.exclude_families),
                        cfg.blur_px)
        self._seq += 1
        parcel_id = f"EDG{cfg.seed % 100:02d}{self._seq:07d}"
        placed = Placed(parcel_id, self._seq, self._next_start_mm, scene, threat)
        self.placed.append(placed)
        while len(self.placed) > KEEP_PLACED:
            self.placed.popleft()
        touch = rng.random() < cfg.touch_share
        gap = 0.0 if touch else rng.uniform(*cfg.gap_mm)
        self._next_start_mm = placed.end_mm(cfg.pitch_mm) + gap
        photo_mm = placed.start_mm - cfg.camera_offset_mm
        line = self.line_at_mm(max(photo_mm, 0.0))
        # A parcel already past the photo-eye at power-up reports where its edge really was.
        encoder = int(self.encoder(np.array([line]))[0]) if photo_mm >= 0 else \
            int(np.floor(photo_mm * cfg.encoder_counts_per_mm))
        self._arrivals.append((line, Arrival(float(self.time_of(line)), encoder, parcel_id,
                                             scene.size_mm, scene.kind)))

    def parcels(self) -> Iterator[Placed]:
        """Every parcel in belt order, placed on demand (without scanning the lines between)."""
        seq = 1
        while True:
            while self._seq < seq:
                self._place_next()
            yield next(p for p in self.placed if p.seq == seq)
            seq += 1

    def span_of(self, placed: Placed, margin_mm: float) -> tuple[int, int]:
        """(first line, line count) that see ``placed`` with ``margin_mm`` of belt each side."""
        first = self.line_at_mm(max(placed.start_mm - margin_mm, 0.0))
        last = self.line_at_mm(placed.end_mm(self.config.pitch_mm) + margin_mm)
        return first, last - first + 1

    def poll_events(self) -> list[Arrival]:
        """Parcels whose leading edge has passed the camera by the current line."""
        out = []
        while self._arrivals and self._arrivals[0][0] < self.line:
            out.append(self._arrivals.popleft()[1])
        return out

    # --- lines ------------------------------------------------------------------------------

    def ideal_lines(self, first: int, count: int) -> tuple[np.ndarray, np.ndarray]:
        """Noise-free log-attenuation (lo, hi) float32 [count, n_pixels] of lines."""
        pitch = self.config.pitch_mm
        s = self.belt_mm(np.arange(first, first + count))
        horizon = s[-1] + self.config.camera_offset_mm + pitch
        while self._next_start_mm <= horizon:
            self._place_next()
        att_lo = np.zeros((count, self.config.n_pixels), np.float32)
        att_hi = np.zeros_like(att_lo)
        for p in self.placed:
            if p.start_mm > s[-1] or p.end_mm(pitch) < s[0]:
                continue
            col = (s - p.start_mm) / pitch - 0.5  # pixel centres sit at half-integers
            inside = (col >= 0) & (col <= p.scene.width - 1)
            c = col[inside]
            c0 = np.minimum(np.floor(c).astype(np.int64), p.scene.width - 2)
            f = (c - c0).astype(np.float32)[:, None]
            for out, att in ((att_lo, p.scene.att_lo), (att_hi, p.scene.att_hi)):
                a0, a1 = att[:, c0].T, att[:, c0 + 1].T
                out[inside] += a0 * (1 - f) + a1 * f
        return att_lo, att_hi

    def scan(self, first: int, count: int) -> LineBlock:
        """Lines [first, first + count) as the detector delivers them (raw counts, noise)."""
        lines = np.arange(first, first + count)
        att_lo, att_hi = self.ideal_lines(first, count)
        hi, lo = self.detector.expose(att_lo, att_hi, self._noise_rng)
        return LineBlock(hi, lo, self.time_of(lines), self.encoder(lines))

    def read(self, count: int | None = None) -> LineBlock:
        """The next ``count`` lines (default: one block), paced to real time if configured."""
        block = self.scan(self.line, count or self.config.block_lines)
        self.line += len(block)
        behind = float(self.belt_mm(np.array([self.line]))[0]) - self.config.pitch_mm
        for p in self.placed:
            if p.scene.att_hi is not None and p.end_mm(self.config.pitch_mm) < behind:
                p.scene.release()
        if self.config.realtime:
            delay = float(self.time_of(np.array([self.line]))[0]) - time.monotonic()
            if delay > 0:
                time.sleep(delay)
        return block

    def close(self) -> None:
        pass

    def blocks(self) -> Iterator[LineBlock]:
        while True:
            yield self.read()

    def capture_calibration(self, lines: int, source_on: bool) -> LineBlock:
        """Lines of an empty belt (air, ``source_on``) or with the X-ray source off (dark)."""
        zeros = np.zeros((lines, self.config.n_pixels), np.float32)
        hi, lo = self.detector.expose(zeros, zeros, self._noise_rng, source_on=source_on)
        idx = np.arange(lines)
        return LineBlock(hi, lo, self.time_of(idx), np.zeros(lines, np.int64))

    # --- ground truth -----------------------------------------------------------------------

    def truth(self, first_line: int, count: int) -> list[Truth]:
        """Simulated parcels seen by lines [first_line, first_line + count), with their threat
        boxes mapped into that span (x in lines from ``first_line``)."""
        pitch = self.config.pitch_mm
        lines = np.arange(first_line, first_line + count)
        s = self.belt_mm(lines)
        out = []
        for p in self.placed:
            if p.start_mm > s[-1] or p.end_mm(pitch) < s[0]:
                continue
            col = (s - p.start_mm) / pitch  # scene x coordinate at each line
            local = np.arange(count, dtype=np.float64)
            boxes, items = p.scene.boxes.copy(), p.scene.item_boxes.copy()
            for b in (boxes, items):
                if len(b):
                    b[:, [0, 2]] = np.interp(b[:, [0, 2]], col, local)
            seen = np.nonzero((col >= 0) & (col <= p.scene.width))[0]
            out.append(Truth(p.id, boxes.astype(np.float32), list(p.scene.labels),
                             int(seen[0]) + first_line, int(seen[-1]) + first_line,
                             list(p.scene.grey_visible), list(p.scene.families),
                             items.astype(np.float32)))
        return out
