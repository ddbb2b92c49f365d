"""Touch cuts on synthetic edge profiles (top and bottom of a run's lines, in pixels)."""

import numpy as np
import pytest

from edge.imaging.touch import touch_cuts

N = 600  # lines of the run
LINE = np.arange(N, dtype=np.float32)
JUMP_PX, MIN_LEN = 25.0, 60  # SegmentConfig's touch_jump_mm and min_length_mm at 1 mm pitch


def soft_bag(poke_from: int, poke_px: float, poke_slope: float) -> tuple[np.ndarray, np.ndarray]:
    """A 600-line bag (a superellipse of half-width 110 px about pixel 300) with an item
    poking ``poke_px`` past its bottom rim from line ``poke_from``, its edge sloping back
    into the rim by ``poke_slope`` px per line (as the simulator's bag corners show)."""
    u = (LINE + 0.5 - N / 2) / (N / 2)
    half = 110 * (1 - u ** 4) ** 0.25
    item = np.where(LINE >= poke_from, 300 + 110 + poke_px - poke_slope * (LINE - poke_from), 0)
    return (300 - half).astype(np.float32), np.maximum(300 + half, item).astype(np.float32)


def butted_boxes(slope: float, wider_px: float) -> tuple[np.ndarray, np.ndarray]:
    """Two boxes yawed alike (``slope`` px per line), butted at line 300 on the guide rail
    side (top), the second ``wider_px`` wider."""
    top = 100 + slope * LINE
    bottom = top + 150 + np.where(LINE < 300, 0, wider_px)
    return top.astype(np.float32), bottom.astype(np.float32)


@pytest.mark.parametrize(
    ("profiles", "cuts"),
    [
        # The bag's rounded end, then the poking item's edge: an abrupt jump of 35-40 px
        # between two stretches that each fit a straight line. Their far side, the bag's own
        # top, runs neither along the rounded end nor along the item: no box, no step.
        (soft_bag(90, 35, 0.25), []),
        (soft_bag(80, 30, 0.2), []),
        (soft_bag(100, 35, 0.3), []),
        # Boxes butted square: both sides of each are parallel, whatever the yaw.
        (butted_boxes(0.0, 40), [300]),
        (butted_boxes(0.1, 40), [300]),
        (butted_boxes(-0.2, -35), [300]),
        # Under the jump: one parcel.
        (butted_boxes(0.1, 20), []),
    ],
)
def test_steps(profiles, cuts):
    assert touch_cuts(*profiles, JUMP_PX, MIN_LEN) == cuts

