"""Real instrumentations driving real provider SDKs against a local fake provider, through the collector."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from collector.demo.fake_provider import FakeProvider
from collector.exporters.debug import _plain
from collector.signals import Signal

ROOT = Path(__file__).parent.parent


def genai_config(ports) -> str:
    return f"""
receivers:
  otlp:
    protocols:
      grpc: {{endpoint: 127.0.0.1:{ports['grpc']}}}
      http: {{endpoint: 127.0.0.1:{ports['http']}}}
processors:
  genai_normalize: {{}}
  genai_cost: {{}}
  batch: {{timeout: 50ms}}
exporters:
  otlp/backend: {{endpoint: 127.0.0.1:{ports['sink']}, tls: {{insecure: true}}}}
extensions:
  health_check: {{endpoint: 127.0.0.1:{ports['health']}}}
service:
  extensions: [health_check]
  pipelines:
    traces: {{receivers: [otlp], processors: [genai_normalize, genai_cost, batch], exporters: [otlp/backend]}}
"""


@pytest.fixture
def fake_provider():
    server = FakeProvider()
    yield server
    server.stop()


def run_app(library: str, provider_url: str, ports, protocol: str, calls: int = 2) -> None:
    endpoint = f"http://127.0.0.1:{ports['grpc' if protocol == 'grpc' else 'http']}"
    env = {**os.environ, "OTEL_EXPORTER_OTLP_ENDPOINT": endpoint, "OTEL_EXPORTER_OTLP_PROTOCOL": protocol,
           "PYTHONPATH": str(ROOT)}
    result = subprocess.run([sys.executable, "-m", "collector.demo.app", library, provider_url, str(calls)], env=env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize(("library", "protocol", "scopes", "spans_per_call", "expected"), [
    # gpt-4o-mini-2024-07-18: 2048 × $0.15 + 312 × $0.60 per MTok. openai-v2 2.4 emits its spans through
    # opentelemetry-util-genai's handler, whose scope name is the handler's.
    ("openai", "http/protobuf", ("opentelemetry.instrumentation.openai_v2", "opentelemetry.util.genai.handler"),
     1, 0.0004944),
    # claude-sonnet-4-5: Anthropic raw input 150 + cache read 4000 + cache write 1000 (OpenLLMetry sums them):
    # 150 × $3 + 4000 × $0.30 + 1000 × $3.75 + 420 × $15. The anthropic SDK (2.x) emits a span of its own
    # for each call beside OpenLLMetry's: same response id, priced once.
    ("anthropic", "grpc", ("opentelemetry.instrumentation.anthropic", "com.anthropic.sdk.python"), 2, 0.0117),
    # OpenInference: llm.token_count.prompt / completion, llm.model_name from the response
    ("openinference", "http/protobuf", ("openinference.instrumentation.openai",), 1, 0.0004944),
    # pydantic-ai: an invoke_agent wrapper (aggregated usage, not priced) around each chat span, which
    # carries pydantic-ai's own operation.cost (from genai-prices): kept as reported, no mismatch
    ("pydantic_ai", "http/protobuf", ("pydantic-ai",), 2, 0.0004944),
    ("openllmetry-openai", "grpc", ("opentelemetry.instrumentation.openai.v1",), 1, 0.0004944),
    # OpenInference anthropic 3.x sums input + cache read + cache write into llm.token_count.prompt
    ("openinference-anthropic", "http/protobuf", ("openinference.instrumentation.anthropic",
                                                  "com.anthropic.sdk.python"), 2, 0.0117),
])
def test_instrumented_sdk_calls_arrive_priced(library, protocol, scopes, spans_per_call, expected, ports, collector,
                                              sink, fake_provider):
    sink.start_grpc(ports["sink"])
    collector(genai_config(ports), ports["health"])
    run_app(library, fake_provider.url, ports, protocol)
    assert len(fake_provider.requests) == 2
    assert sink.wait_for(Signal.TRACES, 2 * spans_per_call) == 2 * spans_per_call
    forwarded = []
    for request in sink.requests[Signal.TRACES]:
        for resource_spans in request.resource_spans:
            for scope_spans in resource_spans.scope_spans:
                assert scope_spans.scope.name in scopes
                forwarded += [{kv.key: _plain(kv.value) for kv in span.attributes} for span in scope_spans.spans]
    priced = [attrs for attrs in forwarded if attrs.get("gen_ai.usage.cost.status") == "priced"]
    assert len(priced) == 2, "one priced span per provider call"
    assert len(forwarded) - len(priced) == 2 * (spans_per_call - 1)  # SDK spans (duplicates), agent wrappers
    for attrs in priced:
        assert attrs["gen_ai.usage.cost.status"] == "priced"
        assert attrs["gen_ai.usage.cost.amount"] == expected
        assert attrs["gen_ai.usage.cost.currency"] == "USD"
        assert attrs["gen_ai.provider.name"] == ("anthropic" if "anthropic" in library else "openai")
        if "gen_ai.usage.cost.reported" in attrs:
            assert attrs["gen_ai.usage.cost.mismatch"] is False
        assert attrs["gen_ai.usage.cost.pricing.snapshot"] == "genai-prices 0.2.3"
    if "anthropic" in library:
        assert priced[0]["gen_ai.usage.input_tokens"] == 5150
        assert priced[0]["gen_ai.usage.cache_read.input_tokens"] == 4000
