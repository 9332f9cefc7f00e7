"""``debug`` exporter: logs a one-line summary per batch, or one line per span/record."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from collector import log
from collector.attributes import plain_value
from collector.batch import TelemetryBatch
from collector.component import BuildContext, Exporter
from collector.signals import Signal


@dataclass(frozen=True)
class DebugConfig:
    verbosity: Literal["basic", "normal", "detailed"] = "basic"  # detailed: one line per span too


class DebugExporter(Exporter):
    config_class = DebugConfig

    def __init__(self, config: DebugConfig, context: BuildContext):
        self.component_id = context.component_id
        self.telemetry = context.telemetry
        self.verbosity = config.verbosity
        self.log = log.get(f"exporter.{context.component_id}")

    def submit(self, batch: TelemetryBatch) -> None:
        signal = batch.signal.spec.name
        self.log.info(f"{signal} batch", extra={"exporter": self.component_id, "signal": signal,
                                                 "resources": batch.resource_count,
                                                 "items": batch.item_count})
        if self.verbosity == "detailed" and batch.signal is Signal.TRACES:
            for resource_spans in batch.message.resource_spans:
                for scope_spans in resource_spans.scope_spans:
                    for span in scope_spans.spans:
                        self.log.info("span", extra={
                            "trace_id": span.trace_id.hex(), "span_id": span.span_id.hex(), "span_name": span.name,
                            "scope": scope_spans.scope.name,
                            "attributes": {kv.key: plain_value(kv.value) for kv in span.attributes}})
        self.telemetry.add(self.component_id, signal, "exported", batch.item_count)
