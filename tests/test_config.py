"""The settings tree: defaults, file, environment, and errors that name the field."""

import subprocess
import sys

import pytest
import yaml

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
    from pathlib import Path

    published = Path(__file__).resolve().parents[1] / "docs" / "config.schema.json"
    assert json.loads(published.read_text()) == EdgeConfig.model_json_schema(), (
        "docs/config.schema.json is stale: regenerate with `edge config --schema`")
