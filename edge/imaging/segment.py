"""Cut the corrected line stream into parcels.

Input: corrected blocks, float32 ``[rows, n_pixels]`` log-attenuation with t (s) and encoder
counts per line. Output: ``Segment`` in parcel image layout ``[H = n_pixels, W = lines]``.

Each line gets three numbers when it arrives, vectorised over the block: *occupied* (at least
``min_pixels`` pixels above the threshold: its k-th highest pixel decides, so a few hot pixels
never make a parcel, while the two side walls of an empty box still do) and the *top* and
*bottom* of its extent across the tunnel (first / last pixel where EDGE_PIXELS pixels above the
threshold have accumulated from that side). Everything after works on those 1D profiles:

- runs of occupied lines, with gaps shorter than ``min_gap`` bridged, are parcels; runs shorter
  than ``min_length`` are specks and dropped; ``margin`` lines of belt are kept on each side;
- a run is emitted once ``max(min_gap, margin)`` empty lines follow it (or at ``flush``); a run
  reaching ``max_length`` is emitted in pieces as it grows, so memory stays bounded;
- touching parcels are split inside a run (``edge.imaging.touch``), without margins at the cut.

Lines are never lost: pieces of one run tile it exactly. The Python loops run over runs.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edge.config import SegmentConfig
from edge.imaging.touch import runs, touch_cuts

EDGE_PIXELS = 3  # pixels above threshold that make an edge: one or two hot pixels do not


@dataclass
class Segment:
    """One parcel's lines. hi, lo: float32 ``[H = n_pixels, W = lines]`` log-attenuation (the
    belt runs left to right); t: float64 ``[W]`` seconds; encoder: int64 ``[W]`` counts;
    start_line: stream index of the first line (column 0)."""

    hi: np.ndarray
    lo: np.ndarray
    t: np.ndarray
    encoder: np.ndarray
    start_line: int

    @property
    def stop_line(self) -> int:
        """Stream index one past the last line."""
        return self.start_line + self.hi.shape[1]


def line_profiles(att_hi: np.ndarray, threshold: float, min_pixels: int
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(occupied bool, top float32, bottom float32), each ``[rows]``, of lines
    ``[rows, n_pixels]``. An empty line has top = bottom = the middle of the column."""
    above = att_hi > threshold
    n = above.shape[1]
    from_top = np.cumsum(above, axis=1, dtype=np.int32)
    count = from_top[:, -1]
    has_edge = count >= EDGE_PIXELS
    top = np.argmax(from_top >= EDGE_PIXELS, axis=1).astype(np.float32)
    # Bottom: the last pixel with EDGE_PIXELS or more above threshold at or below it.
    from_bottom = count[:, None] - from_top + above
    bottom = (n - np.argmax(from_bottom[:, ::-1] >= EDGE_PIXELS, axis=1)).astype(np.float32)
    top[~has_edge] = bottom[~has_edge] = n / 2
    return count >= min_pixels, top, bottom


def bridge(spans: np.ndarray, min_gap: int) -> np.ndarray:
    """Merge runs ``[k, 2]`` separated by fewer than ``min_gap`` empty lines."""
    if len(spans) < 2:
        return spans
    keep_break = (spans[1:, 0] - spans[:-1, 1]) >= min_gap
    starts = spans[np.concatenate([[True], keep_break]), 0]
    stops = spans[np.concatenate([keep_break, [True]]), 1]
    return np.stack([starts, stops], axis=1)


class Segmenter:
    """Streaming segmentation: ``feed`` corrected blocks, get the parcels they complete;
    ``flush`` at the end of the stream for the last one.

    Lengths come from ``config`` in mm and turn into lines at ``pitch_mm`` per line. Holds at
    most about max_length + margin + min_gap lines plus one block."""

    def __init__(self, config: SegmentConfig, pitch_mm: float):
        if not pitch_mm > 0:
            raise ValueError(f"pitch_mm must be > 0, got {pitch_mm}")
        self.config = config
        per_mm = 1.0 / pitch_mm  # lines per mm of belt, and pixels per mm across it
        self.min_gap = max(1, round(config.min_gap_mm * per_mm))
        self.min_length = max(1, round(config.min_length_mm * per_mm))
        self.max_length = max(self.min_length, round(config.max_length_mm * per_mm))
        self.margin = round(config.margin_mm * per_mm)
        self.jump_px = config.touch_jump_mm * per_mm
        self._n_pixels: int | None = None
        self._blocks: list[tuple[int, np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = []
        self._occ = np.zeros(0, bool)
        self._top = self._bottom = np.zeros(0, np.float32)
        self._first = 0  # stream index of buffer line 0
        self._lines = 0  # stream lines fed
        self._cont = False  # buffer line 0 continues a parcel already partly emitted

    @property
    def buffered(self) -> int:
        """Lines held back, waiting for their parcel (or its trailing margin) to end."""
        return len(self._occ)

    def feed(self, att_hi: np.ndarray, att_lo: np.ndarray, t: np.ndarray,
             encoder: np.ndarray) -> list[Segment]:
        """Add one corrected block (``[rows, n_pixels]``, t and encoder ``[rows]``); returns
        the segments it completes, in stream order."""
        att_hi, att_lo = np.asarray(att_hi, np.float32), np.asarray(att_lo, np.float32)
        t, encoder = np.asarray(t, np.float64), np.asarray(encoder, np.int64)
        self._check(att_hi, att_lo, t, encoder)
        occ, top, bottom = line_profiles(att_hi, self.config.threshold, self.config.min_pixels)
        # Copies: the caller may reuse its arrays for the next block.
        self._blocks.append((self._lines, att_hi.copy(), att_lo.copy(), t.copy(), encoder.copy()))
        self._occ = np.concatenate([self._occ, occ])
        self._top = np.concatenate([self._top, top])
        self._bottom = np.concatenate([self._bottom, bottom])
        self._lines += len(att_hi)
        return self._emit(final=False)

    def flush(self) -> list[Segment]:
        """End of stream: emit every parcel still open (its trailing margin as far as it got)."""
        out = self._emit(final=True)
        self._cont = False
        return out

    def discard(self) -> None:
        """A break in the stream (positions jumped, lines lost): forget every buffered line,
        so a parcel fed partly before the break is never emitted with positions after it."""
        self._drop(len(self._occ))
        self._cont = False

    def _check(self, att_hi, att_lo, t, encoder) -> None:
        if att_hi.shape != att_lo.shape or att_hi.ndim != 2:
            raise ValueError(f"att_hi and att_lo must be 2D [rows, n_pixels] of one shape, got "
                             f"shapes {att_hi.shape} and {att_lo.shape}")
        rows = att_hi.shape[0]
        if t.shape != (rows,) or encoder.shape != (rows,):
            raise ValueError(f"t and encoder need {rows} entries (one per line), got shapes "
                             f"{t.shape} and {encoder.shape}")
        if self._n_pixels not in (None, att_hi.shape[1]):
            raise ValueError(f"block has {att_hi.shape[1]} pixels per line, the stream so far "
                             f"{self._n_pixels}")
        self._n_pixels = att_hi.shape[1]

    def _spans(self) -> tuple[np.ndarray, bool]:
        """Bridged runs of the buffer, and whether the first continues an emitted piece. A
        continued parcel counts as occupied just before line 0, so it bridges into the buffer."""
        occ = np.concatenate([[True], self._occ]) if self._cont else self._occ
        spans = bridge(runs(occ), self.min_gap) - (1 if self._cont else 0)
        if self._cont:
            spans[0, 0] = 0
        return spans, self._cont

    def _emit(self, final: bool) -> list[Segment]:
        n = len(self._occ)
        spans, cont = self._spans()
        out: list[Segment] = []
        keep_from, self._cont = max(n - self.margin, 0), False
        for i, (start, stop) in enumerate(spans.tolist()):
            continued = cont and i == 0
            lead = start if continued else max(start - self.margin, spans[i - 1, 1] if i else 0)
            if not (final or n - stop >= max(self.min_gap, self.margin)):
                rest = self._emit_open(start, stop, lead, out)
                keep_from, self._cont = (rest, True) if rest > start else (lead, continued)
                break
            if stop - start >= self.min_length or (continued and stop > start):
                trail = min(stop + self.margin, spans[i + 1, 0] if i + 1 < len(spans) else n)
                out += self._pieces(self._bounds(start, stop), lead, trail)
        self._drop(keep_from)
        return out

    def _emit_open(self, start: int, stop: int, lead: int, out: list[Segment]) -> int:
        """Emit the leading pieces of a run still growing once it exceeds max_length; returns
        where the rest of the run now starts."""
        while stop - start > self.max_length:
            cuts = [c for c in self._bounds(start, stop)[1:-1] if c - start <= self.max_length]
            end = cuts[-1] if cuts else start + self.max_length
            bounds = [start, *cuts] if cuts else [start, end]
            out += self._pieces(bounds, lead, end)
            start = lead = end
        return start

    def _bounds(self, start: int, stop: int) -> list[int]:
        """Piece borders of run [start, stop): touch cuts, then max_length chunks."""
        cuts = touch_cuts(self._top[start:stop], self._bottom[start:stop], self.jump_px,
                          self.min_length)
        bounds = [start]
        for end in [*(start + c for c in cuts), stop]:
            bounds += list(range(bounds[-1] + self.max_length, end, self.max_length)) + [end]
        return bounds

    def _pieces(self, bounds: list[int], lead: int, trail: int) -> list[Segment]:
        """Segments between consecutive ``bounds``, the first widened to ``lead``, the last to
        ``trail`` (margins); pieces meeting at a cut get no margin into each other."""
        edges = [lead, *bounds[1:-1], trail]
        return [self._segment(a, b) for a, b in zip(edges[:-1], edges[1:], strict=True)]

    def _segment(self, a: int, b: int) -> Segment:
        """Buffer lines [a, b) as a Segment in parcel layout."""
        first, last = self._first + a, self._first + b
        hi = lo = None
        t, enc = np.empty(b - a, np.float64), np.empty(b - a, np.int64)
        for start, bh, bl, bt, be in self._blocks:
            s0, s1 = max(first, start), min(last, start + len(bt))
            if s0 >= s1:
                continue
            if hi is None:
                hi = np.empty((bh.shape[1], b - a), np.float32)
                lo = np.empty_like(hi)
            src, dst = slice(s0 - start, s1 - start), slice(s0 - first, s1 - first)
            hi[:, dst], lo[:, dst] = bh[src].T, bl[src].T
            t[dst], enc[dst] = bt[src], be[src]
        return Segment(hi, lo, t, enc, first)

    def _drop(self, keep_from: int) -> None:
        """Forget buffer lines before ``keep_from``."""
        if keep_from <= 0:
            return
        self._first += keep_from
        self._occ, self._top = self._occ[keep_from:], self._top[keep_from:]
        self._bottom = self._bottom[keep_from:]
        self._blocks = [b for b in self._blocks if b[0] + len(b[3]) > self._first]
