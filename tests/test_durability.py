"""Nothing acknowledged is lost: the disk queue across kill -9, a full disk queue, exactly-once ledger."""

from __future__ import annotations

import signal
import threading
import time

import grpc
import pytest
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from collector.config_builder import ConfigBuilder
from collector.signals import Signal
from collector.storage.ledger import Ledger
from tests.conftest import on_ports
from tests.test_ledger import GPT4O
from tests.test_receiver_errors import good_request


def durable_config(ports, tmp_path, max_size: str = "1GiB", http: bool = False) -> ConfigBuilder:
    return (on_ports(ports, http=http)
            .exporter("duckdb", path=str(tmp_path / "costs.duckdb"), flush_interval="20ms")
            .exporter("otlp/backend", endpoint=f"127.0.0.1:{ports['sink']}", tls={"insecure": True}, timeout="1s",
                      sending_queue={"storage": str(tmp_path / "queue"), "max_size": max_size, "num_consumers": 4},
                      retry_on_failure={"initial_interval": "100ms", "max_interval": "500ms",
                                        "max_elapsed_time": "2s"})
            .pipeline("traces", processors=["genai_normalize", "genai_cost"], exporters=["duckdb", "otlp/backend"]))


def make_spans(count: int, prefix: str) -> list:
    provider = TracerProvider(resource=Resource.create({"service.name": "durable"}))
    memory = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("tests.durability")
    for i in range(count):
        tracer.start_span(f"{prefix}{i}", attributes=GPT4O).end()
    return list(memory.get_finished_spans())


def test_kill_9_under_load_loses_no_acknowledged_span(ports, collector, sink, tmp_path):
    process = collector(durable_config(ports, tmp_path), ports["health"])  # the backend is down
    acknowledged: list = []
    stop = threading.Event()

    def send() -> None:
        exporter = OTLPSpanExporter(endpoint=f"127.0.0.1:{ports['grpc']}", insecure=True, timeout=2)
        round_ = 0
        while not stop.is_set():
            spans = make_spans(20, f"r{round_}-")
            if exporter.export(spans) == SpanExportResult.SUCCESS:
                acknowledged.extend(spans)
            round_ += 1

    sender = threading.Thread(target=send)
    sender.start()
    time.sleep(2.0)
    process.proc.send_signal(signal.SIGKILL)  # under load, with everything still queued
    process.proc.wait()
    stop.set()
    sender.join(30)
    assert len(acknowledged) >= 100

    sink.start_grpc(ports["sink"])
    process.start(ports["health"])  # restart on the same disk queue and ledger
    expected = {(s.context.trace_id.to_bytes(16, "big"), s.context.span_id.to_bytes(8, "big")) for s in acknowledged}

    def delivered() -> set:
        return {(s.trace_id, s.span_id) for s in sink.spans()}

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not expected <= delivered():
        time.sleep(0.2)
    missing = expected - delivered()
    assert not missing, f"{len(missing)} acknowledged spans never reached the backend"
    assert process.stop() == 0
    ledger = Ledger.open(tmp_path / "costs.duckdb", read_only=True)
    stored = {tuple(r) for r in ledger.con.execute("SELECT trace_id, span_id FROM llm_calls").fetchall()}
    rows = ledger.con.execute("SELECT count(*) FROM llm_calls").fetchone()[0]
    assert ledger.consistency()["consistent"]
    ledger.close()
    assert {(t.hex(), s.hex()) for t, s in expected} <= stored  # every acknowledged call, once
    assert rows == len(stored)
    duplicates = len(sink.spans()) - len(delivered())
    print(f"acknowledged {len(acknowledged)}, delivered {len(delivered())}, duplicates at the backend {duplicates}")


def test_full_disk_queue_is_refused_with_resource_exhausted(ports, collector, tmp_path):
    collector(durable_config(ports, tmp_path, max_size="40KiB"), ports["health"])  # the backend is down
    with grpc.insecure_channel(f"127.0.0.1:{ports['grpc']}") as channel:
        export = channel.unary_unary(Signal.TRACES.grpc_method)
        codes = []
        for _ in range(40):
            try:
                export(good_request(200), timeout=5)
                codes.append("OK")
            except grpc.RpcError as error:
                codes.append(error.code().name)
    assert codes[0] == "OK" and codes[-1] == "RESOURCE_EXHAUSTED"


@pytest.mark.parametrize("transport", ["http"])
def test_full_disk_queue_answers_429_over_http(transport, ports, collector, tmp_path):
    import http.client
    collector(durable_config(ports, tmp_path, max_size="40KiB", http=True), ports["health"])
    statuses = []
    for _ in range(40):
        conn = http.client.HTTPConnection("127.0.0.1", ports["http"], timeout=5)
        conn.request("POST", "/v1/traces", body=good_request(200), headers={"Content-Type": "application/x-protobuf"})
        reply = conn.getresponse()
        statuses.append((reply.status, reply.getheader("Retry-After")))
        conn.close()
    assert statuses[0][0] == 200 and statuses[-1][0] == 429 and int(statuses[-1][1]) >= 1
