"""The settings tree: defaults, file, environment, and errors that name the field."""

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from edge.cli import main
from edge.config import ConfigError, EdgeConfig, dump_config, load_config


def write(tmp_path, text: str):
    path = tmp_path / "edge.yaml"
    path.write_text(text)
    return path


def test_defaults_are_the_embedded_demo():
    config = load_config()
    assert config.scanner.type == "sim" and config.camera.type == "sim"
    assert config.scanner.belt_speed_mm_s == 500 and config.scanner.n_pixels == 768
    assert config.scanner.line_rate_hz == pytest.approx(500.0)


def test_file_overrides_defaults_and_env_overrides_file(tmp_path, monkeypatch):
    path = write(tmp_path, "scanner:\n  belt_speed_mm_s: 700\n  seed: 9\n"
                           "camera:\n  type: capture\n  source: belt.avi\n")
    config = load_config(path)
    assert config.scanner.belt_speed_mm_s == 700 and config.scanner.seed == 9
    assert config.camera.type == "capture" and config.camera.source == "belt.avi"
    monkeypatch.setenv("EDGE_SCANNER__BELT_SPEED_MM_S", "650")
    config = load_config(path)
    assert config.scanner.belt_speed_mm_s == 650 and config.scanner.seed == 9


def test_dump_round_trips(tmp_path):
    config = load_config()
    again = load_config(write(tmp_path, dump_config(config)))
    assert again == config


@pytest.mark.parametrize(
    ("text", "fragments"),
    [
        # a bound
        ("scanner:\n  belt_speed_mm_s: -3\n", ["belt_speed_mm_s", "greater than 0", "-3"]),
        # a typo in a key
        ("scanner:\n  belt_sped_mm_s: 400\n", ["belt_sped_mm_s", "Extra inputs"]),
        # a check across fields
        ("scanner:\n  low_kev: 90\n  high_kev: 60\n", ["high_kev", "low_kev"]),
        # an unknown backend lists the valid ones
        ("camera:\n  type: webcam\n", ["camera", "webcam", "'sim'", "'capture'"]),
        # not a mapping
        ("- 1\n- 2\n", ["mapping"]),
        # not YAML
        ("scanner: [1, 2\n", ["not valid YAML"]),
    ],
)
def test_bad_file_names_field_and_reason(tmp_path, text, fragments):
    with pytest.raises(ConfigError) as err:
        load_config(write(tmp_path, text))
    for fragment in fragments:
        assert fragment in str(err.value)


def test_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "nope.yaml")


def a_directory(tmp_path, monkeypatch):
    return tmp_path


def a_binary_file(tmp_path, monkeypatch):
    path = tmp_path / "edge.yaml"
    path.write_bytes(b"\xbc\x00\xff\xfe" + bytes(range(256)))
    return path


def an_unreadable_file(tmp_path, monkeypatch):
    path = write(tmp_path, "scanner:\n  seed: 1\n")
    real_read_text = Path.read_text

    def refuse(self, *args, **kwargs):  # chmod 000 does not stop root, so refuse here
        if self == path:
            raise PermissionError(13, "Permission denied", str(path))
        return real_read_text(self, *args, **kwargs)

    monkeypatch.setattr(Path, "read_text", refuse)
    return path


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (a_directory, "Is a directory"),
        (a_binary_file, "not UTF-8 text (byte 0xbc at offset 0)"),
        (an_unreadable_file, "Permission denied"),
    ],
)
def test_unreadable_file_names_it_and_the_reason(tmp_path, monkeypatch, capsys, make, reason):
    path = make(tmp_path, monkeypatch)
    assert main(["--config", str(path), "config", "--show"]) == 2
    out, err = capsys.readouterr()
    assert not out and err.count("\n") == 1
    assert err.startswith("edge: ") and str(path) in err and reason in err


@pytest.mark.parametrize(
    ("env", "fragments"),
    [
        # a whole section that is not JSON
        ({"EDGE_SCANNER": "garbage"},
         ["EDGE_SCANNER ", "not valid JSON", "'garbage'", "EDGE_SCANNER__<FIELD>"]),
        # a list that is not JSON
        ({"EDGE_SCANNER__GAP_MM": "abc"},
         ["EDGE_SCANNER__GAP_MM", "scanner.gap_mm", "not valid JSON", "'abc'", "[250.0, 900.0]"]),
        # a table that is not JSON
        ({"EDGE_DECISION__THRESHOLDS": "notjson"},
         ["EDGE_DECISION__THRESHOLDS", "decision.thresholds", "not valid JSON", "'notjson'"]),
        # a number that is not one names its variable too
        ({"EDGE_SCANNER__BELT_SPEED_MM_S": "fast"},
         ["belt_speed_mm_s", "valid number", "'fast'", "from EDGE_SCANNER__BELT_SPEED_MM_S"]),
        # JSON whose booleans stand where numbers belong
        ({"EDGE_SCANNER__GAP_MM": "[true, 900]"},
         ["gap_mm", "not true or false", "from EDGE_SCANNER__GAP_MM"]),
    ],
)
def test_bad_environment_names_variable_and_reason(monkeypatch, capsys, env, fragments):
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert main(["config", "--show"]) == 2
    out, err = capsys.readouterr()
    assert not out and err.startswith("edge: ")
    assert all(line.startswith(("edge: ", "  ")) for line in err.splitlines())
    for fragment in fragments:
        assert fragment in err


@pytest.mark.parametrize(
    ("text", "field"),
    [
        ("scanner:\n  belt_speed_mm_s: true\n", "scanner.belt_speed_mm_s"),
        ("scanner:\n  n_pixels: yes\n", "scanner.n_pixels"),  # YAML 1.1 reads yes as true
        ("scanner:\n  gap_mm: [false, 900]\n", "scanner.gap_mm"),
        ("decision:\n  thresholds: {knife: true}\n", "decision.thresholds"),
        ("camera:\n  type: capture\n  source: true\n", "camera.source"),  # int | str
        ("plc:\n  modbus:\n    unit: true\n", "plc.modbus.unit"),  # a section in a section
    ],
)
def test_true_or_false_is_not_a_number(tmp_path, text, field):
    with pytest.raises(ConfigError) as err:
        load_config(write(tmp_path, text))
    assert f"{field}: Input should be a number, not true or false" in str(err.value)


def test_numbers_and_flags_from_environment_strings_still_parse(tmp_path, monkeypatch):
    monkeypatch.setenv("EDGE_SCANNER__BELT_SPEED_MM_S", "600")
    monkeypatch.setenv("EDGE_SCANNER__N_PIXELS", "1024")
    monkeypatch.setenv("EDGE_SCANNER__GAP_MM", "[200, 800]")
    monkeypatch.setenv("EDGE_DETECTOR__BOX_VOTING", "true")
    monkeypatch.setenv("EDGE_DECISION__THRESHOLDS", '{"knife": 0.4}')
    config = load_config(write(tmp_path, "scanner:\n  realtime: false\n  seed: 1\n"))
    assert config.scanner.belt_speed_mm_s == 600.0 and config.scanner.n_pixels == 1024
    assert config.scanner.gap_mm == (200.0, 800.0) and config.scanner.realtime is False
    assert config.detector.box_voting is True and config.decision.thresholds == {"knife": 0.4}


def test_cli_reports_bad_config_without_traceback(tmp_path):
    path = write(tmp_path, "scanner:\n  pitch_mm: 100\n")
    result = subprocess.run([sys.executable, "-m", "edge.cli", "--config", str(path), "config",
                             "--show"], capture_output=True, text=True)
    assert result.returncode == 2
    assert "pitch_mm" in result.stderr and "Traceback" not in result.stderr


def test_cli_show_prints_effective_config(tmp_path):
    path = write(tmp_path, "scanner:\n  seed: 42\n")
    result = subprocess.run([sys.executable, "-m", "edge.cli", "--config", str(path), "config",
                             "--show"], capture_output=True, text=True, check=True)
    shown = yaml.safe_load(result.stdout)
    assert shown["scanner"]["seed"] == 42
    assert EdgeConfig(**shown) == load_config(path)


def test_published_schema_is_current():
    import json

    published = Path(__file__).resolve().parents[1] / "docs" / "config.schema.json"
    assert json.loads(published.read_text()) == EdgeConfig.model_json_schema(), (
        "docs/config.schema.json is stale: regenerate with `edge config --schema`")


@pytest.mark.parametrize(("text", "lines"), [
    ("scanner:\n  belt_speed_mm_s: -3\n", 1),                 # one error, one line
    ("scanner:\n  belt_speed_mm_s: -3\n  seed: x\n", 3),      # a heading, one line each
])
def test_errors_read_as_the_user_wrote_the_fields(tmp_path, text, lines):
    with pytest.raises(ConfigError) as err:
        load_config(write(tmp_path, text))
    message = str(err.value)
    assert message.count("\n") + 1 == lines, message
    assert "scanner.belt_speed_mm_s: Input should be greater than 0" in message
    assert "scanner.sim." not in message   # the union member is not part of the user's path
