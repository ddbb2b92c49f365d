"""The ledger: first verdict wins, deadlines by a fake clock, and bounded history.

Times are explicit ``now`` floats (a fake monotonic clock): nothing here sleeps.
"""

import gc
import sys
import threading
import tracemalloc

import numpy as np
import pytest

from edge.ledger import Ledger
from edge.types import Action, Detections, Parcel, Verdict

# Tiny parcels, one set of arrays for all: the ledger keeps entries, not images.
HI = np.zeros((4, 2), np.float32)
ENCODER = np.array([0, 1], np.int64)
T = np.array([0.0, 0.001])
NO_BOXES = Detections.empty()


def parcel(seq: int, threats: tuple[str, ...] = ()) -> Parcel:
    return Parcel(f"P{seq:06d}", seq, HI, HI, ENCODER, T, truth_labels=list(threats))


def verdict(seq: int, action: Action = Action.CLEAR, reason: str = "") -> Verdict:
    return Verdict(f"P{seq:06d}", action, NO_BOXES, reason=reason)


def run_parcel(ledger: Ledger, seq: int, action: Action = Action.CLEAR, lane: int | None = 0,
               outcome: str | None = "acked", threats: tuple[str, ...] = ()):
    """One parcel through the ledger as the pipeline drives it: open, settle, release,
    command (``lane`` None: no PLC link), frame sent, outcome (None: still awaited)."""
    entry = ledger.open(parcel(seq, threats), deadline=seq + 0.5, divert_encoder=seq * 10)
    won = ledger.settle(seq, verdict(seq, action), now=seq + 0.1)
    assert won is entry
    entry.release()
    if lane is not None:
        ledger.commanded(entry, lane)
        ledger.mark_sent(seq, now=seq + 0.2)
        if outcome is not None:
            ledger.command_done(seq, outcome)
    return entry


# --- first verdict wins -------------------------------------------------------------------


def test_first_verdict_wins_under_concurrent_settles():
    """8 threads race to settle each of 2,000 parcels, each with a verdict of its own:
    exactly one wins each parcel, the entry holds that verdict, every other settle gets None."""
    n_parcels, n_threads = 2_000, 8
    ledger = Ledger()
    for seq in range(1, n_parcels + 1):
        ledger.open(parcel(seq), deadline=1.0, divert_encoder=0)
    actions = [Action.CLEAR, Action.DIVERT, Action.UNINSPECTED]
    # Each thread settles every parcel, in an order of its own.
    orders = [np.random.default_rng(k).permutation(np.arange(1, n_parcels + 1))
              for k in range(n_threads)]
    won: list[dict[int, Verdict]] = [{} for _ in range(n_threads)]
    lost: list[list[int]] = [[] for _ in range(n_threads)]
    start = threading.Barrier(n_threads)

    def race(k: int) -> None:
        start.wait()
        for seq in orders[k]:
            mine = verdict(int(seq), actions[k % 3], reason=f"thread {k}")
            entry = ledger.settle(int(seq), mine, now=0.5)
            if entry is None:
                lost[k].append(int(seq))
            else:
                assert entry.verdict is mine
                won[k][int(seq)] = mine

    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)   # switch threads as often as the interpreter allows
    try:
        threads = [threading.Thread(target=race, args=(k,)) for k in range(n_threads)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        sys.setswitchinterval(interval)

    winners: dict[int, Verdict] = {}
    for k in range(n_threads):
        assert len(won[k]) + len(lost[k]) == n_parcels   # every settle answered
        for seq, mine in won[k].items():
            assert seq not in winners, f"seq {seq} won twice"
            winners[seq] = mine
    assert sorted(winners) == list(range(1, n_parcels + 1))
    assert sum(len(x) for x in lost) == n_parcels * (n_threads - 1)
    for seq, mine in winners.items():
        assert ledger.entries[seq].verdict is mine
        assert ledger.entries[seq].settled_at == 0.5
    expected = {str(a): sum(v.action == a for v in winners.values()) for a in actions}
    assert dict(ledger.actions) == {a: n for a, n in expected.items() if n}
    assert ledger.settled == n_parcels and ledger.open_entries() == []


def test_a_late_verdict_changes_nothing():
    ledger = Ledger()
    entry = ledger.open(parcel(1), deadline=1.0, divert_encoder=0)
    first = verdict(1, Action.UNINSPECTED, "no verdict by the deadline")
    assert ledger.settle(1, first, now=1.0) is entry
    assert ledger.settle(1, verdict(1, Action.CLEAR), now=1.2) is None
    assert entry.verdict is first and entry.settled_at == 1.0
    assert dict(ledger.actions) == {"uninspected": 1}


# --- deadlines ----------------------------------------------------------------------------


def test_overdue_is_the_open_entries_at_or_past_their_deadline():
    ledger = Ledger()
    for seq, deadline in [(1, 1.0), (2, 2.0), (3, 3.0)]:
        ledger.open(parcel(seq), deadline=deadline, divert_encoder=0)

    def overdue(now: float) -> list[int]:
        return sorted(e.seq for e in ledger.overdue(now))

    assert overdue(0.999) == []
    assert overdue(1.0) == [1]         # at its deadline: overdue
    assert overdue(2.5) == [1, 2]
    ledger.settle(1, verdict(1), now=2.5)
    assert overdue(2.5) == [2]         # settled: never handed out again
    assert overdue(100.0) == [2, 3]
    ledger.settle(3, verdict(3), now=100.0)
    ledger.settle(2, verdict(2), now=100.0)
    assert overdue(1e9) == []
    assert ledger.open_entries() == []


# --- opening ------------------------------------------------------------------------------


def test_opening_a_seq_twice_raises_naming_it():
    ledger = Ledger()
    ledger.open(parcel(7), deadline=1.0, divert_encoder=0)
    with pytest.raises(ValueError, match=r"seq 7 \(P000007\) opened twice"):
        ledger.open(parcel(7), deadline=2.0, divert_encoder=0)
    assert ledger.opened == 1 and len(ledger.entries) == 1


def test_reopening_an_evicted_seq_raises_naming_it():
    ledger = Ledger(keep=1)
    run_parcel(ledger, 1)
    run_parcel(ledger, 2)             # evicts 1
    assert list(ledger.entries) == [2]
    with pytest.raises(ValueError, match=r"seq 1 \(P000001\) opened after seq 1 was finished"):
        ledger.open(parcel(1), deadline=1.0, divert_encoder=0)


@pytest.mark.parametrize("keep", [0, -5])
def test_keep_must_be_positive(keep):
    with pytest.raises(ValueError, match=f"keep must be at least 1 finished entry, got {keep}"):
        Ledger(keep=keep)


# --- bounded history ----------------------------------------------------------------------


@pytest.mark.parametrize(("lane", "outcome", "kept"), [
    (None, None, False),      # no PLC link: finished once settled
    (0, "acked", False),      # released, outcome in: finished
    (1, "too-late", False),   # diverted, outcome in: finished
    (0, None, True),          # command awaiting its outcome: kept however old
])
def test_what_counts_as_finished(lane, outcome, kept):
    ledger = Ledger(keep=2)
    run_parcel(ledger, 1, lane=lane, outcome=outcome)
    for seq in range(2, 6):
        run_parcel(ledger, seq)
    assert (1 in ledger.entries) is kept
    assert list(ledger.entries)[-2:] == [4, 5]
    assert len(ledger.entries) == 2 + kept


def test_open_and_unsent_entries_are_never_evicted():
    ledger = Ledger(keep=2)
    still_open = ledger.open(parcel(1), deadline=1.5, divert_encoder=0)
    unsent = ledger.open(parcel(2), deadline=2.5, divert_encoder=0)
    ledger.settle(2, verdict(2, Action.DIVERT), now=2.0)
    ledger.commanded(unsent, 1)       # queued on the link, no frame written yet
    for seq in range(3, 50):
        run_parcel(ledger, seq)
    assert ledger.entries[1] is still_open and ledger.entries[2] is unsent
    assert sorted(ledger.entries) == [1, 2, 48, 49]
    assert [e.seq for e in ledger.overdue(1.5)] == [1]


def test_eviction_goes_by_seq_not_by_finishing_order():
    """Parcel 3's outcome comes first, then 1's, then 2's: the two kept are 2 and 3."""
    ledger = Ledger(keep=2)
    for seq in (1, 2, 3):
        run_parcel(ledger, seq, outcome=None)
    for seq in (3, 1, 2):
        ledger.command_done(seq, "acked")
    assert sorted(ledger.entries) == [2, 3]


def test_a_command_queued_after_eviction_brings_the_entry_back():
    """The pipeline settles, then queues the command in a second call: an entry evicted in
    between (counted finished with no command yet) is kept again until its outcome."""
    ledger = Ledger(keep=1)
    first = run_parcel(ledger, 1, lane=None)
    run_parcel(ledger, 2, lane=None)   # 1 is the oldest finished: evicted
    assert 1 not in ledger.entries
    ledger.commanded(first, 1)
    assert ledger.entries[1] is first
    run_parcel(ledger, 3, lane=None)   # 2 goes; 1 awaits its outcome and stays
    assert sorted(ledger.entries) == [1, 3]
    ledger.command_done(1, "acked")
    assert first.outcome == "acked"
    assert sorted(ledger.entries) == [3]
    assert ledger.outcomes == {(1, "acked", False): 1}


def test_outcome_of_an_evicted_seq_is_ignored():
    ledger = Ledger(keep=1)
    run_parcel(ledger, 1, outcome="unanswered")
    run_parcel(ledger, 2)
    assert 1 not in ledger.entries
    ledger.command_done(1, "acked")   # a late ACK for a parcel long gone
    ledger.command_done(99, "acked")  # a key this ledger never saw
    assert sorted(ledger.entries) == [2]
    assert ledger.outcomes == {(0, "unanswered", False): 1, (0, "acked", False): 1}


def test_an_outcome_reported_again_counts_once_under_the_last():
    ledger = Ledger()
    entry = run_parcel(ledger, 1, lane=0, outcome="unanswered", threats=("knife",))
    ledger.command_done(1, "acked")   # the ACK came after the link had given up
    assert entry.outcome == "acked"
    assert ledger.outcomes == {(0, "acked", True): 1}


def _retained_bytes_per_entry() -> float:
    """What the ledger holds per retained parcel (entry, verdict, dict slot), measured while
    tracing, so the memory assertion below does not depend on this interpreter's sizes."""
    gc.collect()
    before = tracemalloc.get_traced_memory()[0]
    ledger = Ledger(keep=5_000)
    for seq in range(1, 5_001):
        run_parcel(ledger, seq)
    gc.collect()
    per_entry = (tracemalloc.get_traced_memory()[0] - before) / 5_000
    del ledger
    gc.collect()
    return per_entry


def test_a_run_of_100k_parcels_keeps_the_newest_and_exact_totals():
    keep = 1_000
    ledger = Ledger(keep=keep)
    actions = [Action.CLEAR, Action.CLEAR, Action.DIVERT, Action.UNINSPECTED]
    threats = ("knife",)
    n = 100_000
    awaited = 10   # its command never gets an outcome: kept however old
    open_seq = 21  # never settled: kept however old

    def run(seqs) -> None:
        for seq in seqs:
            if seq == open_seq:
                ledger.open(parcel(seq), deadline=1.0, divert_encoder=0)
                continue
            run_parcel(ledger, seq, actions[seq % 4], lane=seq % 2,
                       outcome=None if seq == awaited else "acked",
                       threats=threats if seq % 5 == 0 else ())

    run(range(1, n // 2 + 1))
    # Trace the second half only (tracing is slow): whatever of it the ledger still holds at
    # its peak counts, what it frees of the first half does not.
    tracemalloc.start()
    try:
        per_entry = _retained_bytes_per_entry()
        halfway = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        run(range(n // 2 + 1, n + 1))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()

    # Without eviction the second 50,000 parcels would hold 50,000 entries' worth at the end;
    # with it, the `keep` newest and some slack.
    assert per_entry > 200   # the measurement saw the entries at all
    assert peak - halfway < 3 * keep * per_entry, (peak - halfway, per_entry)

    assert len(ledger.entries) == keep + 2
    assert sorted(ledger.entries) == [awaited, open_seq, *range(n - keep + 1, n + 1)]
    assert ledger.entries[awaited].outcome is None and ledger.is_open(open_seq)
    settled = [s for s in range(1, n + 1) if s != open_seq]
    assert ledger.opened == n
    assert ledger.settled == n - 1
    assert dict(ledger.actions) == {
        "clear": sum(s % 4 in (0, 1) for s in settled),
        "divert": sum(s % 4 == 2 for s in settled),
        "uninspected": sum(s % 4 == 3 for s in settled)}
    assert ledger.threats == n // 5
    done = [s for s in settled if s != awaited]
    assert ledger.outcomes == {
        (lane, "acked", threat): sum(s % 2 == lane and (s % 5 == 0) == threat for s in done)
        for lane in (0, 1) for threat in (False, True)}

    # The awaited command ends at last: it is now the oldest finished, and goes.
    ledger.command_done(awaited, "acked")
    assert awaited not in ledger.entries and len(ledger.entries) == keep + 1
