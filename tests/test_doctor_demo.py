"""doctor on a running collector and on a stopped one's file; the demo end to end."""

from __future__ import annotations

import subprocess
import sys

from tests.conftest import run_cli
from tests.test_ledger import GPT4O, emit, ledger_config, tracer


def doctor(*args: str):
    return run_cli("doctor", *args)


def test_doctor_reports_traffic_prices_and_fixes(ports, collector, tmp_path):
    db = tmp_path / "d.duckdb"
    process = collector(ledger_config(ports, db), ports["health"])
    provider, _ = tracer(ports)
    emit(provider, 3)
    emit(provider, 2, **{"gen_ai.request.model": "gpt-unknown-9"})
    no_usage = {k: v for k, v in GPT4O.items() if "usage" not in k}
    provider.get_tracer("t").start_span("chat", attributes=no_usage).end()
    provider.shutdown()

    result = doctor("--config", str(process.config))
    out = result.stdout
    assert "PASS  protobuf backend: upb" in out and "PASS  config valid" in out
    assert "(by this collector)" in out and "PASS  receiver otlp answers OTLP/gRPC" in out
    assert "PASS  receiver otlp answers OTLP/HTTP" in out
    assert "PASS  GenAI calls in the last 24 hours: 6" in out
    assert "dialects detected: otel_semconv (6)" in out
    assert "WARN  calls without token counts: 1" in out and "include_usage" in out
    assert "WARN  unpriced model openai/gpt-unknown-9: 2 calls" in out
    assert "genai-collector pricing lookup --provider openai --model gpt-unknown-9" in out
    assert "PASS  rollups consistent with the calls" in out
    assert result.returncode == 0, out

    assert process.stop() == 0
    stopped = doctor("--config", str(process.config))
    assert "WARN  collector running" in stopped.stdout and "unpriced model openai/gpt-unknown-9" in stopped.stdout


def test_doctor_fails_on_a_bad_config():
    from tests.test_config import FIXTURES
    result = doctor("--config", str(FIXTURES / "bad_port.yaml"))
    assert result.returncode == 1 and "FAIL  config valid" in result.stdout and "is not a port" in result.stdout


def test_demo_runs_without_internet():
    result = subprocess.run([sys.executable, "-m", "collector", "demo", "--exit", "--calls", "2"],
                            capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "claude-sonnet-4-5-20250929" in out and "gpt-4o-mini-2024-07-18" in out and "TOTAL" in out
    assert "export OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:" in out and "dashboard:  http://127.0.0.1:" in out
    assert "demo stopped, files removed" in out
