"""Component type name → implementing class. Adding a component is one line here."""

from __future__ import annotations

import importlib

from collector.component import Component

RECEIVERS = {
    "otlp": "collector.receivers.otlp:OtlpReceiver",
}
PROCESSORS = {
    "batch": "processors.batch:BatchProcessor",
    "genai_normalize": "processors.genai_normalize:GenAINormalize",
    "genai_cost": "processors.genai_cost:GenAICost",
    "genai_attribution": "processors.genai_attribution:GenAIAttribution",
    "genai_budget": "processors.genai_budget:GenAIBudget",
    "genai_metrics": "processors.genai_metrics:GenAIMetrics",
    "genai_redact": "processors.genai_redact:GenAIRedact",
    "memory_limiter": "processors.memory_limiter:MemoryLimiter",
}
EXPORTERS = {
    "otlp": "collector.exporters.otlp_grpc:OtlpGrpcExporter",
    "otlphttp": "collector.exporters.otlp_http:OtlpHttpExporter",
    "debug": "collector.exporters.debug:DebugExporter",
    "duckdb": "collector.exporters.duckdb:DuckDBExporter",
    "postgresql": "collector.exporters.postgresql:PostgresExporter",
}
EXTENSIONS = {
    "health_check": "collector.extensions.health_check:HealthCheck",
    "cost_api": "collector.api.server:CostApi",
}

KINDS = {
    "receivers": RECEIVERS,
    "processors": PROCESSORS,
    "exporters": EXPORTERS,
    "extensions": EXTENSIONS,
}


def component_class(kind: str, type_name: str) -> type[Component]:
    """Import and return the class registered for ``type_name``; KeyError if none is."""
    module_name, _, class_name = KINDS[kind][type_name].partition(":")
    return getattr(importlib.import_module(module_name), class_name)
