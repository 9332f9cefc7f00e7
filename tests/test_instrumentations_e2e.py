"""Real instrumentations driving real provider SDKs against a local fake provider, through the collector."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from decimal import Decimal
from pathlib import Path

import pytest

from collector import native
from collector.attributes import plain_value
from collector.config_builder import ConfigBuilder
from collector.demo.fake_provider import FakeProvider
from collector.signals import Signal
from tests.client_matrix import CLIENTS, CLIENTS_DOC, Client, isolated_python, readme_section
from tests.conftest import on_ports
from tests.hot_paths import assert_same, both_paths

ROOT = Path(__file__).parent.parent
pytestmark = pytest.mark.clients


def genai_config(ports, exporter: tuple[str, dict] | None = None, ledger: Path | None = None) -> ConfigBuilder:
    """Receivers on ports grpc and http, normalize → cost → batch, and ``exporter`` (id, settings; default:
    OTLP/gRPC to the sink on port ``sink``); with ``ledger``, a DuckDB ledger there and the API on port ``api``."""
    exporter_id, settings = exporter or ("otlp/backend", {"endpoint": f"127.0.0.1:{ports['sink']}",
                                                          "tls": {"insecure": True}})
    config = on_ports(ports).processor("batch", timeout="50ms").exporter(exporter_id, **settings)
    exporters = [exporter_id]
    if ledger is not None:
        config.exporter("duckdb", path=str(ledger), flush_interval="20ms").cost_api(ports["api"])
        exporters.append("duckdb")
    return config.pipeline("traces", processors=["genai_normalize", "genai_cost", "batch"], exporters=exporters)


@pytest.fixture
def fake_provider():
    server = FakeProvider()
    yield server
    server.stop()


def run_app(library: str, provider_url: str, ports, protocol: str, calls: int = 2,
            python: Path = Path(sys.executable)) -> None:
    endpoint = f"http://127.0.0.1:{ports['grpc' if protocol == 'grpc' else 'http']}"
    env = {**os.environ, "OTEL_EXPORTER_OTLP_ENDPOINT": endpoint, "OTEL_EXPORTER_OTLP_PROTOCOL": protocol,
           "PYTHONPATH": str(ROOT)}
    result = subprocess.run([str(python), "-m", "collector.demo.app", library, provider_url, str(calls)], env=env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("client", CLIENTS, ids=lambda client: client.app)
def test_instrumented_sdk_calls_arrive_priced(client: Client, ports, collector, sink, fake_provider, tmp_path):
    python = isolated_python(client.venv) if client.venv else Path(sys.executable)
    sink.start_grpc(ports["sink"])
    collector(genai_config(ports, ledger=tmp_path / "costs.duckdb"), ports["health"])
    run_app(client.app, fake_provider.url, ports, client.protocol, python=python)
    spans_per_call = client.spans_per_call
    assert len(fake_provider.requests) == 2
    assert sink.wait_for(Signal.TRACES, 2 * spans_per_call) == 2 * spans_per_call
    forwarded = []
    for request in sink.requests[Signal.TRACES]:
        for resource_spans in request.resource_spans:
            for scope_spans in resource_spans.scope_spans:
                assert scope_spans.scope.name in client.scopes
                forwarded += [{kv.key: plain_value(kv.value) for kv in span.attributes} for span in scope_spans.spans]
    priced = [attrs for attrs in forwarded if attrs.get("gen_ai.usage.cost.status") == "priced"]
    assert len(priced) == 2, "one priced span per provider call"
    assert len(forwarded) - len(priced) == 2 * (spans_per_call - 1)  # SDK spans (duplicates), agent wrappers
    for attrs in priced:
        assert attrs["gen_ai.usage.cost.status"] == "priced"
        assert attrs["gen_ai.usage.cost.amount"] == client.cost
        assert attrs["gen_ai.usage.cost.currency"] == "USD"
        assert attrs["gen_ai.provider.name"] == client.provider_name
        if "gen_ai.usage.cost.reported" in attrs:
            assert attrs["gen_ai.usage.cost.mismatch"] is False
        assert attrs["gen_ai.usage.cost.pricing.snapshot"] == "genai-prices 0.2.3"
    if client.provider_name in ("anthropic", "aws.bedrock"):  # input made to include the cache, where it did not
        assert priced[0]["gen_ai.usage.input_tokens"] == 5150
        assert priced[0]["gen_ai.usage.cache_read.input_tokens"] == 4000
    # the ledger holds each call once, at the same cost
    url = f"http://127.0.0.1:{ports['api']}/api/v1/calls?from=1d"

    def stored() -> list[dict]:
        with urllib.request.urlopen(url, timeout=5) as reply:
            return json.loads(reply.read())["calls"]
    deadline = time.monotonic() + 10
    while len(stored()) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    calls = stored()
    assert len(calls) == 2 and all(Decimal(call["cost"]) == Decimal(repr(client.cost)) for call in calls)
    if native.available():  # the client's spans (as forwarded) through the processors again, on both paths
        for request in sink.requests[Signal.TRACES]:
            assert_same(*both_paths(request.SerializeToString()))


def test_readme_table_is_generated_from_the_matrix():
    """The README lists exactly the clients the tests run (versions aside: regenerate with
    ``python -m tests.client_matrix --write``)."""
    rows = readme_section((ROOT / "README.md").read_text()).splitlines()[2:]
    assert [row.rsplit(" | ", 1)[1].rstrip(" |") for row in rows[:len(CLIENTS)]] == [c.what for c in CLIENTS]
    assert [row.split(" | ", 1)[0].count("`") // 2 for row in rows[:len(CLIENTS)]] == \
        [len(c.instrumentation) for c in CLIENTS]
    assert len(rows) == len(CLIENTS) + 2  # + the Vercel AI SDK and Phoenix rows
    assert readme_section(CLIENTS_DOC.read_text()) == readme_section((ROOT / "README.md").read_text())
