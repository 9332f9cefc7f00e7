"""Realistic export requests: GenAI spans from the dialect samples mixed with ordinary HTTP/DB spans."""

from __future__ import annotations

import json
import random
import time
from pathlib import Path

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.trace.v1 import trace_pb2

from collector.receivers import otlp_json
from collector.signals import Signal

SAMPLES = Path(__file__).parent.parent / "tests" / "fixtures" / "dialects"
MODEL_KEYS = ("gen_ai.request.model", "gen_ai.response.model")


def genai_templates() -> list[tuple[bytes, bytes, bytes]]:
    """(resource, scope, span) protobuf bytes of every span in the dialect samples."""
    templates = []
    for path in sorted(SAMPLES.glob("*.json")):
        request = otlp_json.decode(Signal.TRACES, path.read_bytes())
        for rs in request.resource_spans:
            for ss in rs.scope_spans:
                for span in ss.spans:
                    templates.append((rs.resource.SerializeToString(), ss.scope.SerializeToString(),
                                      span.SerializeToString()))
    return templates


def model_variant(model: str, variant: int) -> str:
    return f"{model}-v{variant}"


def variant_price_file(models: int) -> str:
    """Price-book YAML aliasing each model variant ``build_requests(models=...)`` makes to the model it was
    made from, so the variants are priced (and each is a price resolution of its own)."""
    names = sorted({kv.value.string_value for _, _, span in genai_templates()
                    for kv in trace_pb2.Span.FromString(span).attributes if kv.key in MODEL_KEYS})
    aliases = [f"  - {{match: {{model: {json.dumps(model_variant(name, v))}}}, model: {json.dumps(name)}}}"
               for name in names for v in range(models)]
    return "\n".join(["aliases:", *aliases]) + "\n"


def plain_span(rng: random.Random) -> trace_pb2.Span:
    span = trace_pb2.Span(name=rng.choice(["GET /api/orders", "POST /checkout", "SELECT orders"]),
                          kind=rng.choice([trace_pb2.Span.SPAN_KIND_SERVER, trace_pb2.Span.SPAN_KIND_CLIENT]),
                          start_time_unix_nano=1767225600000000000, end_time_unix_nano=1767225600050000000)
    for key, value in (("http.request.method", "GET"), ("url.path", "/api/orders"), ("db.system", "postgresql"),
                       ("server.address", "db.internal"), ("http.response.status_code", 200)):
        attr = span.attributes.add(key=key)
        if isinstance(value, int):
            attr.value.int_value = value
        else:
            attr.value.string_value = value
    return span


def build_requests(count: int, spans_per_request: int = 512, genai_share: float = 0.7, seed: int = 7,
                   models: int = 1, start_ns: int | None = None) -> list[bytes]:
    """``count`` serialised requests, each of ``spans_per_request`` spans with unique ids, starting at
    ``start_ns`` (default: now) one microsecond apart, as live traffic would. ``models`` > 1 spreads the
    calls over that many variants of each model name (``variant_price_file`` prices them) and that many
    customers (cache and rollup pressure)."""
    rng = random.Random(seed)
    start_ns = time.time_ns() if start_ns is None else start_ns
    templates = genai_templates()
    requests = []
    serial = 0
    for index in range(count):
        request = ExportTraceServiceRequest()
        resource_spans = request.resource_spans.add()
        resource_spans.resource.attributes.add(key="service.name").value.string_value = "bench-app"
        resource_spans.resource.attributes.add(key="tenant.id").value.string_value = f"customer-{index % models}"
        scopes: dict[bytes, trace_pb2.ScopeSpans] = {}
        for _ in range(spans_per_request):
            serial += 1
            if rng.random() < genai_share:
                _, scope_bytes, span_bytes = rng.choice(templates)
                span = trace_pb2.Span.FromString(span_bytes)
            else:
                scope_bytes, span = b"", plain_span(rng)
            span.trace_id = rng.randbytes(16)
            span.span_id = serial.to_bytes(8, "big")
            duration = span.end_time_unix_nano - span.start_time_unix_nano
            span.start_time_unix_nano = start_ns + serial * 1000
            span.end_time_unix_nano = span.start_time_unix_nano + max(duration, 0)
            for attr in span.attributes:
                if attr.key in ("gen_ai.response.id", "ai.response.id"):  # every call is its own
                    attr.value.string_value += f"-{serial}"
                elif models > 1 and attr.key in MODEL_KEYS:
                    attr.value.string_value = model_variant(attr.value.string_value, serial % models)
            if scope_bytes not in scopes:
                scopes[scope_bytes] = resource_spans.scope_spans.add()
                scopes[scope_bytes].scope.ParseFromString(scope_bytes)
            scopes[scope_bytes].spans.append(span)
        requests.append(request.SerializeToString())
    return requests
