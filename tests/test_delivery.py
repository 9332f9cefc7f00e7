"""Exporter delivery: retry while the backend is down, no retry on permanent errors, drain on shutdown."""

from __future__ import annotations

import time

import grpc
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

from collector.config_builder import ConfigBuilder
from collector.signals import Signal
from tests.conftest import on_ports


def config(ports, retry: dict, batch_timeout: str = "50ms") -> ConfigBuilder:
    return (on_ports(ports, http=False)
            .processor("batch", send_batch_size=50, timeout=batch_timeout)
            .exporter("otlp/backend", endpoint=f"127.0.0.1:{ports['sink']}", tls={"insecure": True}, timeout="1s",
                      retry_on_failure=retry)
            .pipeline("traces", processors=["batch"], exporters=["otlp/backend"]))


def send_spans(ports, count: int, prefix: str = "s") -> None:
    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=f"127.0.0.1:{ports['grpc']}",
                                                                    insecure=True)))
    tracer = provider.get_tracer("tests.delivery")
    for i in range(count):
        tracer.start_span(f"{prefix}{i}").end()
    provider.shutdown()


def test_backend_down_then_up_delivers_everything_once(ports, collector, sink):
    retry = {"initial_interval": "100ms", "max_interval": "500ms", "max_elapsed_time": "60s"}
    process = collector(config(ports, retry), ports["health"])
    send_spans(ports, 120)
    time.sleep(1.0)  # several failed attempts against a closed port
    assert process.health(ports["health"])["components"]["otlp/backend"]["queue_size"] >= 0
    sink.start_grpc(ports["sink"])
    assert sink.wait_for(Signal.TRACES, 120, timeout=20) == 120
    time.sleep(0.5)
    names = [s.name for s in sink.spans()]
    assert len(names) == len(set(names)) == 120
    assert "export failed, will retry" in process.logs()
    assert process.stop() == 0


def test_permanent_error_is_not_retried(ports, collector, sink):
    sink.fail_with = grpc.StatusCode.INVALID_ARGUMENT
    sink.start_grpc(ports["sink"])
    process = collector(config(ports, {"initial_interval": "100ms"}), ports["health"])
    send_spans(ports, 10)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        counters = process.health(ports["health"])["components"]["otlp/backend"]
        if counters.get("traces", {}).get("failed") == 10:
            break
        time.sleep(0.1)
    assert counters["traces"]["failed"] == 10
    assert "permanent error, not retried: INVALID_ARGUMENT" in process.logs()
    assert "will retry" not in process.logs()


def test_sigterm_drains_batches_and_queues_then_exits_0(ports, collector, sink):
    sink.start_grpc(ports["sink"])
    # a long batch timeout: the spans are still in the batch processor when SIGTERM arrives
    process = collector(config(ports, {"initial_interval": "100ms"}, batch_timeout="1h"), ports["health"])
    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=f"127.0.0.1:{ports['grpc']}",
                                                                    insecure=True, timeout=30)))
    tracer = provider.get_tracer("tests.delivery")
    for i in range(7):
        tracer.start_span(f"pending{i}").end()
    import threading
    acknowledged = []
    flusher = threading.Thread(target=lambda: acknowledged.append(provider.force_flush(30_000)))
    flusher.start()  # blocks until the collector acknowledges
    time.sleep(1.0)
    assert sink.count(Signal.TRACES) == 0
    started = time.monotonic()
    assert process.stop() == 0
    assert time.monotonic() - started < 4, "in-flight request should be answered, not wait for the grace period"
    flusher.join(10)
    assert acknowledged == [True]
    assert sink.count(Signal.TRACES) == 7
    assert '"msg": "collector stopped"' in process.logs()
