"""Fault injection, as a feature: ``edge run --fault NAME[=VALUE]`` or a ``faults:`` section.

Every fault the live loop must survive can be switched on in the embedded demo, so a hub
engineer can watch the line fail closed, and ``edge bench faults`` can soak each one. Shares
are in [0, 1]; durations in seconds start ``at_s`` seconds into the run. Names are given with
hyphens on the command line (``drop-acks=0.5``) and underscores in YAML (``drop_acks: 0.5``).
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass

from edge.config import FaultsConfig


def parse_fault(text: str) -> tuple[str, object]:
    """``NAME[=VALUE]`` -> (config field, value); a bare NAME means 1 (a share of all, a
    second, or on). Raises ValueError naming the valid names."""
    name, _, value = text.partition("=")
    key = name.strip().replace("-", "_")
    fields = [f for f in FaultsConfig.model_fields if f != "at_s"]
    if key not in fields and key != "at_s":
        raise ValueError(f"unknown fault {name!r}; valid: "
                         f"{', '.join(f.replace('_', '-') for f in fields)}, at-s")
    return key, value.strip() if value else "1"


class InjectedCrash(BaseException):
    """What ``detector-crash`` raises: not an ``Exception``, so it ends the thread it runs in
    as an interpreter-level failure would, and the supervisor must restart that thread."""


@dataclass
class Window:
    """A timed fault: on from ``start`` for ``length`` seconds (monotonic clock)."""

    start: float
    length: float
    fired: bool = False

    def on(self, now: float) -> bool:
        return self.length > 0 and self.start <= now < self.start + self.length

    def fire_once(self, now: float) -> bool:
        """True the first time it is asked at or after ``start``."""
        if self.length <= 0 or self.fired or now < self.start:
            return False
        self.fired = True
        return True


class Faults:
    """The live side of ``FaultsConfig``: pure decisions the live loop asks at its hook
    points (labels, photos, line blocks, detector calls, timed PLC events)."""

    def __init__(self, config: FaultsConfig, seed: int = 0):
        self.config = config
        self._rng = random.Random(seed)
        self.restart_clock()

    def restart_clock(self, now: float | None = None) -> None:
        """Timed faults begin ``at_s`` after ``now`` (the start of the run)."""
        c = self.config
        t0 = (time.monotonic() if now is None else now) + c.at_s
        self.camera = Window(t0, c.camera_down)
        self.stall = Window(t0, c.scanner_stall)
        self.glitch = Window(t0, 1.0 if c.encoder_glitch else 0.0)
        self.detector_hang = Window(t0, c.detector_stall)
        self.crash = Window(t0, c.detector_crash)
        self.silent = Window(t0, c.plc_silent)
        self.port = Window(t0, c.port_loss)
        self.restart = Window(t0, 1.0 if c.plc_restart_memory else 0.0)
        self.modbus = Window(t0, c.modbus_timeout)

    def label(self, label: str | None) -> str | None:
        """The label as the faulty reader returns it."""
        c, draw = self.config, self._rng.random
        if label is None:
            return None
        if c.unreadable_label and draw() < c.unreadable_label:
            return None
        if c.long_label and draw() < c.long_label:
            label = "9205" + "5" * 18 + label  # 22 more digits: an IMpb-sized number
        if c.non_ascii_label and draw() < c.non_ascii_label:
            label = "É" + label
        return label

    def plc_options(self) -> dict:
        """Line faults for the simulated PLC's constructor."""
        c = self.config
        return {"noise": c.noise, "corrupt": c.corrupt, "drop_acks": c.drop_acks,
                "ack_delay_s": c.ack_delay, "nak_busy": c.nak_busy}
