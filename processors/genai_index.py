"""The index of GenAI calls a pipeline builds once per batch, for every processor that ``reads_genai``.

Each pipeline owns one :class:`~processors.span_reader.SpanReader`, made from what its processors declare:
``source_mappings`` (genai_normalize's ``custom_mappings``) and ``span_keys`` (the span attributes
genai_attribution reads), so the reader's one scan per span indexes everything they need.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from collector.batch import TelemetryBatch
from collector.component import Component, Processor
from processors.genai_call import GenAICall
from processors.span_reader import SpanReader


def index_batch(batch: TelemetryBatch, reader: SpanReader) -> list[GenAICall]:
    """Read every GenAI span of a traces batch (one attribute scan per span)."""
    calls = []
    read = reader.read
    for resource_spans in batch.message.resource_spans:
        resource = resource_spans.resource
        for scope_spans in resource_spans.scope_spans:
            scope = scope_spans.scope.name
            for span in scope_spans.spans:
                call = read(span, scope, resource)
                if call is not None:
                    calls.append(call)
    return calls


def indexer_for(processors: Sequence[Component]) -> Callable[[TelemetryBatch], list[GenAICall]] | None:
    """The index function of a pipeline of these processors, or None when none of them reads GenAI calls."""
    readers = [p for p in processors if isinstance(p, Processor) and p.reads_genai]
    if not readers:
        return None
    custom: dict[str, tuple[str, ...]] = {}
    for processor in readers:
        for field, keys in processor.source_mappings.items():
            custom[field] = (*custom.get(field, ()), *keys)
    reader = SpanReader(custom, frozenset().union(*(p.span_keys for p in readers)))
    return lambda batch: index_batch(batch, reader)
