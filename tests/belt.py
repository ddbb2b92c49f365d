"""A fake belt encoder and a polling wait, shared by the simulated-PLC tests."""

import time

SPEED_MM_S = 2000.0  # a fast belt keeps the tests short
COUNTS_PER_MM = 10.0


class Belt:
    """Fake belt encoder: counts since construction at SPEED_MM_S; thread-safe."""

    def __init__(self):
        self.t0 = time.monotonic()

    def __call__(self) -> int:
        return int((time.monotonic() - self.t0) * SPEED_MM_S * COUNTS_PER_MM)

    def ahead(self, mm: float) -> int:
        """Encoder count at which a point ``mm`` upstream of the diverter reaches it."""
        return self() + round(mm * COUNTS_PER_MM)


def wait_until(condition, timeout=3.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if condition():
            return True
        time.sleep(0.005)
    return condition()
