"""The fail-closed state of the host: one place where every output-path fault lands.

Any fault (a command lost, a too-late NAK, a silent PLC, a STATUS saying the PLC's watchdog
tripped, an exception in a stage, a full detector queue, a stalled scanner) calls ``fault``:
the alarm is counted and logged, and the host fails closed for ``hold_s`` after the last
fault. While it does, ``on_change(True)`` has told the PLC link, whose heartbeats then say
FAIL_CLOSED: the PLC diverts every parcel and forgets the releases it holds. Inspection goes
on meanwhile; only releases made after the state clears let parcels pass.
"""

from __future__ import annotations

import bisect
import threading
import time
from collections import Counter, deque
from collections.abc import Callable


class FailSafe:
    def __init__(self, hold_s: float, log: Callable[[str], None] = print,
                 on_change: Callable[[bool], None] | None = None,
                 clock: Callable[[], float] = time.monotonic):
        if hold_s <= 0:
            raise ValueError(f"hold_s must be > 0, got {hold_s}")
        self.hold_s, self.log, self.on_change, self.clock = hold_s, log, on_change, clock
        self.kinds: Counter[str] = Counter()   # alarms by kind
        self.times: deque[float] = deque(maxlen=10_000)   # of the latest alarms, ascending
        self._active = False
        self._until = 0.0
        self._since = 0.0
        self._closed_s = 0.0
        self._told: set[str] = set()           # kinds logged in this episode
        self._lock = threading.Lock()

    @property
    def active(self) -> bool:
        return self._active

    def fault(self, kind: str, detail: str) -> None:
        """Count and log an alarm, and fail closed until ``hold_s`` after the last one."""
        with self._lock:
            now = self.clock()
            self.kinds[kind] += 1
            self.times.append(now)
            self._until = now + self.hold_s
            started = not self._active
            if started:
                self._active, self._since, self._told = True, now, set()
            tell = kind not in self._told
            self._told.add(kind)
        if tell:   # one line per kind and episode: a bad line must not flood the log
            self.log(f"ALARM {kind}: {detail}" + ("; failing closed (the PLC diverts every "
                                                   "parcel)" if started else ""))
        if started and self.on_change:
            self.on_change(True)

    def tick(self) -> None:
        """Clear the state once ``hold_s`` has passed without a fault (the watcher calls it)."""
        with self._lock:
            now = self.clock()
            ended = self._active and now >= self._until
            if ended:
                self._active = False
                self._closed_s += now - self._since
        if ended:
            self.log("fail-closed state cleared: parcels inspected from now on may pass")
            if self.on_change:
                self.on_change(False)

    def first_alarm_after(self, t: float) -> float | None:
        """The time of the first alarm at or after ``t`` (among the latest 10,000)."""
        with self._lock:
            times = list(self.times)
        i = bisect.bisect_left(times, t)
        return times[i] if i < len(times) else None

    def summary(self) -> dict:
        with self._lock:
            closed = self._closed_s + (self.clock() - self._since if self._active else 0.0)
            return {"alarms": sum(self.kinds.values()), "alarm_kinds": dict(self.kinds),
                    "fail_closed_s": round(closed, 2), "fail_closed_now": self._active}
