"""Running one request through the GenAI processors on both hot paths, and comparing what comes out."""

from __future__ import annotations

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from collector.batch import TelemetryBatch
from collector.pipeline import Fanout, ProcessorRun
from collector.signals import Signal
from collector.storage.rows import CallColumns
from pricing_catalog.catalog import PriceCatalog
from processors.genai_attribution import AttributionConfig, GenAIAttribution
from processors.genai_cost import CostConfig, GenAICost
from processors.genai_index import indexer_for
from processors.genai_normalize import GenAINormalize, NormalizeConfig
from processors.genai_redact import GenAIRedact, RedactConfig
from tests.genai_helpers import context

CATALOG = PriceCatalog()
ATTRIBUTION = AttributionConfig(customer=("resource.tenant.id", "span.customer.id"), feature=("span.gen_ai.system",
                                                                                              "resource.service.name"))


def pipeline(keep_original: bool = True, redact: bool = False) -> ProcessorRun:
    """genai_normalize (with a custom mapping), genai_cost and genai_attribution, after genai_redact
    (remove mode, as production.yaml has it) when ``redact``."""
    processors = [GenAINormalize(NormalizeConfig(keep_original=keep_original,
                                                 custom_mappings={"my.model": "gen_ai.request.model"})),
                  GenAICost(CostConfig(), context(), CATALOG), GenAIAttribution(ATTRIBUTION)]
    if redact:
        processors.insert(0, GenAIRedact(RedactConfig(mode="remove", allow=("input.value.kept",))))
    return ProcessorRun(processors, Fanout([]), indexer_for(processors))


def both_paths(wire: bytes, keep_original: bool = True, redact: bool = False) -> tuple[TelemetryBatch, TelemetryBatch]:
    """The request through the same pipeline on the Python path and (when the native core vouches for it)
    on the native path, each with processors of its own."""
    reference = TelemetryBatch(Signal.TRACES, ExportTraceServiceRequest.FromString(wire))
    candidate = TelemetryBatch.from_wire(Signal.TRACES, wire)
    pipeline(keep_original, redact).run(reference)
    pipeline(keep_original, redact).run(candidate)
    return reference, candidate


def assert_same(reference: TelemetryBatch, candidate: TelemetryBatch) -> None:
    forwarded = ExportTraceServiceRequest.FromString(candidate.serialized())
    assert forwarded == ExportTraceServiceRequest.FromString(reference.serialized())
    assert len(candidate.genai) == len(reference.genai)
    for ours, theirs in zip(candidate.genai, reference.genai, strict=True):
        assert (ours.dialect, ours.provider, ours.model, ours.input, ours.output, ours.cache_read, ours.cache_write,
                ours.billable, ours.skip_reason, ours.usage_error, ours.attribution) == \
               (theirs.dialect, theirs.provider, theirs.model, theirs.input, theirs.output, theirs.cache_read,
                theirs.cache_write, theirs.billable, theirs.skip_reason, theirs.usage_error, theirs.attribution)
    rows = []
    for batch in (reference, candidate):
        columns = CallColumns(("customer", "feature"))
        columns.add(batch)
        rows.append(columns.columns)
    assert rows[0] == rows[1]
