"""The fault soak matrix, whole: every injectable fault alone and combined, at a slow and a
fast belt. Real-time runs (a few minutes in all); each judged on what the simulated diverter
did, not on what the host meant."""

import pytest

from simulator.soak import COMBINED, SINGLE, SPEEDS, soak

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def rows():
    table = soak(seconds=6.0)
    for row in table:   # the figures, in the test log
        print(row)
    return table


def test_every_fault_and_speed_has_a_row(rows):
    assert {(r["fault"], r["speed_mm_s"]) for r in rows} == \
        {(name, speed) for name in SINGLE | COMBINED for speed in SPEEDS}


@pytest.mark.parametrize("column", ["passed_threats", "applied_twice"])
def test_no_threat_passes_and_nothing_is_applied_twice(rows, column):
    bad = [(r["fault"], r["speed_mm_s"], r[column]) for r in rows if r[column]]
    assert bad == []


def test_lost_commands_are_counted_exactly(rows):
    """Every command that never took effect is counted lost, and nothing else is, but for a
    command applied whose every ACK the PLC dropped: the host cannot tell it from a lost one
    (the rows' ``ok`` checks that those are such commands, key by key)."""
    bad = [(r["fault"], r["speed_mm_s"], r["lost_counted"], r["lost_seen"], r["lost_unheard"])
           for r in rows if r["lost_counted"] != r["lost_seen"] + r["lost_unheard"]
           or r["lost_unheard"] and "drop-acks" not in r["fault"]]
    assert bad == []


def test_every_run_carried_threats_and_owed_alarms_were_raised(rows):
    assert [(r["fault"], r["speed_mm_s"]) for r in rows if not r["ok"]] == []
    assert all(r["threat_parcels"] > 0 for r in rows)
