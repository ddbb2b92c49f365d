"""The simulated belt PLC over real pseudo-terminals, driven by the real host ``PlcLink``."""

import contextlib
import os
import random
import threading
import time

import pytest
import serial
from belt import COUNTS_PER_MM, Belt, wait_until

from edge.plc import frames
from edge.plc.frames import RELEASE, DivertAll, Frame, Kind, NakReason
from edge.plc.link import Outcome, PlcLink
from simulator.plc import SimPlc


def new_link(sim, **kwargs):
    # Many attempts: on a loaded machine a command must never be given up on in these tests.
    args = {"ack_timeout_s": 0.05, "max_attempts": 40, "heartbeat_s": 0.05} | kwargs
    return PlcLink(sim.path, **args).start()


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


def command_all(belt, sim, link, parcels, lane=RELEASE, spacing_mm=60):
    """One command for every parcel, ``spacing_mm`` apart; wait until each reached the
    diverter; returns the outcomes."""
    for n, parcel_id in enumerate(parcels):
        edge = belt.ahead(1200 + spacing_mm * n)
        sim.expect(parcel_id, edge)
        link.send(n + 1, edge, lane, parcel_id)
    assert wait_until(lambda: link.unacked == 0)
    assert wait_until(lambda: len(sim.outcomes()) == len(parcels))
    return sim.outcomes()


def test_only_released_parcels_pass():
    with plc_and_host() as (belt, sim, link):
        parcels = ids(6)
        lanes = {parcels[0]: RELEASE, parcels[1]: 1, parcels[2]: RELEASE, parcels[3]: 2,
                 parcels[4]: RELEASE}   # parcels[5]: no command at all
        for n, parcel_id in enumerate(parcels):
            edge = belt.ahead(400 + 100 * n)
            sim.expect(parcel_id, edge)
            if parcel_id in lanes:
                link.send(n + 1, edge, lanes[parcel_id], parcel_id)
        assert wait_until(lambda: len(sim.outcomes()) == len(parcels))
        assert sim.outcomes() == {p: "passed" if lanes.get(p) == RELEASE else "diverted"
                                  for p in parcels}
        assert sorted(key for _, key in sim.stats.applied) == [1, 2, 3, 4, 5]
        assert sim.stats.misfires == sim.stats.too_late == sim.stats.unexpected == 0
        assert link.unacked == 0 and link.stats.nak == 0 and link.stats.lost == []
        assert sim.stats.heartbeats_received > 0 and sim.stats.watchdog_trips == 0


@pytest.mark.parametrize("sim_args", [
    {"drop_acks": 0.5, "seed": 1},    # lost ACKs: resends, applied once
    {"ack_delay_s": 0.03},            # a slow PLC, close to the ACK timeout
    {"nak_busy": 0.5, "seed": 2},     # a busy PLC: resent until taken
], ids=["lost-acks", "slow", "busy"])
def test_every_command_applied_exactly_once(sim_args):
    with plc_and_host(**sim_args) as (belt, sim, link):
        parcels = ids(8)
        assert set(command_all(belt, sim, link, parcels).values()) == {"passed"}
        assert sorted(key for _, key in sim.stats.applied) == list(range(1, 9))  # each once
        assert link.stats.lost == [] and link.stats.outcomes == {Outcome.ACKED: 8}
        if "drop_acks" in sim_args:
            assert sim.stats.acks_dropped > 0 and sim.stats.duplicates > 0
            # Every resend reached the PLC as a duplicate, and nothing else did.
            assert wait_until(lambda: sim.stats.duplicates == link.stats.resent)
        if "nak_busy" in sim_args:
            assert sim.stats.busy > 0 and link.stats.resent >= sim.stats.busy


def test_too_late_release_is_refused_and_the_parcel_diverted():
    with plc_and_host() as (belt, sim, link):
        done = []
        link.on_done = lambda command, outcome: done.append(outcome)
        edge = belt.ahead(20)
        sim.expect("EDGLATE", edge)
        assert wait_until(lambda: "EDGLATE" in sim.outcomes())
        link.send(1, edge, RELEASE, "EDGLATE")
        assert wait_until(lambda: link.unacked == 0)
        assert done == [Outcome.TOO_LATE] and link.stats.lost == [1]
        assert sim.stats.too_late == 1 and sim.stats.applied == []
        assert sim.outcomes() == {"EDGLATE": "diverted"}


@pytest.mark.parametrize(
    ("offset_mm", "outcome", "misfires"),
    [
        (0, "passed", 0),  # exactly on the leading edge
        (40, "passed", 0),  # late, within the 60 mm tolerance
        (-40, "passed", 0),  # early, within tolerance
        (200, "diverted", 1),  # far too late: a release for another position is not honoured
        (-200, "diverted", 1),  # far too early
    ],
)
def test_release_position_against_true_leading_edge(offset_mm, outcome, misfires):
    with plc_and_host() as (belt, sim, link):
        edge = belt.ahead(500)
        sim.expect("EDG000000001", edge)
        link.send(1, edge + round(offset_mm * COUNTS_PER_MM), RELEASE, "EDG000000001")
        assert wait_until(lambda: sim.outcomes() and (sim.stats.misfires or not misfires))
        assert sim.outcomes() == {"EDG000000001": outcome}
        assert sim.stats.misfires == misfires and sim.stats.unexpected == 0


def test_an_unread_label_is_matched_by_position():
    with plc_and_host() as (belt, sim, link):
        first, second = belt.ahead(400), belt.ahead(700)
        sim.expect("EDGFIRST", first)
        sim.expect("EDGSECOND", second)
        link.send(1, second + 20 * round(COUNTS_PER_MM), RELEASE, "UNREAD000002")
        assert wait_until(lambda: len(sim.outcomes()) == 2)
        assert sim.outcomes() == {"EDGFIRST": "diverted", "EDGSECOND": "passed"}


def test_commands_for_a_parcel_the_photo_eye_missed():
    with plc_and_host() as (belt, sim, link):
        link.send(1, belt.ahead(100), 1, "EDGUNSEEN")
        link.send(2, belt.ahead(150), RELEASE, "EDGUNSEEN2")
        assert wait_until(lambda: sim.stats.unexpected == 1)
        assert wait_until(lambda: not sim._held)
        assert sim.outcomes() == {} and sim.stats.unexpected == 1   # the release lapsed


def test_line_noise_does_not_stop_releases():
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
                    link.send(n + 1, edge, RELEASE, parcel_id)
            assert wait_until(lambda: len(sim.outcomes()) == len(parcels))
        finally:
            stop.set()
            sprayer.join(1)
            noise_port[0].close()
        assert sim.outcomes() == {p: "passed" if n % 3 else "diverted"
                                  for n, p in enumerate(parcels)}
        assert sim.stats.watchdog_trips == 0 and link.stats.lost == []


def test_watchdog_fails_closed_without_a_host_and_forgets_releases():
    belt = Belt()
    with SimPlc(belt, counts_per_mm=COUNTS_PER_MM, watchdog_s=0.3) as sim:
        # No host since power-up: trip, and divert every parcel that arrives.
        assert wait_until(lambda: sim.stats.watchdog_tripped)
        link = new_link(sim)
        try:
            assert wait_until(lambda: not sim.stats.watchdog_tripped)
            up, held = belt.ahead(60), belt.ahead(1500)
            sim.expect("EDGHOSTUP", up)
            sim.expect("EDGHELD", held)
            link.send(1, up, RELEASE, "EDGHOSTUP")
            link.send(2, held, RELEASE, "EDGHELD")
            assert wait_until(lambda: "EDGHOSTUP" in sim.outcomes())
        finally:
            link.stop()
        # The host went away: trip, and the release it had made for EDGHELD is forgotten.
        assert wait_until(lambda: sim.stats.watchdog_tripped)
        assert wait_until(lambda: "EDGHELD" in sim.outcomes(), timeout=3.0)
        assert sim.outcomes() == {"EDGHOSTUP": "passed", "EDGHELD": "diverted"}
        assert sim.stats.watchdog_trips == 2 and sim.stats.releases_dropped == 1


def test_a_restarted_host_is_never_taken_for_a_duplicate():
    """Two host sessions 0.1 s apart against one PLC: the second starts its keys and SEQs at
    1 again, and its first release must be applied (not ACKed as a repeat), while the
    release the first session made for a parcel still on the belt is forgotten."""
    with plc_and_host() as (belt, sim, first):
        early, late = belt.ahead(1500), belt.ahead(2500)
        sim.expect("EDGOLD", early)
        first.send(1, early, RELEASE, "EDGOLD")
        assert wait_until(lambda: first.unacked == 0)
        first.stop()
        time.sleep(0.1)
        second = new_link(sim)
        try:
            assert second.epoch != first.epoch
            sim.expect("EDGNEW", late)
            second.send(1, late, RELEASE, "EDGNEW")   # same key, same SEQ as the first's
            assert wait_until(lambda: len(sim.outcomes()) == 2, timeout=3.0)
        finally:
            second.stop()
        assert sim.stats.duplicates == 0
        assert sim.outcomes() == {"EDGOLD": "diverted", "EDGNEW": "passed"}
        assert sim.stats.sessions == 2 and sim.stats.releases_dropped == 1


def test_the_host_failing_closed_makes_the_plc_divert_everything():
    with plc_and_host() as (belt, sim, link):
        before, during = belt.ahead(1200), belt.ahead(1400)
        sim.expect("EDGBEFORE", before)
        sim.expect("EDGDURING", during)
        link.send(1, before, RELEASE, "EDGBEFORE")
        assert wait_until(lambda: link.unacked == 0)
        link.fail_closed = True
        link.send(2, during, RELEASE, "EDGDURING")
        assert wait_until(lambda: sim.stats.host_fail_closed)
        assert wait_until(lambda: link.plc_status is not None and link.plc_status.why
                          == DivertAll.HOST_FAIL_CLOSED)
        assert wait_until(lambda: len(sim.outcomes()) == 2, timeout=3.0)
        assert sim.outcomes() == {"EDGBEFORE": "diverted", "EDGDURING": "diverted"}
        link.fail_closed = False
        assert wait_until(lambda: not sim.stats.host_fail_closed)
        after = belt.ahead(300)
        sim.expect("EDGAFTER", after)
        link.send(3, after, RELEASE, "EDGAFTER")
        assert wait_until(lambda: "EDGAFTER" in sim.outcomes())
        assert sim.outcomes()["EDGAFTER"] == "passed"


def test_a_silent_plc_is_noticed_and_its_watchdog_reported():
    faults = []
    with plc_and_host() as (belt, sim, link):
        link.on_fault = lambda kind, detail: faults.append(kind)
        assert wait_until(lambda: link.plc_status is not None)
        sim.go_silent(1.0)
        assert wait_until(lambda: "plc-silent" in faults, timeout=2.0)
        assert wait_until(lambda: "plc-watchdog" in faults, timeout=2.0)   # once it speaks
        assert link.stats.silences >= 1 and link.stats.reconnects >= 1
        assert sim.stats.watchdog_trips == 1


def test_the_port_lost_and_back_keeps_queued_commands_and_expires_stale_ones():
    faults, done = [], {}
    with plc_and_host() as (belt, sim, link):
        link.on_fault = lambda kind, detail: faults.append(kind)
        link.on_done = lambda command, outcome: done.setdefault(command.key, outcome)
        sim.lose_port(0.6)
        assert wait_until(lambda: "port-gone" in faults or "plc-silent" in faults)
        stale = link.send(1, belt.ahead(5000), RELEASE, "EDGSTALE",
                          expires_at=time.monotonic() + 0.2)
        kept_edge = belt.ahead(3000)
        sim.expect("EDGKEPT", kept_edge)
        link.send(2, kept_edge, RELEASE, "EDGKEPT")
        assert wait_until(lambda: done.get(stale.key) == Outcome.EXPIRED)
        assert wait_until(lambda: done.get(2) == Outcome.ACKED, timeout=3.0)
        assert wait_until(lambda: "EDGKEPT" in sim.outcomes(), timeout=3.0)
        assert sim.outcomes()["EDGKEPT"] == "passed" and link.stats.reconnects >= 1
        assert link.stats.lost == [1]


def test_raw_line_bad_payloads_refused_heartbeat_and_status_sent():
    with SimPlc(Belt(), counts_per_mm=COUNTS_PER_MM) as sim:
        port = serial.Serial(sim.path, timeout=0.02)
        try:
            bad = {
                7: b"\x00\x01",  # too short
                8: bytes(17) + b"\x05EDG",  # label length says 5, 3 follow
                9: bytes(17) + bytes([41]) + b"1" * 41,  # label longer than the protocol's
            }
            for seq, payload in bad.items():
                port.write(Frame(seq, Kind.COMMAND, payload).encode())
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
        assert not os.path.exists(path)
        link.send(1, belt.ahead(1000), RELEASE, "EDGQUEUED")  # kept by the host
        time.sleep(0.1)
        assert link.unacked == 1


@pytest.mark.parametrize(
    ("name", "value"),
    [("counts_per_mm", 0), ("watchdog_s", -1), ("remember", 0), ("drop_acks", 1.5),
     ("ack_delay_s", -0.1), ("tolerance_mm", -1), ("nak_busy", 1.0)],
)
def test_bad_arguments_named(name, value):
    args = {"counts_per_mm": COUNTS_PER_MM, name: value}
    with pytest.raises(ValueError, match=name):
        SimPlc(Belt(), **args)


HOST = """
import sys, time
from edge.plc.link import PlcLink
link = PlcLink(sys.argv[1], heartbeat_s=0.05).start()
link.send(1, int(sys.argv[2]), 0, "EDGRELEASED")
while True:
    time.sleep(1)
"""


def test_a_host_killed_and_restarted_leaves_no_parcel_released_by_the_dead_one():
    """kill -9 of a real host process after the PLC applied its release, a new host 0.1 s
    later: the parcel the dead host released and the one it never commanded are diverted;
    only what the new session releases passes."""
    import signal
    import subprocess
    import sys

    with plc_and_host() as (belt, sim, _unused):
        _unused.stop()
        released, silent, fresh = belt.ahead(5000), belt.ahead(5200), belt.ahead(5700)
        for name, edge in (("EDGRELEASED", released), ("EDGNEVER", silent),
                           ("EDGFRESH", fresh)):
            sim.expect(name, edge)
        applied_before = len(sim.stats.applied)
        host = subprocess.Popen([sys.executable, "-c", HOST, sim.path, str(released)])
        try:
            assert wait_until(lambda: len(sim.stats.applied) > applied_before, timeout=5.0)
        finally:
            host.send_signal(signal.SIGKILL)
            host.wait()
        time.sleep(0.1)
        second = new_link(sim)
        try:
            second.send(1, fresh, RELEASE, "EDGFRESH")
            assert wait_until(lambda: len(sim.outcomes()) == 3, timeout=6.0)
        finally:
            second.stop()
        assert sim.outcomes() == {"EDGRELEASED": "diverted", "EDGNEVER": "diverted",
                                  "EDGFRESH": "passed"}
        assert sim.stats.duplicates == 0 and sim.stats.releases_dropped >= 1
