"""Running one request through the GenAI processors on both hot paths, and comparing what comes out."""

from __future__ import annotations

from collections.abc import Callable

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from collector.batch import TelemetryBatch
from collector.cardinality import CardinalityLimit
from collector.component import Processor
from collector.pipeline import Fanout, ProcessorRun
from collector.signals import Signal
from collector.storage.rows import RESERVATION_KEY, CallColumns
from pricing_catalog.catalog import PriceCatalog
from processors.genai_attribution import AttributionConfig, GenAIAttribution
from processors.genai_call import GenAICall
from processors.genai_cost import CostConfig, GenAICost
from processors.genai_index import indexer_for
from processors.genai_normalize import GenAINormalize, NormalizeConfig
from processors.genai_redact import GenAIRedact, RedactConfig
from tests.genai_helpers import context

CATALOG = PriceCatalog()
# every kind of source, a default, and a cardinality limit requests reach
ATTRIBUTION = AttributionConfig(customer=("header.x-customer-id", "resource.tenant.id", "span.customer.id"),
                                user=("span.user.id",), feature=("span.gen_ai.system", "resource.service.name"),
                                team=("resource.team",), dimensions={"project": ("baggage.project",)},
                                default={"team": "platform"}, max_cardinality=2)


def pipeline(keep_original: bool = True, redact: bool = False, attribution: bool = True,
             reference: bool = False, last: Callable[[], Processor] | None = None) -> ProcessorRun:
    """genai_normalize (with a custom mapping), genai_cost and genai_attribution (unless not ``attribution``:
    then no processor reads the calls the native stage makes), after genai_redact (remove mode, as
    production.yaml has it) when ``redact``, and the processor ``last`` makes, last. The ``reference``
    pipeline caps attribution values with the
    pure-Python ``CardinalityLimit`` (the other shares the native one with the stage)."""
    attributions = [GenAIAttribution(ATTRIBUTION)] * attribution
    for processor in attributions:  # the ledger then records reservations too, as with genai_budget
        processor.span_keys = processor.span_keys | {RESERVATION_KEY}
    processors = [GenAINormalize(NormalizeConfig(keep_original=keep_original,
                                                 custom_mappings={"my.model": "gen_ai.request.model"})),
                  GenAICost(CostConfig(), context(), CATALOG), *attributions, *([last()] if last else [])]
    if redact:
        processors.insert(0, GenAIRedact(RedactConfig(mode="remove", allow=("input.value.kept",))))
    run = ProcessorRun(processors, Fanout([]), indexer_for(processors))
    if reference:  # after the native stage took the shared ones (the reference batch is decoded: it runs none)
        for processor in attributions:
            processor.capped = {dimension: CardinalityLimit(ATTRIBUTION.max_cardinality) for dimension in
                                processor.capped}
    return run


def both_paths(wire: bytes, keep_original: bool = True, redact: bool = False, attribution: bool = True,
               headers: dict[str, str] | None = None,
               last: Callable[[], Processor] | None = None) -> tuple[TelemetryBatch, TelemetryBatch]:
    """The request (with these request headers) through the same pipeline on the Python path and (when the
    native core vouches for it) on the native path, each with processors of its own (``last`` makes the
    reference's, then the candidate's)."""
    headers = headers or {}
    reference = TelemetryBatch(Signal.TRACES, ExportTraceServiceRequest.FromString(wire), headers)
    candidate = TelemetryBatch.from_wire(Signal.TRACES, wire, headers)
    pipeline(keep_original, redact, attribution, reference=True, last=last).run(reference)
    pipeline(keep_original, redact, attribution, last=last).run(candidate)
    return reference, candidate


def assert_same(reference: TelemetryBatch, candidate: TelemetryBatch) -> None:
    """The same forwarded request, ledger rows (the candidate's made first, before its calls are: by the native
    core where it can) and calls."""
    rows = []
    for batch in (candidate, reference):
        columns = CallColumns(("customer", "feature", "user", "not_attributed"))
        columns.add(batch)
        rows.append(columns.columns)
    assert rows[0] == rows[1]
    forwarded = ExportTraceServiceRequest.FromString(candidate.serialized())
    assert forwarded == ExportTraceServiceRequest.FromString(reference.serialized())
    assert len(candidate.genai) == len(reference.genai)
    for ours, theirs in zip(candidate.genai, reference.genai, strict=True):
        assert _fields(ours) == _fields(theirs)
        assert (ours.cost is None) == (theirs.cost is None)
        if ours.cost is not None:
            assert (ours.cost.status, ours.cost.amount_pico, ours.cost.breakdown, ours.cost.reason, ours.cost.source,
                    ours.cost.reported, ours.cost.mismatch, ours.cost.snapshot) == \
                   (theirs.cost.status, theirs.cost.amount_pico, theirs.cost.breakdown, theirs.cost.reason,
                    theirs.cost.source, theirs.cost.reported, theirs.cost.mismatch, theirs.cost.snapshot)


def _fields(call: GenAICall) -> tuple:
    return (call.dialect, call.provider, call.operation, call.request_model, call.response_model, call.response_id,
            call.input, call.output, call.cache_read, call.cache_write, call.reasoning, call.input_audio,
            call.output_audio, call.total, call.tier, call.reported_cost, call.billable, call.skip_reason,
            call.usage_error, call.attribution)
