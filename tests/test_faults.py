"""Fault injection as configured, the fail-safe's state machine on a fake clock, and the
start-up errors of ``edge run`` (one line naming the field, exit 2, no traceback)."""

import pytest

from edge.cli import main, with_faults
from edge.config import ConfigError, EdgeConfig, FaultsConfig
from edge.failsafe import FailSafe
from edge.faults import Faults, parse_fault


@pytest.mark.parametrize(("text", "expected"), [
    ("corrupt=0.4", ("corrupt", "0.4")),
    ("drop-acks=0.5", ("drop_acks", "0.5")),     # hyphens on the command line
    ("plc-restart-memory", ("plc_restart_memory", "1")),   # a bare name means on / all / 1 s
    (" port-loss = 2 ", ("port_loss", "2")),
])
def test_parse_fault(text, expected):
    assert parse_fault(text) == expected


def test_every_fault_of_the_issue_list_exists():
    names = {"noise", "corrupt", "drop-acks", "ack-delay", "plc-silent", "nak-busy",
             "plc-restart-memory", "port-loss", "long-label", "non-ascii-label",
             "unreadable-label", "camera-down", "scanner-stall", "encoder-glitch",
             "detector-stall", "detector-crash", "modbus-timeout"}
    fields = {f.replace("_", "-") for f in FaultsConfig.model_fields} - {"at-s"}
    assert fields == names


@pytest.mark.parametrize(("specs", "message"), [
    (["bogus=1"], "unknown fault 'bogus'; valid: noise, corrupt"),
    (["corrupt=2"], "corrupt: Input should be less than or equal to 1"),
    (["port-loss=abc"], "port_loss: Input should be a valid number"),
])
def test_bad_faults_are_named(specs, message):
    with pytest.raises(ConfigError, match=message):
        with_faults(EdgeConfig(), specs)


def test_faults_from_the_command_line_join_the_config():
    config = EdgeConfig(faults={"corrupt": 0.2})
    joined = with_faults(config, ["plc-silent=1.5", "at-s=3"])
    assert joined.faults.corrupt == 0.2 and joined.faults.plc_silent == 1.5
    assert joined.faults.at_s == 3 and joined.faults.active == ["corrupt", "plc-silent"]


@pytest.mark.parametrize(("faults", "label", "expected"), [
    ({}, "EDG01", "EDG01"),
    ({"long_label": 1.0}, "EDG01", "9205" + "5" * 18 + "EDG01"),
    ({"non_ascii_label": 1.0}, "EDG01", "ÉEDG01"),
    ({"unreadable_label": 1.0}, "EDG01", None),
    ({"long_label": 1.0}, None, None),           # nothing read stays nothing read
])
def test_label_faults(faults, label, expected):
    assert Faults(FaultsConfig(**faults)).label(label) == expected


def test_timed_faults_start_at_their_time_and_last_their_length():
    faults = Faults(FaultsConfig(at_s=2.0, camera_down=1.5, plc_silent=1.0))
    faults.restart_clock(now=100.0)
    assert not faults.camera.on(101.9) and faults.camera.on(102.0)
    assert faults.camera.on(103.4) and not faults.camera.on(103.5)
    assert not faults.silent.fire_once(101.0)
    assert faults.silent.fire_once(102.5) and not faults.silent.fire_once(102.6)   # once
    assert not faults.port.fire_once(105.0)   # not configured: never


class Clock:
    def __init__(self):
        self.t = 0.0

    def __call__(self):
        return self.t


def test_failsafe_holds_after_the_last_fault_and_logs_each_kind_once_an_episode():
    clock, log, states = Clock(), [], []
    safe = FailSafe(1.0, log.append, states.append, clock)
    safe.fault("command-lost", "parcel 1")
    clock.t = 0.5
    safe.fault("command-lost", "parcel 2")       # the same kind: counted, not logged again
    safe.fault("plc-silent", "0.6 s")
    clock.t = 1.4
    safe.tick()
    assert safe.active                            # 1 s after the last fault is 1.5
    clock.t = 1.5
    safe.tick()
    assert not safe.active and states == [True, False]
    assert [line.split(":")[0] for line in log] == ["ALARM command-lost", "ALARM plc-silent",
                                                    "fail-closed state cleared"]
    assert "failing closed" in log[0] and "failing closed" not in log[1]
    clock.t = 2.0
    safe.fault("command-lost", "parcel 3")        # a new episode: logged again
    summary = safe.summary()
    assert summary["alarms"] == 4 and summary["alarm_kinds"] == {"command-lost": 3,
                                                                 "plc-silent": 1}
    assert summary["fail_closed_now"] and summary["fail_closed_s"] == 1.5
    assert safe.first_alarm_after(0.1) == 0.5 and safe.first_alarm_after(2.1) is None


@pytest.mark.parametrize(("env", "message"), [
    ({"EDGE_PLC__TYPE": "serial", "EDGE_PLC__PORT": "/dev/ttyNOPE"},
     "edge: cannot start: plc.port '/dev/ttyNOPE' cannot be opened"),
    ({"EDGE_PLC__TYPE": "serial"}, "edge: cannot start: plc.port is not set"),
    ({"EDGE_PLC__TYPE": "modbus", "EDGE_PLC__PORT": "/dev/ttyNOPE"},
     "edge: cannot start: plc.port '/dev/ttyNOPE' cannot be opened"),
])
def test_a_bad_plc_port_stops_the_start_with_one_line(env, message, monkeypatch, capsys,
                                                      tmp_path):
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("EDGE_CALIBRATION_DIR", str(tmp_path))
    assert main(["run", "--duration", "1"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(message) and err.count("\n") == 1, err


def test_an_unknown_fault_stops_the_start(capsys):
    assert main(["run", "--duration", "1", "--fault", "gremlins"]) == 2
    err = capsys.readouterr().err
    assert "unknown fault 'gremlins'" in err and "Traceback" not in err


def test_a_photo_nobody_claimed_does_not_stop_the_next_match():
    """A parcel that was never cut (discarded at an encoder break) leaves its photo in front
    of the next parcel's: matching must still find that one (photos hold pixel arrays, which
    cannot be compared for equality)."""
    import numpy as np

    from edge.capture import PhotoMatcher
    from edge.types import Photo

    matcher = PhotoMatcher(offset_counts=100, tolerance_counts=10)
    image = np.zeros((8, 8, 3), np.uint8)
    matcher.add(Photo(image, 0.0, 0))       # the parcel that was never cut
    matcher.add(Photo(image.copy(), 1.0, 1000))
    photo, _ = matcher.match(1095, 1500)
    assert photo is not None and photo.encoder == 1000
    assert len(matcher.photos) == 1


def test_edge_run_ends_with_a_summary_line(monkeypatch, capsys, tmp_path):
    monkeypatch.setenv("EDGE_CALIBRATION_DIR", str(tmp_path))
    monkeypatch.setenv("EDGE_SCANNER__BELT_SPEED_MM_S", "1500")
    assert main(["run", "--duration", "2", "--fault", "plc-silent=0.8", "--fault",
                 "at-s=0.5"]) == 0
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert last.startswith("summary: ") and "threats missed" in last
    assert "plc-silent" in last   # the alarm the injected fault raised, by kind
