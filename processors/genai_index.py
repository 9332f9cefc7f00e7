"""The index of GenAI calls a pipeline builds once per batch, for every processor that ``reads_genai``.

Each pipeline owns one :class:`~processors.span_reader.SpanReader`, made from what its processors declare:
``source_mappings`` (genai_normalize's ``custom_mappings``) and ``span_keys`` (the span attributes
genai_attribution reads), so the reader's one scan per span indexes everything they need.

On the native path (a trace request still undecoded, in a pipeline where no processor ``reads_message``
but those that edit the bytes themselves before the GenAI processors), the native core picks out the
spans with GenAI evidence from the request's bytes; only those spans and their resources are decoded,
and the same reader reads them. ``TelemetryBatch.invalidate`` splices them back.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from collector.batch import TelemetryBatch
from collector.component import Component, Processor
from collector.native import TRACE_WIRE
from collector.offload import run_offloaded
from processors.genai_call import GenAICall
from processors.genai_native import NativeGenAI, WireResources
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


class WireIndex:
    """The native path's index: the native core finds the spans with GenAI evidence in the request's bytes
    and the same reader reads them (``SpanReader.read_wire``); their resources alone are decoded. Where the
    pipeline starts with genai_normalize and genai_cost, the native stage does their work instead
    (:mod:`processors.genai_native`) when it can."""

    def __init__(self, reader: SpanReader, processors: Sequence[Component] = ()):
        self.reader = reader
        self.selector = TRACE_WIRE.selector(reader.evidence)
        self.stage = NativeGenAI.for_pipeline([p for p in processors if isinstance(p, Processor)], reader,
                                              self.selector)

    def __call__(self, batch: TelemetryBatch) -> list[GenAICall] | None:
        if self._staged(batch) and self.stage.run(batch):
            return None  # batch.native
        return self._read(batch)

    async def offloaded(self, batch: TelemetryBatch) -> list[GenAICall] | None:
        """The index, the native stage's work off the event loop's thread (:mod:`collector.offload`)."""
        if self._staged(batch) and await run_offloaded(self.stage.steps(batch)):
            return None
        return self._read(batch)

    def _staged(self, batch: TelemetryBatch) -> bool:
        return not batch.decoded and self.stage is not None

    def _read(self, batch: TelemetryBatch) -> list[GenAICall]:
        spans = None if batch.decoded else self.selector.read(batch.wire)
        if spans is None:  # decoded already, or a span the native reader leaves to upb
            return index_batch(batch, self.reader)
        read = self.reader.read_wire
        calls = []
        resources = WireResources(batch.wire)
        for resource_at, scope, span in spans:
            call = read(span, scope, resources.at(resource_at))
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
    if TRACE_WIRE is not None and _keeps_bytes(processors):
        return WireIndex(reader, processors)
    return lambda batch: index_batch(batch, reader)


def _keeps_bytes(processors: Sequence[Component]) -> bool:
    """Whether a request can stay bytes through these processors: none reads the decoded request, except
    those that edit the bytes themselves before the first GenAI processor."""
    before_genai = True
    for processor in processors:
        if not isinstance(processor, Processor):
            continue
        before_genai = before_genai and not processor.reads_genai
        if processor.reads_message and not (processor.edits_wire and before_genai):
            return False
    return True
