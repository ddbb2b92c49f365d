"""The simulated Modbus belt PLC over real pseudo-terminals, driven by the real host
``ModbusDivertLink``: what the diverter does with what the host meant."""

import contextlib
import time

import pytest
from belt import COUNTS_PER_MM, Belt, wait_until

from edge.config import ModbusMap
from edge.plc.frames import RELEASE
from edge.plc.link import Outcome
from edge.plc.modbus import ModbusDivertLink
from simulator.modbus_plc import SimModbusPlc, written_value

MAP = ModbusMap(unit=3, address=100, coil_address=37, heartbeat_address=200)


class Host:
    """A host session: the link and what its callbacks heard."""

    def __init__(self, path, modbus_map, **link_args):
        self.outcomes, self.faults = {}, []
        args = {"ack_timeout_s": 0.1, "max_attempts": 40, "heartbeat_s": 0.05} | link_args
        self.link = ModbusDivertLink(path, modbus_map, on_done=self._done,
                                     on_fault=self._fault, **args).start()

    def _done(self, command, outcome):
        self.outcomes[command.key] = outcome

    def _fault(self, kind, _detail):
        self.faults.append(kind)


@contextlib.contextmanager
def plc_and_host(modbus_map=MAP, link_args=None, **sim_args):
    belt = Belt()
    sim = SimModbusPlc(belt, counts_per_mm=COUNTS_PER_MM, modbus_map=modbus_map,
                       watchdog_s=0.5, **sim_args).start()
    host = Host(sim.path, modbus_map, **(link_args or {}))
    try:
        yield belt, sim, host
    finally:
        host.link.stop()
        sim.stop()


def command(belt, sim, host, key, mm_ahead, lane, parcel_id="", **send_args):
    """Photo-eye and host agree on a parcel (``P<key>`` unless named) ``mm_ahead`` of the
    diverter; the host sends its command."""
    parcel_id = parcel_id or f"P{key}"
    edge = belt.ahead(mm_ahead)
    sim.expect(parcel_id, edge)
    host.link.send(key, edge, lane, parcel_id, **send_args)


@pytest.mark.parametrize("address, values, target, expected", [
    (200, [7], 200, 7),
    (198, [1, 2, 3], 200, 3),
    (201, [1, 2], 200, None),
    (190, [1, 2], 200, None),
])
def test_written_value(address, values, target, expected):
    assert written_value(address, values, target) == expected


@pytest.mark.parametrize("mode", ["register", "coil"])
def test_only_released_parcels_pass(mode):
    with plc_and_host(MAP.model_copy(update={"mode": mode})) as (belt, sim, host):
        lanes = {1: RELEASE, 2: 1, 3: RELEASE, 4: 2, 5: RELEASE}  # parcel 6: no command
        for key in range(1, 7):
            if key in lanes:
                command(belt, sim, host, key, 400 + 100 * key, lanes[key])
            else:
                sim.expect(f"P{key}", belt.ahead(400 + 100 * key))
        assert wait_until(lambda: len(sim.outcomes()) == 6)
        assert sim.outcomes() == {f"P{key}": "passed" if lanes.get(key) == RELEASE
                                  else "diverted" for key in range(1, 7)}
        assert sim.applied_keys() == {(host.link.epoch, key) for key in lanes}
        assert sim.stats.commands_received == len(lanes) + sim.stats.duplicates
        assert host.outcomes == dict.fromkeys(lanes, Outcome.ACKED) and host.faults == []
        assert sim.stats.watchdog_trips == 0 and sim.stats.heartbeats_received > 0


def test_a_repeated_command_is_applied_once():
    # Replies lost on the line: the host writes the same (epoch, key) again.
    # Each lost reply costs the host a timeout: the parcels are far enough ahead for that.
    with plc_and_host(drop_acks=0.5, seed=1) as (belt, sim, host):
        for key in range(1, 5):
            command(belt, sim, host, key, 2000 + 250 * key, RELEASE)
        assert wait_until(lambda: host.link.unacked == 0)
        assert sorted(key for _, key in sim.stats.applied) == [1, 2, 3, 4]  # each once
        assert sim.stats.acks_dropped > 0 and sim.stats.duplicates > 0
        assert host.outcomes == dict.fromkeys(range(1, 5), Outcome.ACKED)
        assert wait_until(lambda: len(sim.outcomes()) == 4)
        assert set(sim.outcomes().values()) == {"passed"}


def test_a_plc_that_stops_answering_loses_commands_and_diverts_their_parcels():
    with plc_and_host(link_args={"max_attempts": 3}) as (belt, sim, host):
        sim.stop_answering(0.8)  # beyond the PLC's watchdog time
        command(belt, sim, host, 1, 1000, RELEASE)  # tried 3 times, unanswered
        command(belt, sim, host, 2, 1100, RELEASE, expires_at=time.monotonic() + 0.1)
        assert wait_until(lambda: len(sim.outcomes()) == 2 and len(host.outcomes) == 2)
        assert sim.outcomes() == {"P1": "diverted", "P2": "diverted"}
        assert host.outcomes == {1: Outcome.UNANSWERED, 2: Outcome.EXPIRED}
        assert host.link.stats.lost == [2, 1]  # the queued one expired first
        assert host.faults.count("command-lost") == 2
        assert sim.stats.applied == [] and sim.stats.watchdog_trips >= 1
        # Answered again: the watchdog register changes, and a new release lets its parcel go.
        assert wait_until(lambda: not sim.stats.watchdog_tripped)
        command(belt, sim, host, 3, 800, RELEASE)
        assert wait_until(lambda: "P3" in sim.outcomes())
        assert sim.outcomes()["P3"] == "passed"


def test_a_host_failing_closed_makes_the_plc_divert_everything():
    with plc_and_host() as (belt, sim, host):
        host.link.fail_closed = True  # the watchdog register holds still
        assert wait_until(lambda: sim.stats.watchdog_tripped)
        command(belt, sim, host, 1, 800, RELEASE)
        assert wait_until(lambda: "P1" in sim.outcomes())
        assert sim.outcomes()["P1"] == "diverted" and host.outcomes == {1: Outcome.ACKED}
        host.link.fail_closed = False
        assert wait_until(lambda: not sim.stats.watchdog_tripped)
        command(belt, sim, host, 2, 800, RELEASE)
        assert wait_until(lambda: "P2" in sim.outcomes())
        assert sim.outcomes()["P2"] == "passed"


def test_a_new_host_session_voids_the_releases_of_the_last():
    with plc_and_host() as (belt, sim, first):
        command(belt, sim, first, 1, 2000, RELEASE)
        assert wait_until(lambda: first.outcomes == {1: Outcome.ACKED})
        first.link.stop()  # the host restarts: a new epoch, keys from 1 again
        second = Host(sim.path, MAP)
        try:
            command(belt, sim, second, 1, 800, 1, parcel_id="Q1")
            assert wait_until(lambda: len(sim.outcomes()) == 2)
        finally:
            second.link.stop()
        assert sim.outcomes() == {"P1": "diverted", "Q1": "diverted"}
        assert sim.stats.sessions == 2 and sim.stats.releases_dropped == 1
