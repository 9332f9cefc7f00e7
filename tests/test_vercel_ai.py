"""A non-Python client: the Vercel AI SDK on Node.js, exporting OTLP/HTTP protobuf (chunked) to the collector."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from collector.attributes import plain_value
from collector.demo.fake_provider import FakeProvider
from collector.signals import Signal
from tests.test_instrumentations_e2e import genai_config

NODE_DIR = Path(__file__).parent / "node"
pytestmark = [pytest.mark.clients,
              pytest.mark.skipif(shutil.which("node") is None or not (NODE_DIR / "node_modules").is_dir(),
                                 reason="needs Node.js and `npm ci --prefix tests/node` (./scripts/test runs it)")]


def test_vercel_ai_sdk_generate_text_is_priced_once(ports, collector, sink):
    sink.start_grpc(ports["sink"])
    collector(genai_config(ports), ports["health"])
    provider = FakeProvider()
    try:
        result = subprocess.run(["node", str(NODE_DIR / "vercel_app.mjs"), provider.url,
                                 f"http://127.0.0.1:{ports['http']}/v1/traces", "2"],
                                capture_output=True, text=True, timeout=120)
    finally:
        provider.stop()
    assert result.returncode == 0, result.stderr
    assert sink.wait_for(Signal.TRACES, 4) >= 4  # per call: ai.generateText and ai.generateText.doGenerate
    spans = {}
    for request in sink.requests[Signal.TRACES]:
        for resource_spans in request.resource_spans:
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    spans.setdefault(span.name, []).append({kv.key: plain_value(kv.value) for kv in span.attributes})
    for attrs in spans["ai.generateText.doGenerate"]:
        assert attrs["gen_ai.normalize.dialect"] == "vercel_ai"
        assert attrs["gen_ai.provider.name"] == "openai"
        assert attrs["gen_ai.usage.cost.status"] == "priced"
        assert attrs["gen_ai.usage.cost.amount"] == 0.0004944  # gpt-4o-mini: 2048 × $0.15 + 312 × $0.60 per MTok
    for attrs in spans["ai.generateText"]:  # the wrapper aggregates its steps: never priced
        assert not any(key.startswith("gen_ai.usage.cost") for key in attrs)
