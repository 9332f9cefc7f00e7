"""Real OpenTelemetry SDK exporters → collector subprocess → a real OTLP backend, for every signal."""

from __future__ import annotations

import gzip
import json
import logging

import pytest
from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter as GrpcLogExporter
from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter as GrpcMetricExporter
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcSpanExporter
from opentelemetry.exporter.otlp.proto.http import Compression as HttpCompression
from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter as HttpLogExporter
from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter as HttpMetricExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpSpanExporter
from opentelemetry.sdk._logs import LoggerProvider, LoggingHandler
from opentelemetry.sdk._logs.export import SimpleLogRecordProcessor
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

from collector.config_builder import ConfigBuilder
from collector.receivers import otlp_json
from collector.signals import Signal
from tests.conftest import on_ports
from tests.test_receiver_errors import post

RESOURCE = Resource.create({"service.name": "checkout", "tenant.id": "acme"})


def passthrough_config(ports, exporter: str) -> ConfigBuilder:
    return (on_ports(ports)
            .processor("batch", send_batch_size=100, timeout="50ms")
            .exporter("otlp/backend", endpoint=f"127.0.0.1:{ports['sink_grpc']}", tls={"insecure": True},
                      headers={"x-api-key": "${env:BACKEND_KEY}"})
            .exporter("otlphttp/backend", endpoint=f"http://127.0.0.1:{ports['sink_http']}", compression="gzip")
            .exporter("debug", verbosity="basic")
            .pipeline("traces", processors=["batch"], exporters=[exporter, "debug"])
            .pipeline("metrics", exporters=[exporter])
            .pipeline("logs", processors=["batch"], exporters=[exporter]))


def send_all_signals(transport: str, ports) -> list:
    """Emit 25 spans, a counter and 3 log records through the real SDK; return the spans."""
    if transport == "grpc":
        endpoint = f"127.0.0.1:{ports['grpc']}"
        span_exporter = GrpcSpanExporter(endpoint=endpoint, insecure=True, compression=None)
        metric_exporter = GrpcMetricExporter(endpoint=endpoint, insecure=True)
        log_exporter = GrpcLogExporter(endpoint=endpoint, insecure=True)
    else:
        base = f"http://127.0.0.1:{ports['http']}"
        span_exporter = HttpSpanExporter(endpoint=f"{base}/v1/traces", compression=HttpCompression.Gzip)
        metric_exporter = HttpMetricExporter(endpoint=f"{base}/v1/metrics")
        log_exporter = HttpLogExporter(endpoint=f"{base}/v1/logs", compression=HttpCompression.Gzip)

    tracer_provider = TracerProvider(resource=RESOURCE)
    tracer_provider.add_span_processor(SimpleSpanProcessor(span_exporter))
    tracer = tracer_provider.get_tracer("tests.forwarding")
    finished = []
    for i in range(25):
        with tracer.start_as_current_span(f"op-{i}", attributes={"gen_ai.request.model": "gpt-4o", "i": i}) as span:
            finished.append(span)
    tracer_provider.shutdown()

    meter_provider = MeterProvider(resource=RESOURCE,
                                   metric_readers=[PeriodicExportingMetricReader(metric_exporter, 60_000)])
    counter = meter_provider.get_meter("tests.forwarding").create_counter("requests")
    counter.add(3, {"route": "/a"})
    counter.add(4, {"route": "/b"})
    meter_provider.shutdown()

    logger_provider = LoggerProvider(resource=RESOURCE)
    logger_provider.add_log_record_processor(SimpleLogRecordProcessor(log_exporter))
    logger = logging.getLogger(f"tests.forwarding.{transport}")
    logger.propagate = False
    logger.addHandler(LoggingHandler(logger_provider=logger_provider))
    for i in range(3):
        logger.warning("log line %d", i)
    logger_provider.shutdown()
    return finished


@pytest.mark.parametrize(("transport", "exporter"), [("grpc", "otlp/backend"), ("http", "otlphttp/backend")])
def test_sdk_telemetry_arrives_unchanged_at_backend(transport, exporter, ports, collector, sink):
    sink.start_grpc(ports["sink_grpc"])
    sink.start_http(ports["sink_http"])
    process = collector(passthrough_config(ports, exporter), ports["health"], env={"BACKEND_KEY": "s3cret"})

    sent = send_all_signals(transport, ports)

    assert sink.wait_for(Signal.TRACES, 25) == 25
    assert sink.wait_for(Signal.METRICS, 2) == 2
    assert sink.wait_for(Signal.LOGS, 3) == 3
    received = {(s.trace_id, s.span_id): s for s in sink.spans()}
    for span in sent:
        ctx = span.get_span_context()
        key = (ctx.trace_id.to_bytes(16, "big"), ctx.span_id.to_bytes(8, "big"))
        assert key in received, f"span {span.name} missing"
        forwarded = received[key]
        assert forwarded.name == span.name
        assert {kv.key: kv.value for kv in forwarded.attributes}["i"].int_value == span.attributes["i"]
    resource = sink.requests[Signal.TRACES][0].resource_spans[0].resource
    assert {kv.key: kv.value.string_value for kv in resource.attributes}["tenant.id"] == "acme"
    points = [dp.as_int for r in sink.requests[Signal.METRICS] for rm in r.resource_metrics
              for sm in rm.scope_metrics for m in sm.metrics for dp in m.sum.data_points]
    assert sorted(points) == [3, 4]
    bodies = sorted(lr.body.string_value for r in sink.requests[Signal.LOGS] for rl in r.resource_logs
                    for sl in rl.scope_logs for lr in sl.log_records)
    assert bodies == ["log line 0", "log line 1", "log line 2"]
    if exporter == "otlp/backend":
        assert all(h.get("x-api-key") == "s3cret" for h in sink.headers)

    counters = process.health(ports["health"])["components"]
    assert counters["otlp"]["traces"] == {"received": 25, "accepted": 25}
    assert counters[exporter]["traces"]["exported"] == 25
    assert process.stop() == 0


def test_otlp_json_with_hex_ids_and_gzip_is_forwarded_as_protobuf(ports, collector, sink):
    sink.start_grpc(ports["sink_grpc"])
    sink.start_http(ports["sink_http"])
    collector(passthrough_config(ports, "otlp/backend"), ports["health"])
    trace_id, span_id = "5b8efff798038103d269b633813fc60c", "eee19b7ec3c1b174"
    body = json.dumps({"resourceSpans": [{"scopeSpans": [{"spans": [{
        "traceId": trace_id, "spanId": span_id, "name": "json-span", "kind": 3,
        "startTimeUnixNano": "1700000000000000000", "endTimeUnixNano": 1700000001000000000,
        "attributes": [{"key": "gen_ai.usage.input_tokens", "value": {"intValue": "12"}}],
        "futureField": {"ignored": True}}]}]}]}).encode()
    status, content_type, reply, _ = post(ports["http"], gzip.compress(body),
                                          {"Content-Type": "application/json", "Content-Encoding": "gzip"})
    assert (status, content_type, json.loads(reply)) == (200, "application/json", {})
    assert sink.wait_for(Signal.TRACES, 1) == 1
    span = sink.spans()[0]
    assert (span.trace_id.hex(), span.span_id.hex(), span.kind) == (trace_id, span_id, 3)
    assert span.start_time_unix_nano == 1700000000000000000
    assert span.attributes[0].value.int_value == 12
    # and back: our encoder writes hex ids again
    encoded = json.loads(otlp_json.encode(Signal.TRACES, sink.requests[Signal.TRACES][0]))
    assert encoded["resourceSpans"][0]["scopeSpans"][0]["spans"][0]["traceId"] == trace_id
