"""Naming parcels by their top-camera photo: the encoder window, the bounded photo queue,
and a label reader that is slow, behind or failing (a fake reader stands in for the decoder).
"""

import threading
import time

import numpy as np
import pytest

from edge.capture import MAX_READING, PhotoMatcher
from edge.types import Photo

OFFSET, TOLERANCE = 500, 20   # encoder counts from camera to the scan plane


def photo(tag: int, encoder: int) -> Photo:
    """A tiny photo whose pixels carry ``tag``, so a fake reader can tell photos apart."""
    return Photo(np.full((4, 4, 3), tag, np.uint8), t=tag * 0.1, encoder=encoder)


class FakeReader:
    """Reads ``L<tag>`` from a photo; photos whose tag is in ``hold`` wait for ``release``."""

    def __init__(self, hold: tuple[int, ...] = ()):
        self.hold = set(hold)
        self.release = threading.Event()
        self.started: list[int] = []
        self.read: list[int] = []

    def __call__(self, image: np.ndarray) -> str:
        tag = int(image[0, 0, 0])
        self.started.append(tag)
        if tag in self.hold:
            self.release.wait(timeout=10)
        self.read.append(tag)
        return f"L{tag}"


@pytest.fixture
def reader():
    fake = FakeReader()
    yield fake
    fake.release.set()   # never leave the reader thread waiting past the test


def wait_until(condition, timeout: float = 2.0) -> None:
    """The reader runs on a thread of its own: wait (bounded) for what it must do next."""
    give_up = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < give_up, "the reader did not get there in time"
        time.sleep(0.001)


@pytest.mark.parametrize(("start", "end", "matches"), [
    (1500, 1800, True),    # the scan starts exactly `offset` counts after the photo
    (1480, 1800, True),    # starts a little early: the lead falls inside the scan
    (1520, 1800, True),    # starts `tolerance` late: still this parcel
    (1521, 1800, False),   # later than the tolerance: some other parcel
    (1200, 1499, False),   # ends before the lead arrives: an earlier parcel
    (1200, 1500, True),    # ends right at the lead
])
def test_a_photo_matches_the_parcel_scanned_offset_counts_later(reader, start, end, matches):
    matcher = PhotoMatcher(OFFSET, TOLERANCE, read=reader)
    taken = photo(1, encoder=1000)
    matcher.add(taken)
    found, label = matcher.match(start, end)
    if matches:
        assert found is taken and label == "L1"
        assert len(matcher.photos) == 0            # claimed: no other parcel gets it
        assert matcher.match(start, end) == (None, None)
    else:
        assert (found, label) == (None, None)
        assert len(matcher.photos) == 1            # still waiting for its parcel


def test_each_parcel_gets_its_own_photo(reader):
    matcher = PhotoMatcher(OFFSET, TOLERANCE, read=reader)
    for tag, encoder in [(1, 1000), (2, 1400), (3, 1800)]:
        matcher.add(photo(tag, encoder))
    # Parcels of 300 counts, in belt order.
    assert [matcher.match(s, s + 300)[1] for s in (1500, 1900, 2300)] == ["L1", "L2", "L3"]
    assert len(matcher.photos) == 0


def test_only_the_last_8_photos_are_kept_and_a_dropped_one_is_not_read(reader):
    """Photo 0 ties up the reader; 1..3 queue behind it and 4..8 are kept unread (the
    backlog is full). Photo 9 makes 9: the oldest, 1, goes, and its queued read with it."""
    reader.hold = {0}
    matcher = PhotoMatcher(OFFSET, TOLERANCE, wait_s=0.01, read=reader)
    matcher.add(photo(0, encoder=0))
    wait_until(lambda: reader.started == [0])
    found, label = matcher.match(OFFSET, OFFSET + 100)
    assert found.encoder == 0 and label is None   # claimed unread; the reader is still on it
    for tag in range(1, 9):
        matcher.add(photo(tag, encoder=tag * 1000))
    assert [p.encoder // 1000 for p, _ in matcher.photos] == list(range(1, 9))
    oldest_read = matcher.photos[0][1]
    assert not oldest_read.done()
    matcher.add(photo(9, encoder=9000))
    assert [p.encoder // 1000 for p, _ in matcher.photos] == list(range(2, 10))
    assert oldest_read.cancelled()
    reader.release.set()
    wait_until(lambda: len(reader.read) == 4)    # 0, then 2, 3 and 9 (a slot came free)
    assert reader.started == [0, 2, 3, 9]       # the dropped photo was never read
    found, label = matcher.match(2000 + OFFSET, 2000 + OFFSET + 100)
    assert found.encoder == 2000 and label == "L2"


def test_a_slow_read_gives_the_photo_without_its_label_after_wait_s(reader):
    reader.hold = {1}
    matcher = PhotoMatcher(OFFSET, TOLERANCE, wait_s=0.2, read=reader)
    taken = photo(1, encoder=1000)
    matcher.add(taken)
    wait_until(lambda: reader.started == [1])
    started = time.monotonic()
    found, label = matcher.match(1500, 1800)
    waited = time.monotonic() - started
    assert found is taken and label is None  # named by its seq; the photo stays attached
    assert 0.15 <= waited < 2.0, waited      # waited about wait_s, not for the reader
    assert len(matcher.photos) == 0


def test_at_most_max_reading_photos_wait_for_the_reader(reader):
    """While the reader is behind, further photos are kept (their parcels still get them)
    but not queued for reading."""
    reader.hold = {0}
    matcher = PhotoMatcher(OFFSET, TOLERANCE, wait_s=1.0, read=reader)
    n = MAX_READING + 2
    for tag in range(n):
        matcher.add(photo(tag, encoder=tag * 1000))
    assert len(matcher.photos) == n
    reading = [not f.done() for _, f in matcher.photos]
    assert reading == [True] * MAX_READING + [False] * (n - MAX_READING)
    # A photo beyond the backlog is matched at once, with no label.
    started = time.monotonic()
    beyond = MAX_READING
    found, label = matcher.match(beyond * 1000 + OFFSET, beyond * 1000 + OFFSET + 100)
    assert found.encoder == beyond * 1000 and label is None
    assert time.monotonic() - started < 0.5    # did not wait wait_s for a read never queued
    reader.release.set()
    found, label = matcher.match(1000 + OFFSET, 1000 + OFFSET + 100)
    assert found.encoder == 1000 and label == "L1"
    wait_until(lambda: len(reader.read) == MAX_READING)
    assert sorted(reader.started) == list(range(MAX_READING))   # only those were read


def test_a_reader_that_raises_gives_the_photo_without_a_label():
    def broken(image: np.ndarray) -> str:
        raise ValueError("cannot decode")

    matcher = PhotoMatcher(OFFSET, TOLERANCE, read=broken)
    taken = photo(1, encoder=1000)
    matcher.add(taken)
    assert matcher.match(1500, 1800) == (taken, None)
    assert len(matcher.photos) == 0


def test_the_default_reader_is_the_label_decoder():
    """No fake: a blank photo goes through the real decoder, which finds no label."""
    matcher = PhotoMatcher(OFFSET, TOLERANCE, wait_s=2.0)
    taken = Photo(np.full((32, 32, 3), 255, np.uint8), t=0.0, encoder=1000)
    matcher.add(taken)
    assert matcher.match(1500, 1800) == (taken, None)
