"""genai_redact, memory_limiter and the limits on what a request may carry."""

from __future__ import annotations

import threading
import time

import grpc
import pytest

from collector import attributes
from collector.batch import TelemetryBatch
from collector.component import Refused
from collector.config_builder import ConfigBuilder
from collector.signals import Signal
from processors.genai_redact import GenAIRedact, RedactConfig
from processors.memory_limiter import MemoryLimiter, MemoryLimiterConfig
from tests.genai_helpers import context, run, span_attributes
from tests.test_genai_processors import OPENAI_CALL, batch_of
from tests.test_receiver_errors import good_request


def with_content() -> TelemetryBatch:
    batch = batch_of({**OPENAI_CALL, "gen_ai.prompt.0.content": "my secret plan", "gen_ai.prompt.0.role": "user",
                      "input.value": "hello", "gen_ai.input.messages": "[...]", "http.route": "/chat"})
    span = batch.message.resource_spans[0].scope_spans[0].spans[0]
    event = span.events.add(name="gen_ai.content.prompt")
    attributes.add_to(event.attributes, "gen_ai.prompt", "secret")
    other = span.events.add(name="exception")
    attributes.add_to(other.attributes, "input.value", "secret too")
    attributes.add_to(other.attributes, "exception.type", "ValueError")
    return batch


def test_remove_mode_strips_content_and_keeps_the_rest_priced():
    batch = with_content()
    GenAIRedact().process(batch)
    run(batch)  # normalise and price after redaction
    attrs = span_attributes(batch)["span0"]
    assert not any(k.startswith(("gen_ai.prompt", "input.value", "gen_ai.input")) for k in attrs)
    assert attrs["http.route"] == "/chat" and attrs["gen_ai.usage.cost.amount"] == 0.0035
    span = batch.message.resource_spans[0].scope_spans[0].spans[0]
    assert [e.name for e in span.events] == ["exception"]
    assert [kv.key for kv in span.events[0].attributes] == ["exception.type"]


def test_redaction_after_pricing_keeps_the_index_right():
    batch = with_content()
    run(batch)
    GenAIRedact().process(batch)
    run(batch)  # again: the cost attributes are updated in place, not duplicated
    keys = [kv.key for kv in batch.message.resource_spans[0].scope_spans[0].spans[0].attributes]
    assert keys.count("gen_ai.usage.cost.amount") == 1 and "input.value" not in keys


def test_hash_mode_and_allow_list():
    batch = with_content()
    GenAIRedact(RedactConfig(mode="hash", allow=("gen_ai.prompt.0.role",))).process(batch)
    attrs = span_attributes(batch)["span0"]
    assert attrs["gen_ai.prompt.0.content"].startswith("sha256:") and "secret" not in attrs["gen_ai.prompt.0.content"]
    assert attrs["gen_ai.prompt.0.role"] == "user"
    assert attrs["input.value"] != "hello"


def test_memory_limiter_refuses_above_the_soft_limit():
    used = [100 * 2**20]
    limiter = MemoryLimiter(MemoryLimiterConfig(limit_mib=200, spike_limit_mib=50), context("memory_limiter"),
                            measure=lambda: used[0])
    limiter.check()
    limiter.process(batch_of(OPENAI_CALL))
    used[0] = 160 * 2**20
    limiter.check()
    with pytest.raises(Refused) as refused:
        limiter.process(batch_of(OPENAI_CALL))
    assert refused.value.exhausted and refused.value.retry_after > 0
    used[0] = 120 * 2**20
    limiter.check()
    limiter.process(batch_of(OPENAI_CALL))


def rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmRSS")) / 1024


def test_load_stays_under_the_memory_limit_while_clients_back_off(ports, collector, tmp_path):
    # a slow, dead backend and a large in-memory queue: without the limiter memory would only grow
    def limited_to(limit_mib: int) -> ConfigBuilder:
        return (ConfigBuilder().otlp(grpc=ports["grpc"], grpc_settings={"max_recv_msg_size_mib": 16})
                .processor("memory_limiter", limit_mib=limit_mib, spike_limit_mib=40, check_interval="100ms")
                .exporter("otlp/dead", endpoint=f"127.0.0.1:{ports['dead']}", tls={"insecure": True},
                          sending_queue={"queue_size": 100000}, retry_on_failure={"initial_interval": "10s"})
                .health_check(ports["health"])
                .pipeline("traces", processors=["memory_limiter"], exporters=["otlp/dead"]))

    process = collector(limited_to(4000), ports["health"])
    baseline = rss_mib(process.proc.pid)
    process.stop()
    limit = int(baseline) + 120
    process = collector(limited_to(limit), ports["health"])
    body = good_request(20000)  # ~1.5 MB
    outcomes = {"OK": 0, "RESOURCE_EXHAUSTED": 0}
    peak = [0.0]
    stop = threading.Event()

    def client() -> None:
        with grpc.insecure_channel(f"127.0.0.1:{ports['grpc']}",
                                   options=[("grpc.max_send_message_length", -1)]) as channel:
            export = channel.unary_unary(Signal.TRACES.grpc_method)
            while not stop.is_set():
                try:
                    export(body, timeout=10)
                    outcomes["OK"] += 1
                except grpc.RpcError as error:
                    outcomes[error.code().name] = outcomes.get(error.code().name, 0) + 1
                    time.sleep(0.05)  # back off

    clients = [threading.Thread(target=client) for _ in range(4)]
    for thread in clients:
        thread.start()
    deadline = time.monotonic() + 8
    while time.monotonic() < deadline:
        peak[0] = max(peak[0], rss_mib(process.proc.pid))
        time.sleep(0.05)
    stop.set()
    for thread in clients:
        thread.join(20)
    print(f"baseline {baseline:.0f} MiB, limit {limit} MiB, peak {peak[0]:.0f} MiB, outcomes {outcomes}")
    assert outcomes["OK"] > 0 and outcomes["RESOURCE_EXHAUSTED"] > 0
    assert peak[0] < limit


def test_request_limits_and_partial_success(ports, collector):
    from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

    from tests.test_receiver_errors import post
    limits = {"max_spans_per_request": 50, "max_attributes_per_span": 3, "max_attribute_value_bytes": "1KiB"}
    config = ConfigBuilder().otlp(http=ports["http"], limits=limits).health_check(ports["health"]) \
        .pipeline("traces", exporters=["debug"])
    collector(config, ports["health"])
    protobuf = {"Content-Type": "application/x-protobuf"}
    status, _, body, _ = post(ports["http"], good_request(51), protobuf)
    assert status == 400 and b"max_spans_per_request is 50" in body
    request = trace_service_pb2.ExportTraceServiceRequest.FromString(good_request(3))
    spans = request.resource_spans[0].scope_spans[0].spans
    for i in range(4):
        attributes.add_to(spans[0].attributes, f"a{i}", i)  # too many attributes
    attributes.add_to(spans[1].attributes, "big", "x" * 2000)  # a value too long
    status, _, body, _ = post(ports["http"], request.SerializeToString(), protobuf)
    response = trace_service_pb2.ExportTraceServiceResponse.FromString(body)
    assert status == 200 and response.partial_success.rejected_spans == 2
    assert "dropped" in response.partial_success.error_message
