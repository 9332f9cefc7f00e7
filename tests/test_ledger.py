"""The DuckDB ledger and the cost API, with a collector subprocess fed by the real SDK."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from decimal import Decimal

import pytest
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

from collector.config_builder import ConfigBuilder
from collector.storage.ledger import Ledger
from tests import otlp_client
from tests.conftest import on_ports

GPT4O = otlp_client.GPT4O  # one gpt-4o chat call: 1000 × $2.50 + 100 × $10 per MTok
GPT4O_COST = Decimal(otlp_client.GPT4O_COST)


def ledger_config(ports, db) -> ConfigBuilder:
    return (on_ports(ports)
            .processor("genai_attribution", customer=["header.x-customer-id", "resource.tenant.id", "span.customer.id"],
                       user=["span.user.id"], feature=["span.feature"], team=["resource.team"],
                       dimensions={"project": ["span.project"]}, default={"customer": "unknown"})
            .processor("batch", send_batch_size=64, timeout="50ms")
            .exporter("duckdb", path=str(db), flush_interval="20ms")
            .cost_api(ports["api"])
            .pipeline("traces", processors=["genai_normalize", "genai_cost", "genai_attribution", "batch"],
                      exporters=["duckdb"]))


def tracer(ports, tenant: str = "acme"):
    provider = TracerProvider(resource=Resource.create({"service.name": "shop", "tenant.id": tenant,
                                                        "team": "growth"}))
    exporter = OTLPSpanExporter(endpoint=f"127.0.0.1:{ports['grpc']}", insecure=True)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider, exporter


def emit(provider, count: int, **extra) -> list:
    spans = []
    tracer_ = provider.get_tracer("tests.ledger")
    for i in range(count):
        with tracer_.start_as_current_span("chat gpt-4o", attributes={**GPT4O, "user.id": f"u{i % 3}",
                                                                      "feature": "search", "project": "p1",
                                                                      **extra}) as span:
            spans.append(span)
    return spans


def api(ports, path: str) -> dict:
    with urllib.request.urlopen(f"http://127.0.0.1:{ports['api']}{path}", timeout=10) as reply:
        return json.loads(reply.read())


def api_error(ports, path: str) -> tuple[int, dict]:
    try:
        urllib.request.urlopen(f"http://127.0.0.1:{ports['api']}{path}", timeout=10)
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())
    raise AssertionError("expected an error")


@pytest.fixture
def db(tmp_path):
    return tmp_path / "costs.duckdb"


def test_calls_are_stored_once_attributed_and_queryable(ports, collector, db):
    process = collector(ledger_config(ports, db), ports["health"])
    provider, exporter = tracer(ports)
    spans = emit(provider, 9)
    provider.shutdown()
    # the same spans again, as an exporter retry would send them: counted once
    exporter = OTLPSpanExporter(endpoint=f"127.0.0.1:{ports['grpc']}", insecure=True)
    exporter.export([s for s in spans])
    exporter.shutdown()

    costs = api(ports, "/api/v1/costs?from=1d&group_by=customer,model,project&granularity=day")
    assert costs["totals"][0]["calls"] == 9
    assert Decimal(costs["totals"][0]["cost"]) == GPT4O_COST * 9
    [row] = costs["series"]
    assert (row["customer"], row["model"], row["project"]) == ("acme", "gpt-4o", "p1")
    assert row["input_tokens"] == 9000
    by_user = api(ports, "/api/v1/costs?from=1d&group_by=user&filter[customer]=acme")
    assert sorted((r["user"], r["calls"]) for r in by_user["series"]) == [("u0", 3), ("u1", 3), ("u2", 3)]
    assert api(ports, "/api/v1/costs?from=1d&filter[customer]=globex")["totals"] == []

    # pagination walks every row exactly once, newest first
    seen, cursor = [], None
    while True:
        page = api(ports, "/api/v1/calls?limit=4" + (f"&cursor={cursor}" if cursor else ""))
        seen += [(c["trace_id"], c["span_id"]) for c in page["calls"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == len(set(seen)) == 9
    first = api(ports, "/api/v1/calls?limit=1")["calls"][0]
    assert first["status"] == "priced" and first["customer"] == "acme" and first["team"] == "growth"
    assert first["snapshot"] == "genai-prices 0.2.3" and Decimal(first["cost"]) == GPT4O_COST

    assert process.stop() == 0
    ledger = Ledger.open(db, read_only=True)
    assert ledger.consistency()["consistent"]
    assert ledger.con.execute("SELECT count(*) FROM llm_calls").fetchone()[0] == 9
    ledger.close()


@pytest.mark.parametrize(("path", "parameter"), [
    ("/api/v1/costs?group_by=colour", "group_by"), ("/api/v1/costs?granularity=week", "granularity"),
    ("/api/v1/costs?from=yesterday", "from"), ("/api/v1/calls?limit=0", "limit"),
    ("/api/v1/calls?cursor=nope", "cursor"), ("/api/v1/costs?form=1d", "form"),
    ("/api/v1/costs?filter[colour]=red", "filter")])
def test_api_errors_name_the_parameter(ports, collector, db, path, parameter):
    collector(ledger_config(ports, db), ports["health"])
    status, body = api_error(ports, path)
    assert status == 400
    assert body["error"]["code"] == "bad_parameter" and body["error"]["message"].startswith(parameter)


def test_api_not_found_and_openapi(ports, collector, db):
    collector(ledger_config(ports, db), ports["health"])
    status, body = api_error(ports, "/api/v1/nothing")
    assert status == 404 and body["error"]["code"] == "not_found"
    document = api(ports, "/api/v1/openapi.json")
    assert set(document["paths"]) >= {"/api/v1/costs", "/api/v1/calls", "/api/v1/unpriced"}


def test_unpriced_models_are_listed(ports, collector, db):
    collector(ledger_config(ports, db), ports["health"])
    provider, _ = tracer(ports)
    emit(provider, 2, **{"gen_ai.request.model": "gpt-unknown-9"})
    provider.shutdown()
    [model] = api(ports, "/api/v1/unpriced")["models"]
    assert (model["provider"], model["model"], model["calls"]) == ("openai", "gpt-unknown-9", 2)


def test_kill_9_after_acknowledgement_keeps_every_acknowledged_call(ports, collector, db):
    process = collector(ledger_config(ports, db), ports["health"])
    provider, _ = tracer(ports)
    emit(provider, 25)  # SimpleSpanProcessor: each export returned, so each span was acknowledged
    provider.shutdown()
    process.proc.send_signal(signal.SIGKILL)
    process.proc.wait()
    process.start(ports["health"])  # same file, restarted
    costs = api(ports, "/api/v1/costs?from=1d")
    assert costs["totals"][0]["calls"] == 25
    assert Decimal(costs["totals"][0]["cost"]) == GPT4O_COST * 25
    assert process.stop() == 0


def test_a_newer_schema_is_refused(tmp_path, db, ports):
    ledger = Ledger.open(db)
    ledger.con.execute("INSERT INTO schema_version VALUES (99, now())")
    ledger.close()
    config = tmp_path / "c.yaml"
    config.write_text(ConfigBuilder().otlp(http=ports["http"]).exporter("duckdb", path=str(db))
                      .pipeline("traces", exporters=["duckdb"]).yaml())
    result = subprocess.run([sys.executable, "-m", "collector", "run", "--config", str(config)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert "schema version 99, newer than this genai-collector knows" in result.stderr
