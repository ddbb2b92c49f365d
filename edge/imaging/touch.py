"""Where touching parcels meet: cut lines inside one run of occupied lines.

Input: the run's per-line edge profiles, float32 ``[n]`` each: ``top`` and ``bottom``, the first
and last pixel of the line's extent across the tunnel (equal on an empty line), in pixels.
Output: cut lines, indices into the run. Everything is vectorised over lines; the Python loops
run over candidate stretches (a handful per run).

Why these signs: in postal streams, parcels that touch are boxes or bags pushed together on the
belt. Their joint shows as a few empty lines (a gap shorter than min_gap), a square step in one
edge (boxes of other widths butted together, often aligned on the guide rail on the other side),
or a neck (the corners of two yawed boxes, the rounded ends of bags). Counting occupied pixels
per line would not do: an empty box shows only its side walls, so that count dips inside one
parcel, while its extent from wall to wall stays put.
"""

from __future__ import annotations

import numpy as np

STEADY = 3  # a side of a step fits a straight line to within jump / STEADY
NECK = 0.4  # a neck is narrower than this share of the extent on both sides
PARALLEL = 6  # px the two sides of a box may drift apart over a window (yaw, blur)
GUARD = 3  # lines either side of a cut that its windows skip (blur, box corners)


def runs(mask: np.ndarray) -> np.ndarray:
    """int64 ``[k, 2]`` (start, stop) of the runs of True in a 1D bool array."""
    edges = np.diff(np.concatenate([[0], mask.astype(np.int8), [0]]))
    return np.stack([np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)], axis=1)


def touch_cuts(top: np.ndarray, bottom: np.ndarray, jump_px: float, min_len: int) -> list[int]:
    """Lines (indices into a run) where touching parcels meet, from the run's edge profiles
    ``[n]``. Three signs, strongest first:
    - a *gap*: lines with no edge at all (shorter than min_gap, or the run would have ended);
      a box or bag always shows its walls or rim, so an empty line is between two parcels;
    - a *step*: the top or the bottom edge is steady and parallel to the other edge, jumps by
      more than ``jump_px`` (at least half of it from one line to the next) and is steady and
      parallel to the other edge again (boxes butted square);
    - a *neck*: the extent across the tunnel drops below NECK of its typical value on both
      sides (the corners of two yawed boxes, the rounded ends of bags).
    A parcel's own rounded or yawed ends narrow monotonically, so they are no neck; bulges and
    contents ramp, and a bag's rounded end runs askew to its far side, so they are no step.
    Both pieces of a cut must be ``min_len`` lines or more.
    """
    n = len(top)
    cuts: list[int] = []
    for line in [*_gap_cuts(bottom - top), *_shape_cuts(top, bottom, jump_px, min_len)]:
        if min_len <= line <= n - min_len and all(abs(line - c) >= min_len for c in cuts):
            cuts.append(line)
    return sorted(cuts)


def _gap_cuts(extent: np.ndarray) -> list[int]:
    """Middles of the inner stretches of empty lines, longest first."""
    gaps = runs(extent <= 0)
    gaps = gaps[(gaps[:, 0] > 0) & (gaps[:, 1] < len(extent))]
    gaps = gaps[np.argsort(gaps[:, 0] - gaps[:, 1], kind="stable")]
    return ((gaps[:, 0] + gaps[:, 1]) // 2).tolist()


def _shape_cuts(top: np.ndarray, bottom: np.ndarray, jump_px: float, min_len: int
                ) -> list[int]:
    """Step and neck cuts, best first: one per stretch of candidate lines."""
    steps = _step_scores(top, bottom, jump_px, min_len)
    found = []
    for score, is_neck in ((steps, False), (_neck_scores(bottom - top, min_len), True)):
        for a, b in runs(score > 0).tolist():
            tied = np.flatnonzero(score[a:b] == score[a:b].max()) + a
            line = int(tied[len(tied) // 2])  # a plateau's middle
            found.append((float(score[line]), _refine(line, top, bottom, is_neck)))
    return [line for _, line in sorted(found, key=lambda f: -f[0])]


def _fits(edge: np.ndarray, w: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Straight lines fitted to each window of ``w`` lines: (mean, slope px / line, ptp of
    the residual), float ``[n - w + 1]`` each, indexed by window start."""
    win = np.lib.stride_tricks.sliding_window_view(edge, w)
    x = np.arange(w, dtype=np.float32) - (w - 1) / 2
    slope, mean = win @ x / (x @ x), win.mean(axis=1)
    return mean, slope, np.ptp(win - mean[:, None] - slope[:, None] * x, axis=1)


def _step_scores(top: np.ndarray, bottom: np.ndarray, jump_px: float, w: int) -> np.ndarray:
    """float32 ``[n]``: the jump at each line where the top or the bottom edge steps (else 0).
    Each side is a window of ``w`` lines, GUARD lines from the cut, where the stepping edge
    fits a straight line to within jump_px / STEADY (a yawed box edge slopes; a bulge does
    not fit) that runs parallel to the other edge's, to within PARALLEL px over the window.
    A box's two sides are parallel whatever its yaw; a bag's rounded end, or the item poking
    out past it, is not parallel to the bag's far side, though each may look straight."""
    n, g = len(top), GUARD
    score = np.zeros(n, np.float32)
    if n < 2 * (w + g) + 1:
        return score
    cut = np.arange(w + g, n - w - g + 1)
    before, after = cut - g - w, cut + g  # window starts
    (mt, st, rt), (mb, sb, rb) = _fits(top, w), _fits(bottom, w)
    parallel = np.abs(st - sb) * w <= PARALLEL
    for edge, mean, slope, resid in ((top, mt, st, rt), (bottom, mb, sb, rb)):
        jump = np.abs((mean[after] - slope[after] * (w - 1) / 2)
                      - (mean[before] + slope[before] * (w - 1) / 2))
        calm = (resid[before] <= jump_px / STEADY) & (resid[after] <= jump_px / STEADY)
        # Box walls make abrupt steps: half the jump or more from one line to the next.
        abrupt = _sliding_max(np.abs(np.diff(edge)), 2 * g)[cut - g] >= jump / 2
        ok = calm & abrupt & (jump > jump_px) & parallel[before] & parallel[after]
        score[cut] = np.maximum(score[cut], np.where(ok, jump, 0))
    return score


def _neck_scores(extent: np.ndarray, w: int) -> np.ndarray:
    """float32 ``[n]``: how far the extent near each line (within GUARD) falls below the
    typical extent on its narrower side, where below NECK of it. Typical is the 90th
    percentile of a window of ``w`` lines: a rounded end tapering inside the window leaves it
    near the parcel's full width."""
    n, g = len(extent), GUARD
    score = np.zeros(n, np.float32)
    if n < 2 * (w + g) + 1:
        return score
    typical = np.percentile(np.lib.stride_tricks.sliding_window_view(extent, w), 90, axis=1)
    cut = np.arange(w + g, n - w - g + 1)
    side = np.minimum(typical[cut - g - w], typical[cut + g])
    narrowest = -_sliding_max(-np.pad(extent, g, mode="edge"), 2 * g + 1)[cut]
    score[cut] = np.where(narrowest < NECK * side, side - narrowest, 0)
    return score


def _sliding_max(values: np.ndarray, w: int) -> np.ndarray:
    return np.lib.stride_tricks.sliding_window_view(values, w).max(axis=1)


def _refine(line: int, top: np.ndarray, bottom: np.ndarray, is_neck: bool) -> int:
    """The exact cut near ``line``: the narrowest line (neck, nearest the middle on ties) or
    the biggest edge jump (step) within GUARD lines."""
    lo, hi = line - GUARD, line + GUARD + 1
    if is_neck:
        near = (bottom - top)[lo:hi]
        best = np.flatnonzero(near == near.min())
        return lo + int(best[np.argmin(np.abs(best - GUARD))])
    step = np.maximum(np.abs(np.diff(top[lo - 1:hi])), np.abs(np.diff(bottom[lo - 1:hi])))
    return lo + int(np.argmax(step))
