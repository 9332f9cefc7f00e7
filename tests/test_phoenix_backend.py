"""A real third-party OTLP backend: Arize Phoenix receives the enriched spans over OTLP/HTTP."""

from __future__ import annotations

import json
import os
import subprocess
import time
import urllib.request

import pytest

from collector.demo.fake_provider import FakeProvider
from tests.client_matrix import OPENAI_COST, isolated_python
from tests.test_instrumentations_e2e import genai_config, run_app

pytestmark = pytest.mark.clients


@pytest.fixture
def phoenix(tmp_path, ports):
    """A Phoenix server (its own venv, SQLite in tmp_path) on free ports; yields its base URL."""
    port = ports["phoenix"]
    env = {**os.environ, "PHOENIX_HOST": "127.0.0.1", "PHOENIX_PORT": str(port),
           "PHOENIX_GRPC_PORT": str(ports["phoenix_grpc"]), "PHOENIX_WORKING_DIR": str(tmp_path / "phoenix"),
           "PHOENIX_TELEMETRY_ENABLED": "false"}
    log = open(tmp_path / "phoenix.log", "wb")  # noqa: SIM115 - closed below
    server = subprocess.Popen([str(isolated_python("phoenix").parent / "phoenix"), "serve"], env=env, stdout=log,
                              stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            assert server.poll() is None, (tmp_path / "phoenix.log").read_text()
            try:
                with urllib.request.urlopen(f"{url}/healthz", timeout=2):
                    break
            except OSError:
                assert time.monotonic() < deadline, "Phoenix did not start in 120 s"
                time.sleep(0.5)
        yield url
    finally:
        server.terminate()
        server.wait(30)
        log.close()


def phoenix_spans(url: str) -> list[dict]:
    with urllib.request.urlopen(f"{url}/v1/projects/default/spans?limit=100", timeout=10) as reply:
        return json.loads(reply.read())["data"]


def test_phoenix_stores_the_forwarded_spans_with_their_cost(phoenix, ports, collector):
    collector(genai_config(ports, ("otlphttp/phoenix", {"endpoint": phoenix})), ports["health"])
    provider = FakeProvider()
    try:
        run_app("openai", provider.url, ports, "http/protobuf")
    finally:
        provider.stop()
    deadline = time.monotonic() + 30
    while len(spans := phoenix_spans(phoenix)) < 2 and time.monotonic() < deadline:
        time.sleep(0.5)
    assert len(spans) == 2
    for span in spans:
        attrs = span["attributes"]
        assert attrs["gen_ai.usage.cost.status"] == "priced"
        assert attrs["gen_ai.usage.cost.amount"] == OPENAI_COST
        assert attrs["gen_ai.usage.cost.currency"] == "USD"
        assert attrs["gen_ai.usage.cost.pricing.model"] == "gpt-4o-mini"
        assert attrs["gen_ai.normalize.dialect"] == "otel_semconv"
