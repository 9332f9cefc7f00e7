"""Every bad input gets the OTLP status a client can act on, and the collector keeps serving."""

from __future__ import annotations

import gzip
import http.client
import json
import zlib

import grpc
import pytest
from google.rpc import code_pb2, error_details_pb2, status_pb2
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
from opentelemetry.proto.trace.v1 import trace_pb2

from collector.config_builder import ConfigBuilder
from collector.signals import Signal


def config(ports, exporter: tuple[str, dict] = ("debug", {})) -> ConfigBuilder:
    return (ConfigBuilder().otlp(grpc=ports["grpc"], http=ports["http"], grpc_settings={"max_recv_msg_size_mib": 1},
                                 http_settings={"max_request_body_size": "64KiB"})
            .health_check(ports["health"]).exporter(exporter[0], **exporter[1])
            .pipeline("traces", exporters=[exporter[0]]))


def good_request(spans: int = 2) -> bytes:
    request = trace_service_pb2.ExportTraceServiceRequest()
    scope = request.resource_spans.add().scope_spans.add()
    for i in range(spans):
        span = scope.spans.add(name=f"s{i}", trace_id=bytes(range(16)), span_id=(i + 1).to_bytes(8, "big"))
        span.kind = trace_pb2.Span.SPAN_KIND_CLIENT
    return request.SerializeToString()


def post(port: int, body: bytes, headers: dict[str, str], path: str = "/v1/traces"):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("POST", path, body=body, headers=headers)
        reply = conn.getresponse()
        return reply.status, reply.getheader("Content-Type"), reply.read(), dict(reply.getheaders())
    finally:
        conn.close()


def assert_still_serves(ports) -> None:
    status, content_type, body, _ = post(ports["http"], good_request(), {"Content-Type": "application/x-protobuf"})
    assert status == 200 and content_type == "application/x-protobuf"
    trace_service_pb2.ExportTraceServiceResponse.FromString(body)


@pytest.fixture
def running(ports, collector):
    return collector(config(ports), ports["health"])


PROTOBUF = {"Content-Type": "application/x-protobuf"}


@pytest.mark.parametrize(("body", "headers", "status", "code", "message"), [
    (b"\xff\xff\xff\xff", PROTOBUF, 400, code_pb2.INVALID_ARGUMENT, "malformed traces request"),
    (b"{not json", {"Content-Type": "application/json"}, 400, code_pb2.INVALID_ARGUMENT, "not JSON"),
    (b'{"resourceSpans": [{"scopeSpans": [{"spans": [{"traceId": "zz", "spanId": "01"}]}]}]}',
     {"Content-Type": "application/json"}, 400, code_pb2.INVALID_ARGUMENT, "is not hex"),
    (good_request(), {"Content-Type": "text/plain"}, 415, code_pb2.INVALID_ARGUMENT, "unsupported Content-Type"),
    (good_request(), {**PROTOBUF, "Content-Encoding": "br"}, 415, code_pb2.INVALID_ARGUMENT,
     "unsupported Content-Encoding"),
    (gzip.compress(good_request())[:-12], {**PROTOBUF, "Content-Encoding": "gzip"}, 400, code_pb2.INVALID_ARGUMENT,
     "truncated"),
    (b"not gzip at all", {**PROTOBUF, "Content-Encoding": "gzip"}, 400, code_pb2.INVALID_ARGUMENT, "not valid gzip"),
    (b"\0" * (65 * 1024), PROTOBUF, 413, code_pb2.RESOURCE_EXHAUSTED, "max_request_body_size"),
    # 1 GiB of zeros compresses to ~1 MiB; refused after inflating at most the 64 KiB limit.
    (None, {**PROTOBUF, "Content-Encoding": "gzip"}, 413, code_pb2.RESOURCE_EXHAUSTED, "max_request_body_size"),
], ids=["bad-protobuf", "bad-json", "json-base64-ids", "wrong-content-type", "unknown-encoding", "truncated-gzip",
        "not-gzip", "oversized", "gzip-bomb"])
def test_http_bad_input(running, ports, gzip_bomb, body, headers, status, code, message):
    reply_status, content_type, reply_body, _ = post(ports["http"], gzip_bomb if body is None else body, headers)
    assert reply_status == status
    if content_type == "application/json":
        error = json.loads(reply_body)
        assert error["code"] == code and message in error["message"]
    else:
        error = status_pb2.Status.FromString(reply_body)
        assert error.code == code and message in error.message
    assert_still_serves(ports)


@pytest.fixture(scope="module")
def gzip_bomb() -> bytes:
    """1 GiB of zeros as a ~1 MiB gzip stream."""
    chunk = b"\0" * (1 << 20)
    deflater = zlib.compressobj(9, zlib.DEFLATED, 31)
    parts = [deflater.compress(chunk) for _ in range(1024)]
    parts.append(deflater.flush())
    bomb = b"".join(parts)
    assert len(bomb) < 2 << 20
    return bomb


def test_unknown_path_and_method(running, ports):
    assert post(ports["http"], good_request(), PROTOBUF, path="/v1/nothing")[0] == 404
    conn = http.client.HTTPConnection("127.0.0.1", ports["http"], timeout=5)
    conn.request("GET", "/v1/traces")
    assert conn.getresponse().status == 405
    conn.close()


def test_grpc_malformed_and_oversized(running, ports):
    with grpc.insecure_channel(f"127.0.0.1:{ports['grpc']}") as channel:
        export = channel.unary_unary(Signal.TRACES.grpc_method)
        with pytest.raises(grpc.RpcError) as error:
            export(b"\xff\xff\xff\xff", timeout=5)
        assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        with pytest.raises(grpc.RpcError) as error:
            export(b"\0" * (2 << 20), timeout=5)
        assert error.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert export(good_request(), timeout=5) == b""


def pipeline_full_config(ports) -> ConfigBuilder:
    # The backend port has nothing listening and retries forever: one batch fills the queue.
    return config(ports, ("otlp/dead", {"endpoint": f"127.0.0.1:{ports['dead']}", "tls": {"insecure": True},
                                        "sending_queue": {"queue_size": 1, "num_consumers": 1},
                                        "retry_on_failure": {"initial_interval": "10s", "max_elapsed_time": 0}}))


def test_pipeline_full_answers_retry_later(ports, collector):
    collector(pipeline_full_config(ports), ports["health"])
    statuses = [post(ports["http"], good_request(), PROTOBUF) for _ in range(3)]
    assert statuses[0][0] == 200
    status, _, body, headers = statuses[-1]
    assert status == 503 and int(headers["Retry-After"]) >= 1
    assert "sending queue of exporter otlp/dead is full" in status_pb2.Status.FromString(body).message

    with grpc.insecure_channel(f"127.0.0.1:{ports['grpc']}") as channel, pytest.raises(grpc.RpcError) as error:
        channel.unary_unary(Signal.TRACES.grpc_method)(good_request(), timeout=5)
    assert error.value.code() == grpc.StatusCode.UNAVAILABLE
    details = dict(error.value.trailing_metadata())["grpc-status-details-bin"]
    retry = error_details_pb2.RetryInfo()
    status_pb2.Status.FromString(details).details[0].Unpack(retry)
    assert retry.retry_delay.seconds >= 1
