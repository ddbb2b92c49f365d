"""The simulated belt PLC over real pseudo-terminals, driven by the real host ``PlcLink``."""

import contextlib
import os
import random
import threading
import time

import pytest
import serial

from edge.plc import frames
from edge.plc.frames import Frame, Kind, NakReason
from edge.plc.link import PlcLink
from edge.plc.sim import SimPlc

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


def wait_until(condition, timeout=2.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if condition():
            return True
        time.sleep(0.005)
    return condition()


def new_link(sim):
    # Many attempts: on a loaded machine a command must never be given up on in these tests.
    return PlcLink(sim.path, ack_timeout_s=0.05, max_attempts=20, heartbeat_s=0.05).start()


@contextlib.contextmanager
def plc_and_host(before_host=None, **sim_args):
    """A belt, a started sim and a host link on it; ``before_host(sim)`` runs in between."""
    belt = Belt()
    sim = SimPlc(belt, counts_per_mm=COUNTS_PER_MM, watchdog_s=0.3, **sim_args).start()
    if before_host:
        before_host(sim)
    link = new_link(sim)
    try:
        yield belt, sim, link
    finally:
        link.stop()
        sim.stop()


def ids(n, prefix="EDG"):
    return [f"{prefix}{k:09d}" for k in range(n)]


def test_commanded_parcels_diverted_others_pass():
    with plc_and_host() as (belt, sim, link):
        parcels = ids(6)
        commanded = parcels[::2]
        for n, parcel_id in enumerate(parcels):
            edge = belt.ahead(400 + 100 * n)
            sim.expect(parcel_id, edge)
            if parcel_id in commanded:
                link.divert(parcel_id, edge)
        assert wait_until(lambda: len(sim.outcomes()) == len(parcels))
        assert sim.outcomes() == {p: "diverted" if p in commanded else "passed" for p in parcels}
        assert sorted(sim.stats.applied) == commanded
        assert sim.stats.misfires == sim.stats.too_late == sim.stats.unexpected == 0
        assert link.unacked == 0 and link.stats.nak == 0 and link.stats.lost == []
        assert sim.stats.heartbeats_received > 0 and sim.stats.watchdog_trips == 0


def divert_all(belt, sim, link, parcels):
    """Command a divert for every parcel, 60 mm apart; wait until each reached the diverter
    and check it was diverted."""
    for n, parcel_id in enumerate(parcels):
        edge = belt.ahead(500 + 60 * n)
        sim.expect(parcel_id, edge)
        link.divert(parcel_id, edge)
    assert wait_until(lambda: link.unacked == 0)
    assert wait_until(lambda: len(sim.outcomes()) == len(parcels))
    assert set(sim.outcomes().values()) == {"diverted"}
    return parcels


def test_lost_acks_resent_and_applied_exactly_once():
    with plc_and_host(drop_acks=0.5, seed=1) as (belt, sim, link):
        parcels = divert_all(belt, sim, link, ids(8))
        assert sorted(sim.stats.applied) == parcels  # each once
        assert sim.stats.acks_dropped > 0 and sim.stats.duplicates > 0
        # Every resend reached the PLC as a duplicate, and nothing else did.
        assert wait_until(lambda: sim.stats.duplicates == link.stats.resent)
        assert link.stats.lost == []


def test_slow_plc_still_applies_every_command_once():
    with plc_and_host(ack_delay_s=0.03) as (belt, sim, link):
        parcels = divert_all(belt, sim, link, ids(8))
        assert sorted(sim.stats.applied) == parcels
        assert wait_until(lambda: sim.stats.duplicates == link.stats.resent)
        assert link.stats.lost == []


def test_too_late_command_is_refused_and_the_parcel_passes():
    with plc_and_host() as (belt, sim, link):
        edge = belt.ahead(20)
        sim.expect("EDGLATE", edge)
        assert wait_until(lambda: "EDGLATE" in sim.outcomes())
        link.divert("EDGLATE", edge)
        assert wait_until(lambda: link.unacked == 0)
        assert link.stats.nak == 1 and link.stats.acked == 0
        assert sim.stats.too_late == 1 and sim.stats.applied == []
        assert sim.outcomes() == {"EDGLATE": "passed"}


@pytest.mark.parametrize(
    ("offset_mm", "outcome", "misfires"),
    [
        (0, "diverted", 0),  # exactly on the leading edge
        (40, "diverted", 0),  # late, within the 60 mm tolerance
        (-40, "diverted", 0),  # early, within tolerance
        (200, "passed", 1),  # far too late: the pusher hits whatever follows
        (-200, "passed", 1),  # far too early: the pusher hits the gap or the one before
    ],
)
def test_commanded_position_against_true_leading_edge(offset_mm, outcome, misfires):
    with plc_and_host() as (belt, sim, link):
        edge = belt.ahead(500)
        sim.expect("EDG000000001", edge)
        link.divert("EDG000000001", edge + round(offset_mm * COUNTS_PER_MM))
        assert wait_until(lambda: sim.outcomes() and (sim.stats.misfires or not misfires))
        assert sim.outcomes() == {"EDG000000001": outcome}
        assert sim.stats.misfires == misfires and sim.stats.unexpected == 0


def test_divert_for_a_parcel_the_photo_eye_missed_still_fires():
    with plc_and_host() as (belt, sim, link):
        link.divert("EDGUNSEEN", belt.ahead(100))
        assert wait_until(lambda: sim.stats.unexpected == 1)
        assert sim.stats.applied == ["EDGUNSEEN"] and sim.outcomes() == {}


def test_line_noise_does_not_stop_diverts():
    noise_port = []

    def open_noise_port(sim):  # before the host: opening a port flushes the shared input
        noise_port.append(serial.Serial(sim.path, timeout=0.02))

    with plc_and_host(before_host=open_noise_port) as (belt, sim, link):
        stop, rng = threading.Event(), random.Random(7)

        def spray():  # garbage between the host's frames, STX-rich to trip the hunt
            while not stop.is_set():
                burst = bytearray(rng.randbytes(rng.randint(1, 24)))
                burst[rng.randrange(len(burst))] = frames.STX
                noise_port[0].write(bytes(burst))
                time.sleep(0.003)

        sprayer = threading.Thread(target=spray, daemon=True)
        sprayer.start()
        try:
            parcels = ids(6)
            for n, parcel_id in enumerate(parcels):
                edge = belt.ahead(400 + 80 * n)
                sim.expect(parcel_id, edge)
                if n % 3:
                    link.divert(parcel_id, edge)
            assert wait_until(lambda: len(sim.outcomes()) == len(parcels))
        finally:
            stop.set()
            sprayer.join(1)
            noise_port[0].close()
        assert sim.outcomes() == {p: "diverted" if n % 3 else "passed"
                                  for n, p in enumerate(parcels)}
        assert sorted(sim.stats.applied) == [p for n, p in enumerate(parcels) if n % 3]
        assert sim.stats.watchdog_trips == 0 and link.stats.lost == []


def test_watchdog_fails_closed_without_a_host_and_clears_when_one_speaks():
    belt = Belt()
    with SimPlc(belt, counts_per_mm=COUNTS_PER_MM, watchdog_s=0.3) as sim:
        # No host since power-up: trip, and divert every parcel that arrives.
        assert wait_until(lambda: sim.stats.watchdog_tripped)
        sim.expect("EDGNOHOST", belt.ahead(20))
        assert wait_until(lambda: "EDGNOHOST" in sim.outcomes())
        link = new_link(sim)
        try:
            assert wait_until(lambda: not sim.stats.watchdog_tripped)
            sim.expect("EDGHOSTUP", belt.ahead(20))
            assert wait_until(lambda: "EDGHOSTUP" in sim.outcomes())
        finally:
            link.stop()
        # The host went away: trip again.
        assert wait_until(lambda: sim.stats.watchdog_tripped)
        sim.expect("EDGHOSTGONE", belt.ahead(20))
        assert wait_until(lambda: "EDGHOSTGONE" in sim.outcomes())
        assert sim.outcomes() == {"EDGNOHOST": "diverted", "EDGHOSTUP": "passed",
                                  "EDGHOSTGONE": "diverted"}
        assert sim.stats.watchdog_trips == 2 and sim.stats.applied == []


def test_raw_line_bad_payloads_refused_heartbeat_and_status_sent():
    with SimPlc(Belt(), counts_per_mm=COUNTS_PER_MM) as sim:
        port = serial.Serial(sim.path, timeout=0.02)
        try:
            bad = {
                7: b"\x00\x01",  # too short
                8: bytes(9) + b"\x05EDG",  # ID length says 5, 3 follow
                9: bytes(9) + b"\x00",  # empty ID
                10: bytes(9) + b"\x02\xff\xfe",  # non-ASCII ID
            }
            for seq, payload in bad.items():
                port.write(Frame(seq, Kind.DIVERT, payload).encode())
            decoder, got = frames.Decoder(), []
            end = time.monotonic() + 2.0
            while time.monotonic() < end and (
                    len([f for f in got if f.kind == Kind.NAK]) < len(bad)
                    or not {Kind.HEARTBEAT, Kind.STATUS} <= {f.kind for f in got}):
                got += decoder.feed(port.read(256))
        finally:
            port.close()
        naks = {f.payload[0]: f.payload[1] for f in got if f.kind == Kind.NAK}
        assert naks == {seq: NakReason.BAD_PAYLOAD for seq in bad}
        assert {Kind.HEARTBEAT, Kind.STATUS} <= {f.kind for f in got}
        assert sim.stats.bad_payload == len(bad) and sim.stats.applied == []


def test_stop_closes_the_port_and_the_host_survives():
    with plc_and_host() as (belt, sim, link):
        path = sim.path
        assert wait_until(lambda: sim.stats.heartbeats_received > 0)
        sim.stop()
        sim.stop()  # idempotent
        assert wait_until(lambda: not os.path.exists(path))  # once the host let go of it
        link.divert("EDGQUEUED", belt.ahead(1000))  # kept by the host, nothing crashes
        time.sleep(0.1)
        assert link.unacked == 1


@pytest.mark.parametrize(
    ("name", "value"),
    [("counts_per_mm", 0), ("watchdog_s", -1), ("remember", 0), ("drop_acks", 1.5),
     ("ack_delay_s", -0.1), ("tolerance_mm", -1)],
)
def test_bad_arguments_named(name, value):
    args = {"counts_per_mm": COUNTS_PER_MM, name: value}
    with pytest.raises(ValueError, match=name):
        SimPlc(Belt(), **args)
