"""The host PLC link over a real pseudo-terminal pair, against a scripted PLC peer."""

import os
import select
import threading
import time
import tty

import pytest
from belt import wait_until

from edge.plc import frames
from edge.plc.frames import RELEASE, Command, DivertAll, Kind
from edge.plc.link import MAX_IN_FLIGHT, Outcome, PlcLink


class Peer:
    """The PLC end of a pty: decodes frames, ACKs commands, applies each (epoch, key) once.
    ``drop_commands`` / ``drop_acks`` lose that many of the first ones; ``noise`` is written
    before every reply; ``silent`` answers nothing; ``reply`` is sent instead of an ACK."""

    def __init__(self, drop_commands=0, drop_acks=0, noise=b"", silent=False, reply=None):
        self.master, slave = os.openpty()
        tty.setraw(slave)
        self.path = os.ttyname(slave)
        self._slave = slave
        self.drop_commands, self.drop_acks, self.noise, self.silent = (drop_commands, drop_acks,
                                                                       noise, silent)
        self.reply = reply
        self.received, self.applied, self.heartbeats = [], [], 0
        self._seen = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self):
        decoder, seq = frames.Decoder(), 0
        while not self._stop.is_set():
            ready, _, _ = select.select([self.master], [], [], 0.02)
            if not ready:
                continue
            for frame in decoder.feed(os.read(self.master, 1024)):
                if frame.kind == Kind.HEARTBEAT:
                    self.heartbeats += 1
                    continue
                if frame.kind != Kind.COMMAND:
                    continue
                if self.drop_commands:
                    self.drop_commands -= 1
                    continue
                command = Command.unpack(frame.payload)
                self.received.append(command.label)
                if (command.epoch, command.key) not in self._seen:
                    self._seen.add((command.epoch, command.key))
                    self.applied.append(command.label)
                if self.silent:
                    continue
                if self.drop_acks:
                    self.drop_acks -= 1
                    continue
                seq = (seq + 1) % 256
                answer = self.reply(seq, frame.seq) if self.reply else \
                    frames.ack(seq, frame.seq)
                os.write(self.master, self.noise + answer.encode())

    def send(self, frame):
        os.write(self.master, frame.encode())

    def close(self):
        self._stop.set()
        self._thread.join(1)
        os.close(self.master)
        os.close(self._slave)


@pytest.mark.parametrize(
    ("peer_args", "min_received"),
    [
        ({}, 1),  # a clean line
        ({"drop_commands": 2}, 1),  # the first two commands never arrive: resent
        ({"drop_acks": 2}, 3),  # the PLC's first two ACKs are lost: resent, applied once
        ({"noise": b"\x02\x05\xff\x00\x02noise"}, 1),  # garbage before every reply
    ],
)
def test_every_command_applied_exactly_once(peer_args, min_received):
    peer = Peer(**peer_args)
    link = PlcLink(peer.path, ack_timeout_s=0.05, heartbeat_s=0.05).start()
    try:
        ids = [f"EDG00000{n:04d}" for n in range(5)]
        for n, parcel_id in enumerate(ids):
            link.send(n + 1, 1000 * n, n % 2, parcel_id)
        assert wait_until(lambda: link.unacked == 0), f"unacked: {link.unacked}"
        assert sorted(peer.applied) == ids  # each once, none lost
        assert len(peer.received) >= len(ids) + min_received - 1
        assert link.stats.lost == []
        assert wait_until(lambda: peer.heartbeats >= 2)
    finally:
        link.stop()
        peer.close()


def recorder(link):
    """(outcomes by key, fault kinds) as the link reports them."""
    done, faults = {}, []
    link.on_done = lambda command, outcome: done.setdefault(command.key, outcome)
    link.on_fault = lambda kind, detail: faults.append(kind)
    return done, faults


def test_unanswered_command_is_reported_lost_after_bounded_retries():
    peer = Peer(silent=True)
    link = PlcLink(peer.path, ack_timeout_s=0.02, max_attempts=3)
    done, faults = recorder(link)
    link.start()
    try:
        link.send(77, 5, RELEASE, "EDG000000077")
        assert wait_until(lambda: done)
        assert done == {77: Outcome.UNANSWERED} and link.stats.lost == [77]
        assert "command-lost" in faults   # a lost command is a fault, never quiet
        assert len(peer.received) == 3  # sent once, resent twice, then given up
    finally:
        link.stop()
        peer.close()


@pytest.mark.parametrize(("reason", "outcome"), [
    (frames.NakReason.TOO_LATE, Outcome.TOO_LATE),
    (frames.NakReason.BAD_PAYLOAD, Outcome.REFUSED),
])
def test_a_refused_command_is_counted_lost_and_is_a_fault(reason, outcome):
    peer = Peer(reply=lambda seq, refused: frames.nak(seq, refused, reason))
    link = PlcLink(peer.path, ack_timeout_s=0.05)
    done, faults = recorder(link)
    link.start()
    try:
        link.send(3, 10, RELEASE, "EDG3")
        assert wait_until(lambda: done)
        assert done == {3: outcome} and link.stats.lost == [3] and faults == ["command-lost"]
    finally:
        link.stop()
        peer.close()


def test_commands_unsent_at_stop_are_counted_lost():
    peer = Peer(silent=True)
    link = PlcLink(peer.path, ack_timeout_s=5.0)
    done, _ = recorder(link)
    link.start()
    link.send(1, 10, 1, "EDG1")
    link.send(2, 20, RELEASE, "EDG2")
    link.stop()
    peer.close()
    assert done == {1: Outcome.UNSENT, 2: Outcome.UNSENT} and sorted(link.stats.lost) == [1, 2]


def test_an_outage_never_crashes_the_link_and_commands_expire():
    """Far more commands than SEQs while nothing answers: the oldest are pushed out (lost,
    counted), the expired ones end, and send never raises."""
    peer = Peer(silent=True)
    link = PlcLink(peer.path, ack_timeout_s=10.0)
    done, _ = recorder(link)
    link.start()
    try:
        soon = time.monotonic() + 0.3
        for key in range(1, 2 * MAX_IN_FLIGHT + 2):
            link.send(key, key, 1, f"EDG{key}", expires_at=soon if key % 2 else 1e12)
        assert link.unacked <= MAX_IN_FLIGHT
        assert wait_until(lambda: Outcome.EXPIRED in done.values())
        assert Outcome.OVERFLOW in done.values()
        assert len(done) + link.unacked == 2 * MAX_IN_FLIGHT + 1   # each accounted once
    finally:
        link.stop()
        peer.close()


def test_any_label_is_sent():
    peer = Peer()
    link = PlcLink(peer.path).start()
    try:
        labels = ["9205" + "5" * 30, "ÉDG0001", "", "\udcffX"]
        for key, label in enumerate(labels, 1):
            link.send(key, 10 * key, RELEASE, label)
        assert wait_until(lambda: link.unacked == 0)
        assert peer.applied == ["9205" + "5" * 30, "ÉDG0001", "", "?X"]
    finally:
        link.stop()
        peer.close()


def test_a_status_saying_the_watchdog_tripped_is_a_fault():
    peer = Peer()
    link = PlcLink(peer.path)
    _, faults = recorder(link)
    link.start()
    try:
        epoch = link.epoch
        for seq, why, epoch_followed, trips in [
            (1, DivertAll.WATCHDOG, 0, 1),      # waiting for a host at power-up: not ours
            (2, DivertAll.NO, epoch, 1),        # it hears us: the count so far is the baseline
            (3, DivertAll.WATCHDOG, epoch, 2),  # a trip while it followed us
            (4, DivertAll.WATCHDOG, epoch, 2),  # the same trip, reported again
            (5, DivertAll.NO, epoch, 3),        # one we could not hear (the line was down)
        ]:
            peer.send(frames.status(seq, why, 0, epoch_followed, trips))
        assert wait_until(lambda: faults.count("plc-watchdog") == 2)
        time.sleep(0.1)
        assert faults.count("plc-watchdog") == 2 and link.stats.watchdog_reports == 2
    finally:
        link.stop()
        peer.close()


def test_a_missing_port_fails_at_start():
    import serial
    with pytest.raises(serial.SerialException):
        PlcLink("/dev/ttyNOPE").start()


def test_port_vanishes_and_comes_back_without_losing_queued_commands(tmp_path):
    # The link opens a stable device name (as udev gives a USB adapter); unplugging removes
    # it and closes the line, plugging back in gives a new pseudo-terminal under that name.
    device = tmp_path / "ttyPLC"
    first = Peer()
    device.symlink_to(first.path)
    link = PlcLink(str(device), ack_timeout_s=0.05, max_attempts=200).start()
    try:
        link.send(1, 10, RELEASE, "EDG000000001")
        assert wait_until(lambda: link.unacked == 0)
        device.unlink()
        first.close()  # unplugged
        for n in range(2, 5):  # queued while the port is gone
            link.send(n, 10 * n, RELEASE, f"EDG00000000{n}")
        time.sleep(0.3)
        second = Peer()
        device.symlink_to(second.path)  # plugged back in
        try:
            assert wait_until(lambda: link.unacked == 0, timeout=5)
            assert sorted(second.applied) == ["EDG000000002", "EDG000000003", "EDG000000004"]
            assert link.stats.reconnects >= 1 and link.stats.lost == []
        finally:
            second.close()
    finally:
        link.stop()


def test_a_write_on_a_port_closed_under_it_reconnects_instead_of_raising():
    # pyserial's close() drops the descriptor before it marks the port closed: a write from
    # the sender thread in between raises TypeError, which must not end that thread.
    peer = Peer()
    link = PlcLink(peer.path).start()
    try:
        assert wait_until(lambda: peer.heartbeats > 0)
        port = link._port
        fd, port.fd = port.fd, None   # the instant inside close(), held still
        try:
            link._write(frames.heartbeat(0, 1).encode())
            assert wait_until(lambda: link.stats.reconnects >= 1 and link._port is not port)
        finally:
            os.close(fd)
        heard = peer.heartbeats
        link.send(1, 10, 1, "EDG000000001")
        assert wait_until(lambda: link.unacked == 0 and peer.heartbeats > heard)
    finally:
        link.stop()
        peer.close()


def test_an_ack_after_the_command_was_given_up_on_counts_it_acked():
    """The PLC applied the command but its ACK came after the host gave up: counted acked
    after all, so lost commands are exactly those the PLC never applied."""
    peer = Peer(silent=True)
    link = PlcLink(peer.path, ack_timeout_s=0.02, max_attempts=2)
    outcomes = []
    link.on_done = lambda command, outcome: outcomes.append((command.key, outcome))
    link.start()
    try:
        link.send(5, 50, RELEASE, "EDG5")
        assert wait_until(lambda: outcomes)
        assert outcomes == [(5, Outcome.UNANSWERED)] and link.stats.lost == [5]
        peer.send(frames.ack(9, 1))   # the ACK of SEQ 1, late
        assert wait_until(lambda: len(outcomes) == 2)
        assert outcomes[1] == (5, Outcome.ACKED) and link.stats.lost == []
        assert link.stats.outcomes == {Outcome.UNANSWERED: 0, Outcome.ACKED: 1}
        assert link.stats.late_acks == 1
    finally:
        link.stop()
        peer.close()
