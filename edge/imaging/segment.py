"""Cut the corrected line stream into parcels.

A line is *occupied* when enough of its pixels attenuate above the empty-belt level. Runs of
occupied lines, with gaps shorter than ``min_gap`` bridged, are parcels; runs shorter than
``min_length`` are specks and dropped; runs longer than ``max_length`` are cut into pieces so
memory stays bounded. Touching parcels leave no empty line between them; they are split where
the parcel's extent across the tunnel jumps from one line to the next (two boxes side by side
rarely share both their top and bottom edges to the millimetre), and only where both pieces are
long enough to be parcels. Every decision is vectorised over lines; the Python loop runs over
runs (a few per parcel).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edge.config import SegmentConfig

MIN_PIXELS = 8  # occupied pixels for an occupied line: a few hot pixels are not a parcel


@dataclass
class Segment:
    """One parcel's lines. hi, lo: float32 [H = n_pixels, W = lines] (belt left to right);
    t, encoder: [W]; start_line: stream index of the first line."""

    hi: np.ndarray
    lo: np.ndarray
    t: np.ndarray
    encoder: np.ndarray
    start_line: int


def occupied(att_hi: np.ndarray, threshold: float) -> np.ndarray:
    """bool [rows]: lines [rows, n_pixels] with at least MIN_PIXELS pixels above threshold."""
    return np.count_nonzero(att_hi > threshold, axis=1) >= MIN_PIXELS


def runs(mask: np.ndarray) -> np.ndarray:
    """[k, 2] (start, stop) of the runs of True in a 1D bool array."""
    edges = np.diff(np.concatenate([[0], mask.astype(np.int8), [0]]))
    return np.stack([np.nonzero(edges == 1)[0], np.nonzero(edges == -1)[0]], axis=1)


def bridge(spans: np.ndarray, min_gap: int) -> np.ndarray:
    """Merge runs separated by fewer than ``min_gap`` empty lines."""
    if len(spans) < 2:
        return spans
    keep_break = (spans[1:, 0] - spans[:-1, 1]) >= min_gap
    starts = spans[np.concatenate([[True], keep_break]), 0]
    stops = spans[np.concatenate([keep_break, [True]]), 1]
    return np.stack([starts, stops], axis=1)


def edges(att_hi: np.ndarray, threshold: float) -> tuple[np.ndarray, np.ndarray]:
    """Top and bottom edge (pixel rows) of the occupied part of each line, float32 [rows];
    an empty line has top = bottom = the column's middle (zero extent). Edges need two
    neighbouring pixels above threshold, so a lone hot pixel is no edge."""
    single = att_hi > threshold
    above = np.zeros_like(single)
    above[:, :-1] = single[:, :-1] & single[:, 1:]
    n_pixels = above.shape[1]
    empty = ~above.any(axis=1)
    top = above.argmax(axis=1).astype(np.float32)
    bottom = (n_pixels - above[:, ::-1].argmax(axis=1)).astype(np.float32)
    top[empty] = bottom[empty] = n_pixels / 2
    return top, bottom


def touch_cuts(att_hi: np.ndarray, threshold: float, jump_px: int, min_len: int) -> list[int]:
    """Lines (relative to the run) where touching parcels meet. Two signs, either suffices:
    - a neck: the occupied extent across the tunnel drops below a third of its typical value
      on both sides (the corners of two yawed boxes, a sliver of belt between two bags);
    - a step: the top or bottom edge is steady, jumps by more than ``jump_px``, and is steady
      again (boxes of different sizes butted square).
    Rounded bag ends change steadily and sit at the run's ends; zips and handles are brief."""
    n = att_hi.shape[0]
    w, g = max(min_len // 2, 3), 3  # steady windows of w lines, g lines away from the cut
    if n < 2 * max(min_len, w + g) + 1:
        return []
    top, bottom = edges(att_hi, threshold)
    windows = np.lib.stride_tricks.sliding_window_view
    cut = np.arange(w + g, n - w - g + 1)
    score = np.zeros(len(cut), np.float32)
    for edge in (top, bottom):  # steps
        win = windows(edge, w)
        before, after = win[cut - g - w], win[cut + g]
        steady = (np.ptp(before, axis=1) <= jump_px / 3) & (np.ptp(after, axis=1) <= jump_px / 3)
        jump = np.abs(np.median(after, axis=1) - np.median(before, axis=1))
        score = np.maximum(score, np.where(steady & (jump > jump_px), 1 + jump, 0))
    extent = bottom - top  # necks
    typical = np.median(windows(extent, w), axis=1)
    side = np.minimum(typical[cut - g - w], typical[cut + g])
    neck = windows(np.pad(extent, g, mode="edge"), 2 * g + 1).min(axis=1)[cut]
    score = np.maximum(score, np.where(neck < side / 3, 1 + side - neck, 0))
    cuts: list[int] = []
    for i in np.argsort(-score):
        if score[i] <= 0:
            break
        line = int(cut[i])
        if min_len <= line <= n - min_len and all(abs(line - c) >= min_len for c in cuts):
            cuts.append(line)
    return sorted(cuts)


class Segmenter:
    """Streaming segmentation: ``feed`` corrected blocks, get the parcels they complete."""

    def __init__(self, config: SegmentConfig, pitch_mm: float):
        self.config = config
        mm = 1.0 / pitch_mm
        self.min_gap = max(1, round(config.min_gap_mm * mm))
        self.min_length = max(1, round(config.min_length_mm * mm))
        self.max_length = max(self.min_length + 1, round(config.max_length_mm * mm))
        self.margin = round(config.margin_mm * mm)
        self.jump_px = round(config.touch_jump_mm * mm)
        self._hi: list[np.ndarray] = []
        self._lo: list[np.ndarray] = []
        self._t: list[np.ndarray] = []
        self._enc: list[np.ndarray] = []
        self._occ: list[np.ndarray] = []
        self._first = 0  # stream index of the buffer's first line
        self._lines = 0  # stream lines seen

    def feed(self, att_hi, att_lo, t, encoder) -> list[Segment]:
        """Add one corrected block ([rows, n_pixels], t and encoder [rows])."""
        if att_hi.shape != att_lo.shape or att_hi.ndim != 2:
            raise ValueError(f"att_hi and att_lo must be 2D of one shape, got {att_hi.shape} "
                             f"and {att_lo.shape}")
        if len(t) != len(att_hi) or len(encoder) != len(att_hi):
            raise ValueError(f"t and encoder need {len(att_hi)} entries, got {len(t)} and "
                             f"{len(encoder)}")
        self._hi.append(att_hi)
        self._lo.append(att_lo)
        self._t.append(np.asarray(t))
        self._enc.append(np.asarray(encoder))
        self._occ.append(occupied(att_hi, self.config.threshold))
        self._lines += len(att_hi)
        return self._emit(final=False)

    def flush(self) -> list[Segment]:
        """End of stream: emit whatever parcel is still open."""
        return self._emit(final=True)

    def _emit(self, final: bool) -> list[Segment]:
        if not self._occ:
            return []
        hi, lo = np.concatenate(self._hi), np.concatenate(self._lo)
        t, enc, occ = np.concatenate(self._t), np.concatenate(self._enc), np.concatenate(self._occ)
        n = len(occ)
        out: list[Segment] = []
        keep_from = max(n - self.margin - self.min_gap, 0)  # older lines: no future run needs
        for start, stop in bridge(runs(occ), self.min_gap):
            start, stop = int(start), int(stop)
            closed = final or n - stop >= self.min_gap
            # Over-long runs leave in pieces of max_length, whether closed or still growing.
            while stop - start > self.max_length:
                out += self._pieces(hi, lo, t, enc, start, start + self.max_length)
                occ[start:start + self.max_length] = False
                start += self.max_length
            if not closed:
                keep_from = min(keep_from, max(start - self.margin, 0))
                break
            if stop - start >= self.min_length:
                out += self._pieces(hi, lo, t, enc, start, stop)
            occ[start:stop] = False  # emitted or dropped: never again
        keep = slice(keep_from, n)
        self._hi, self._lo, self._t, self._enc = [hi[keep]], [lo[keep]], [t[keep]], [enc[keep]]
        self._occ = [occ[keep]]
        self._first += keep_from
        return out

    def _pieces(self, hi, lo, t, enc, start: int, stop: int) -> list[Segment]:
        cuts = touch_cuts(hi[start:stop], self.config.threshold, self.jump_px,
                            self.min_length)
        bounds = [start, *(start + c for c in cuts), stop]
        segments = []
        for a, b in zip(bounds[:-1], bounds[1:], strict=True):
            # Margins of empty belt, but never into a touching neighbour.
            lo_edge = a - self.margin if a == start else a
            hi_edge = b + self.margin if b == stop else b
            span = slice(max(lo_edge, 0), min(hi_edge, len(t)))
            segments.append(Segment(np.ascontiguousarray(hi[span].T),
                                    np.ascontiguousarray(lo[span].T), t[span].copy(),
                                    enc[span].copy(), self._first + span.start))
        return segments
