"""The host PLC link over a real pseudo-terminal pair, against a scripted PLC peer."""

import os
import select
import threading
import time
import tty

import pytest

from edge.plc import frames
from edge.plc.frames import Divert, Kind
from edge.plc.link import PlcLink


class Peer:
    """The PLC end of a pty: decodes frames, ACKs diverts, applies each (SEQ, ID) once.
    ``drop_diverts`` / ``drop_acks`` lose that many of the first ones; ``noise`` is written
    before every reply; ``silent`` answers nothing."""

    def __init__(self, drop_diverts=0, drop_acks=0, noise=b"", silent=False):
        self.master, slave = os.openpty()
        tty.setraw(slave)
        self.path = os.ttyname(slave)
        self._slave = slave
        self.drop_diverts, self.drop_acks, self.noise, self.silent = (drop_diverts, drop_acks,
                                                                      noise, silent)
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
                if frame.kind != Kind.DIVERT:
                    continue
                if self.drop_diverts:
                    self.drop_diverts -= 1
                    continue
                divert = Divert.unpack(frame.payload)
                self.received.append(divert.parcel_id)
                if (frame.seq, divert.parcel_id) not in self._seen:
                    self._seen.add((frame.seq, divert.parcel_id))
                    self.applied.append(divert.parcel_id)
                if self.silent:
                    continue
                if self.drop_acks:
                    self.drop_acks -= 1
                    continue
                seq = (seq + 1) % 256
                os.write(self.master, self.noise + frames.ack(seq, frame.seq).encode())

    def close(self):
        self._stop.set()
        self._thread.join(1)
        os.close(self.master)
        os.close(self._slave)


def wait_for(condition, timeout=3.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if condition():
            return True
        time.sleep(0.01)
    return False


@pytest.mark.parametrize(
    ("peer_args", "min_received"),
    [
        ({}, 1),  # a clean line
        ({"drop_diverts": 2}, 1),  # the first two commands never arrive: resent
        ({"drop_acks": 2}, 3),  # the PLC's first two ACKs are lost: resent, applied once
        ({"noise": b"\x02\x05\xff\x00\x02noise"}, 1),  # garbage before every reply
    ],
)
def test_every_divert_applied_exactly_once(peer_args, min_received):
    peer = Peer(**peer_args)
    link = PlcLink(peer.path, ack_timeout_s=0.05, heartbeat_s=0.05).start()
    try:
        ids = [f"EDG00000{n:04d}" for n in range(5)]
        for n, parcel_id in enumerate(ids):
            link.divert(parcel_id, encoder=1000 * n)
        assert wait_for(lambda: link.unacked == 0), f"unacked: {link.unacked}"
        assert sorted(peer.applied) == ids  # each once, none lost
        assert len(peer.received) >= len(ids) + min_received - 1
        assert link.stats.lost == []
        assert wait_for(lambda: peer.heartbeats >= 2)
    finally:
        link.stop()
        peer.close()


def test_unanswered_command_is_reported_lost_after_bounded_retries():
    peer = Peer(silent=True)
    lost = []
    link = PlcLink(peer.path, ack_timeout_s=0.02, max_attempts=3, on_lost=lost.append).start()
    try:
        link.divert("EDG000000077", encoder=5)
        assert wait_for(lambda: lost)
        assert lost[0].parcel_id == "EDG000000077" and link.stats.lost == ["EDG000000077"]
        assert len(peer.received) == 3  # sent once, resent twice, then given up
    finally:
        link.stop()
        peer.close()


def test_bad_parcel_id_refused_in_the_callers_thread():
    peer = Peer()
    link = PlcLink(peer.path)
    try:
        with pytest.raises(ValueError, match="parcel id"):
            link.divert("x" * 40, encoder=1)
    finally:
        peer.close()


def test_port_vanishes_and_comes_back_without_losing_queued_commands(tmp_path):
    # The link opens a stable device name (as udev gives a USB adapter); unplugging removes
    # it and closes the line, plugging back in gives a new pseudo-terminal under that name.
    device = tmp_path / "ttyPLC"
    first = Peer()
    device.symlink_to(first.path)
    link = PlcLink(str(device), ack_timeout_s=0.05, max_attempts=200).start()
    try:
        link.divert("EDG000000001", encoder=10)
        assert wait_for(lambda: link.unacked == 0)
        device.unlink()
        first.close()  # unplugged
        for n in range(2, 5):  # queued while the port is gone
            link.divert(f"EDG00000000{n}", encoder=10 * n)
        time.sleep(0.3)
        second = Peer()
        device.symlink_to(second.path)  # plugged back in
        try:
            assert wait_for(lambda: link.unacked == 0, timeout=5)
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
        assert wait_for(lambda: peer.heartbeats > 0)
        port = link._port
        fd, port.fd = port.fd, None   # the instant inside close(), held still
        try:
            link._write(frames.heartbeat(0, 1).encode())
            assert wait_for(lambda: link.stats.reconnects >= 1 and link._port is not port)
        finally:
            os.close(fd)
        heard = peer.heartbeats
        link.divert("EDG000000001", encoder=10)
        assert wait_for(lambda: link.unacked == 0 and peer.heartbeats > heard)
    finally:
        link.stop()
        peer.close()
