"""Config loading: env expansion, durations, and bad files rejected with file, line, key and hint."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from collector.config import ConfigError, expand_env, parse_duration, parse_endpoint, parse_size, parse_yaml
from collector.config_builder import ConfigBuilder
from collector.service import build_service

FIXTURES = Path(__file__).parent / "testdata" / "service"
ROOT = Path(__file__).parent.parent


def validate(path: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "collector", "validate", "--config", str(path)],
                          capture_output=True, text=True, env=env, timeout=60)


def test_issue_example_validates():
    result = validate(FIXTURES / "good_full.yaml")
    assert result.returncode == 0, result.stderr
    assert "pipelines: logs, metrics, traces" in result.stdout


def test_bad_config_exits_1_with_line_and_hint():
    """The CLI's side of the fixtures in tests/testdata (checked in-process by test_config_fixtures)."""
    fixture = FIXTURES / "bad_unknown_exporter_type.yaml"
    result = validate(fixture)
    assert result.returncode == 1
    assert f"{fixture}:6:" in result.stderr
    for text in ["exporters.otlpgrpc/jaeger", "unknown exporter type 'otlpgrpc'",
                 "known exporters: debug, duckdb, otlp, otlphttp"]:
        assert text in result.stderr


def test_run_rejects_bad_config_before_binding(tmp_path):
    result = subprocess.run([sys.executable, "-m", "collector", "run", "--config",
                             str(FIXTURES / "bad_port.yaml")], capture_output=True, text=True, timeout=60)
    assert result.returncode == 1 and "is not a port" in result.stderr


def test_port_in_use_is_a_clear_startup_error(tmp_path, ports):
    import socket
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        config = tmp_path / "c.yaml"
        config.write_text(ConfigBuilder().otlp(http=port).pipeline("traces", exporters=["debug"]).yaml())
        result = subprocess.run([sys.executable, "-m", "collector", "run", "--config", str(config)],
                                capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert f"cannot listen on 127.0.0.1:{port}: address already in use" in result.stderr


def test_env_expansion():
    env = {"KEY": "abc", "EMPTY": ""}
    assert expand_env("${env:KEY}", env) == "abc"
    assert expand_env("x-${env:MISSING:-dflt}-y", env) == "x-dflt-y"
    assert expand_env("${env:EMPTY:-dflt}", env) == "dflt"
    assert expand_env("${env:MISSING}", env) == ""
    assert expand_env("price $$5", env) == "price $5"


def test_unquoted_env_reference_takes_the_yaml_type(monkeypatch):
    monkeypatch.setenv("BATCH", "256")
    doc = parse_yaml("a: ${env:BATCH}\nb: '${env:BATCH}'\n")
    assert doc.data == {"a": 256, "b": "256"}


@pytest.mark.parametrize(("text", "seconds"), [("200ms", 0.2), ("5s", 5.0), ("1m", 60.0), ("1h30m", 5400.0),
                                                ("0", 0.0), (3, 3.0), ("1.5s", 1.5)])
def test_durations(text, seconds):
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["200", "5 s", "ms", "-1s", "1x"])
def test_bad_durations(text):
    with pytest.raises(ValueError):
        parse_duration(text)


def test_sizes_and_endpoints():
    assert parse_size("20MiB") == 20 * 1024 * 1024
    assert parse_size(1000) == 1000
    assert parse_endpoint("http://localhost:4318/v1") == ("localhost", 4318)
    assert parse_endpoint("[::1]:4317") == ("::1", 4317)
    with pytest.raises(ValueError):
        parse_endpoint("localhost")


def test_default_config_is_packaged_and_valid():
    from collector.config import default_config_path
    packaged = default_config_path()
    assert packaged.read_text() == (ROOT / "config" / "collector.yaml").read_text()
    build_service(parse_yaml(packaged.read_text(), str(packaged)))


def test_duplicate_key_is_an_error():
    with pytest.raises(ConfigError, match="duplicate key") as error:
        parse_yaml("a: 1\nb: 2\na: 3\n", "x.yaml")
    assert error.value.line == 3


@pytest.mark.parametrize(("processors", "lost"), [
    (["genai_normalize", "genai_cost", "batch", "genai_attribution"], ["genai_attribution"]),
    (["genai_normalize", "batch", "genai_cost", "genai_metrics"], ["genai_cost"]),
    (["genai_normalize", "genai_cost", "batch", "genai_metrics"], []),  # it writes no span attribute
    (["batch", "genai_normalize", "genai_cost", "genai_attribution"], []),  # the merged request is read afresh
    (["genai_normalize", "genai_cost", "genai_attribution", "batch"], []),
])
def test_processors_whose_span_attributes_would_not_be_forwarded_are_named(processors, lost, tmp_path):
    """A GenAI processor after batch, when GenAI processors before it read the calls, writes attributes to
    the calls' original spans, which the merged request no longer holds: validate and the startup log say so."""
    config = tmp_path / "collector.yaml"
    config.write_text(ConfigBuilder().otlp(grpc=4317).pipeline("traces", processors=processors, exporters=["debug"])
                      .yaml())
    result = validate(config)
    assert result.returncode == 0, result.stderr
    warned = [line for line in result.stdout.splitlines() if line.startswith("warning:")]
    if lost:
        assert len(warned) == 1 and f"processors: {lost}" in warned[0] and "put these before batch" in warned[0]
    else:
        assert warned == []
