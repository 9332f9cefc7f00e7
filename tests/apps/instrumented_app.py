"""An app instrumented the way users do it: ``python instrumented_app.py openai|anthropic PROVIDER_URL``.

Exports its spans with the OTLP exporter the standard environment variables configure
(``OTEL_EXPORTER_OTLP_ENDPOINT``, ``OTEL_EXPORTER_OTLP_PROTOCOL``).
"""

from __future__ import annotations

import os
import sys

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor


def exporter():
    if os.environ.get("OTEL_EXPORTER_OTLP_PROTOCOL") == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
        return OTLPSpanExporter(insecure=True)
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    return OTLPSpanExporter()


def main(library: str, provider_url: str, calls: int) -> None:
    provider = TracerProvider(resource=Resource.create({"service.name": f"{library}-app"}))
    provider.add_span_processor(BatchSpanProcessor(exporter()))
    trace.set_tracer_provider(provider)
    if library == "openai":
        from openai import OpenAI
        from opentelemetry.instrumentation.openai_v2 import OpenAIInstrumentor
        OpenAIInstrumentor().instrument(tracer_provider=provider)
        client = OpenAI(base_url=f"{provider_url}/v1", api_key="test-key", max_retries=0)
        for _ in range(calls):
            client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "Hi"}])
    else:
        from anthropic import Anthropic
        from opentelemetry.instrumentation.anthropic import AnthropicInstrumentor
        AnthropicInstrumentor().instrument(tracer_provider=provider)
        client = Anthropic(base_url=provider_url, api_key="test-key", max_retries=0)
        for _ in range(calls):
            client.messages.create(model="claude-sonnet-4-5", max_tokens=1024,
                                   messages=[{"role": "user", "content": "Hi"}])
    provider.shutdown()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]) if len(sys.argv) > 3 else 1)
