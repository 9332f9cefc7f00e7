"""The native GenAI stage: ``genai_normalize`` then ``genai_cost`` run by the native core on a request's bytes.

Where a pipeline's first GenAI processors are ``genai_normalize`` followed by ``genai_cost`` and requests
stay bytes (:mod:`processors.genai_index`), the native core reads, normalises and prices the GenAI calls of
a request in one pass, without a Python object per call. Python answers once what the stage has not seen:
the plan of each span shape (from the same :class:`~processors.span_reader.SpanReader`), each provider,
operation, tier and host text (:mod:`processors.dialects`), each (provider, model, tier, day)'s compiled
price (:mod:`pricing_catalog`), which usage keys a price reads. A span that needs what only Python does
(LiteLLM's rule, which parses Python literals; a span the collector already wrote to; a price with off-peak
hours, a negotiated factor or a currency other than USD; values whose Python reading the core does not
reproduce, such as JSON only Python parses) is read by the span reader and changed by the processors'
own per-call code (``GenAINormalize.write``, ``GenAICost.apply``) in the same pass; duplicates are marked
over all the request's calls, in its order, by the native core. The dialect rules but LiteLLM's are
applied by the core too (``native/src/rules.rs``, held to :mod:`processors.dialect_rules`). The stage
declines a whole request only when it cannot read it (and then the processors run as before).

The stage's phases are native jobs, and :meth:`NativeGenAI.steps` is their order with the Python between
them (:mod:`collector.offload`): in the collector they run on the native core's worker thread while the
event loop serves other requests; :meth:`NativeGenAI.run` runs them on the caller's thread.

When ``genai_attribution`` follows ``genai_cost``, the stage attributes the calls too. The ledger rows of a
request are made by the native core as Arrow data (:meth:`NativeCalls.ledger`), which ``genai_budget`` and
``genai_metrics`` read as well (:meth:`NativeCalls.columns`); the calls become :class:`~processors.genai_call.WireCall`
objects only when something else reads ``batch.genai``: :class:`NativeCalls` makes them from the stage's
records.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import pyarrow as pa
from opentelemetry.proto.resource.v1.resource_pb2 import Resource

from collector import native
from collector.batch import TelemetryBatch
from collector.component import Processor
from collector.offload import Steps, run_here
from collector.storage.rows import RESERVATION_KEY, CallColumns
from pricing_catalog.compiled import Breakdown, PricingError
from processors import dialects
from processors.dialect_rules import DIALECT_RULES
from processors.genai_attribution import ATTRIBUTE_PREFIX, GenAIAttribution, resource_values
from processors.genai_call import GenAICall, WireCall
from processors.genai_cost import BREAKDOWN, COST, OPENLIT_COST, CostResult, GenAICost
from processors.genai_normalize import (
    DIALECT_ONLY_KEYS,
    IDENTITY,
    OPTIONAL_COUNTS,
    ORIGINAL_PREFIX,
    USAGE,
    GenAINormalize,
)
from processors.span_reader import NOT_GENAI, TRACELOOP_WRAPPERS, SpanReader, input_excludes_cache

# Rounds of questions to the resolver before a request is left to Python. Each round answers all that a read
# of the request raised; each answer lets the next read ask further: shapes, then texts, then hosts and model
# families, then prices, then usage plans.
ROUNDS = 8
# The providers whose input tokens some dialect counts without the cached ones (span_reader.input_excludes_cache).
_CACHE_EXCLUSIVE_FAMILIES = ("anthropic", "aws.bedrock")


class StageResolver:
    """Answers the native stage's questions from the tables and functions the Python path uses."""

    def __init__(self, reader: SpanReader, catalog: Any, openlit_compat: bool, attribution_keys: list[str]):
        self.reader = reader
        self.catalog = catalog
        self.attribution_keys = attribution_keys  # span attributes attribution reads, in the stage's order
        # attribution reads those after genai_normalize: where it may have changed them, Python reads the span
        self.normalized = {key for _, key in IDENTITY + USAGE} | DIALECT_ONLY_KEYS
        # attributes the processors write: on a span processed before, Python updates them in place
        self.written = dialects.OUTPUT_KEYS | ({OPENLIT_COST} if openlit_compat else set())

    def shape(self, scope: str, keys: tuple[str, ...]) -> tuple | bool | None:
        """The plan of a span shape; False when it is not a GenAI span, None when Python must read it."""
        shape = self.reader.shape_of(scope, keys)
        if shape is NOT_GENAI:
            return False
        index = shape.index
        if (shape.dialect in DIALECT_RULES and shape.dialect not in native.NATIVE_RULES) \
                or not self.written.isdisjoint(index) \
                or any(key in index and key in self.normalized for key in self.attribution_keys):
            return None
        excludes = {provider: input_excludes_cache(SimpleNamespace(provider=provider, dialect=shape.dialect,
                                                                   index=index))
                    for provider in (None, *_CACHE_EXCLUSIVE_FAMILIES)}
        otherwise = excludes.pop(None)
        mapped = {key for key in index if key in DIALECT_ONLY_KEYS}
        return (shape.dialect, [(field, position) for field, position, _ in shape.fields],
                index["telemetry.sdk.name"] if shape.openlit_sdk else None,
                index[shape.server_keys[0]] if shape.server_keys else None,
                "gen_ai.aggregated_usage.input_tokens" in index, index.get("traceloop.span.kind"),
                (otherwise, [(provider, value) for provider, value in excludes.items() if value != otherwise]),
                [index.get(key) for _, key in IDENTITY + USAGE],
                [position for position, key in enumerate(keys) if key in mapped],
                [index.get(key) for key in native.RULE_KEYS], [index.get(key) for key in self.attribution_keys],
                index.get(RESERVATION_KEY))

    @staticmethod
    def text(kind: str, text: str) -> str | None:
        if kind == "provider":
            return dialects.normalize_provider(text)
        if kind == "operation":
            return dialects.normalize_operation(text)
        if kind == "tier":
            return dialects.normalize_tier(text)
        if kind == "host":
            return dialects.provider_from_host(text)
        return dialects.provider_from_model(text)

    def price(self, provider: str | None, model: str, tier: str, start_ns: int) -> tuple:
        """("price", match, model id, provider id, tier, rates, leaf order, tiered?, cache-read unit?) of a
        price the stage can apply all day; ("none", reason) when there is none; ("python",) otherwise."""
        catalog = self.catalog
        try:
            match = catalog.lookup(provider, model, start_ns, tier)
        except LookupError as exc:
            return "none", str(exc)
        compiled = match.compiled
        if not compiled.exact or match.factor is not None or catalog.rate(start_ns) is not None \
                or not catalog.same_all_day(provider, model, start_ns, tier):
            return ("python",)
        return ("price", match, match.model_id, match.provider_id, match.tier, list(compiled.rates),
                [(key, list(descendants)) for key, descendants in compiled.leaf_order], compiled.has_tiers,
                any(key == "cache_read_tokens" for key, *_ in compiled.units))

    @staticmethod
    def usage_plan(match: Any, present: list[str], positive: list[str]) -> list[str] | str:
        """The usage keys a price reads from a usage with these keys (those in ``positive`` above zero), or the
        reason genai-prices finds it ambiguous."""
        try:
            return sorted(match.compiled.reported_keys({key: int(key in positive) for key in present}))
        except PricingError as exc:
            return str(exc)


class NativeGenAI:
    """The native stage of one pipeline, standing for its ``genai_normalize`` and ``genai_cost``, and for the
    ``genai_attribution`` that follows them when one does."""

    def __init__(self, normalize: GenAINormalize, cost: GenAICost, attribution: GenAIAttribution | None,
                 reader: SpanReader, selector: Any):
        self.normalize = normalize
        self.cost = cost
        self.attribution = attribution
        self.reader = reader
        self.selector = selector
        self.applied = frozenset({normalize, cost, *([attribution] if attribution else [])})
        self.dimensions = tuple(attribution.sources) if attribution is not None else ()  # the stage's, in order
        names = {"dialect": dialects.DIALECT, "original_prefix": ORIGINAL_PREFIX, "compat": OPENLIT_COST,
                 "canonical": [(key, name) for name, key in IDENTITY + USAGE],
                 **{name: COST + name for name in ("status", "currency", "tier", "source", "pricing.model",
                                                   "pricing.provider", "pricing.snapshot", "amount", "reported",
                                                   "mismatch", "reason", *BREAKDOWN)}}
        settings = {
            "names": names, "wrapper_operations": set(dialects.WRAPPER_OPERATIONS),
            "frameworks": set(dialects.FRAMEWORKS), "host_derived": set(dialects.HOST_DERIVED),
            "traceloop_wrappers": set(TRACELOOP_WRAPPERS), "optional_counts": sorted(OPTIONAL_COUNTS),
            "keep_original": normalize.keep_original, "prefer_reported": cost.prefer == "reported",
            "tolerance": float(cost.tolerance), "openlit_compat": cost.openlit_compat,
            "currency": cost.catalog.currency, "snapshot": cost.catalog.snapshot_id,
        }
        span_keys: list[str] = []
        self.header_keys: list[str] = []
        if attribution is not None:
            settings["attribution"] = (_attribution_dimensions(attribution, span_keys, self.header_keys),
                                       list(attribution.capped.values()))
        dedupe = None if normalize.responses is None else (normalize.parents, normalize.responses)
        resolver = StageResolver(reader, cost.catalog, cost.openlit_compat, span_keys)
        self.stage = native.genai_stage(settings, resolver, reader.evidence, dedupe)

    @classmethod
    def for_pipeline(cls, processors: list[Processor], reader: SpanReader, selector: Any) -> NativeGenAI | None:
        """The stage of a pipeline whose first GenAI processors are genai_normalize then genai_cost (then
        genai_attribution), one after the other."""
        genai = [p for p in processors if p.reads_genai]
        if len(genai) < 2 or type(genai[0]) is not GenAINormalize or type(genai[1]) is not GenAICost:
            return None
        first = processors.index(genai[0])
        if processors[first:first + 2] != genai[:2]:
            return None
        following = processors[first + 2] if len(processors) > first + 2 else None
        attribution = following if type(following) is GenAIAttribution else None
        return cls(genai[0], genai[1], attribution, reader, selector)

    def run(self, batch: TelemetryBatch) -> bool:
        """Normalise and price an undecoded request natively, but for the spans only Python reads, which the
        processors' own code does; False when the stage leaves the request to the processors."""
        return run_here(self.steps(batch))

    def steps(self, batch: TelemetryBatch) -> Steps[bool]:
        """``run`` as native jobs (:mod:`collector.offload`), to run here or off the event loop's thread."""
        if self.cost.refresh_prices():
            self.stage.reset_prices(self.cost.catalog.snapshot_id)
        wire = batch.wire
        headers = [batch.headers.get(key) for key in self.header_keys]
        for _ in range(ROUNDS):
            result = yield self.stage.read(wire, headers)
            if not native.asks(result):
                break
            self.stage.learn(result)
        else:
            return False
        if result is None:
            return False
        others = self._read_python_spans(wire, result.python_spans) if result.python_spans else []
        if others is None:
            return False
        finish = self.stage.finish(result, [(call.span.payload_start, call.span.trace_id, call.span.span_id,
                                             call.span.parent_span_id, call.provider, call.response_id,
                                             call.billable, call.reported_cost) for call in others],
                                   time.monotonic())
        updates = None if finish is None else (yield finish)
        if updates is None:
            return False
        for call, (billable, duplicate, reported) in zip(others, updates, strict=True):
            call.billable, call.reported_cost = billable, reported
            if duplicate:
                call.skip_reason = "duplicate"
            self.normalize.write(call)
            self.cost.apply(call)
        if self.attribution is not None:
            yield from self._attribute(result, others, batch.headers)
        for provider, model, reason in result.unpriced:
            self.cost.note_unpriced(provider, model, reason)
        batch.native = NativeCalls(self, wire, result, others)
        return True

    def _attribute(self, result: Any, others: list[GenAICall], headers: Any) -> Steps[None]:
        """Attribution of the stage's calls and of those Python read, capped in the request's order."""
        attribution = self.attribution
        memo: dict[int, dict[str, Any]] = {}
        capped = yield self.stage.attribute(result, [
            (call.span.payload_start,
             attribution.raw_values(call, resource_values(call, memo), headers) if call.billable else None)
            for call in others])
        for call, values in zip(others, capped, strict=True):
            if values is not None:
                attribution.apply(call, _by_dimension(self.dimensions, values))

    def _read_python_spans(self, wire: bytes, starts: list[int]) -> list[GenAICall] | None:
        """The calls of the spans the stage leaves to Python, read by the pipeline's span reader."""
        spans = self.selector.read(wire, set(starts))
        if spans is None:
            return None
        resources = WireResources(wire)
        calls = [self.reader.read_wire(span, scope, resources.at(resource_at)) for resource_at, scope, span in spans]
        return [call for call in calls if call is not None]


class NativeCalls:
    """The native stage's result on one request: spliced into the bytes at the end of the run, and made into
    calls when something reads them."""

    def __init__(self, stage: NativeGenAI, wire: bytes, result: Any, others: list[GenAICall]):
        self.stage = stage
        self.wire = wire
        self.result = result
        self.others = others  # the calls the processors' Python code read and changed
        self.applied = stage.applied
        self.spliced = False
        self.count = result.count + len(others)
        self.has_ledger_rows = bool(self._ledger_starts())
        self._ledgers: dict[tuple[str, ...], list[pa.RecordBatch] | None] = {}

    def splice(self) -> bytes:
        self.spliced = True
        wire = self.result.splice([call.edits() for call in self.others])
        for call in self.others:
            call.wire_at = None
        return wire

    def append(self, start: int, encoded: bytes) -> None:
        """Queue encoded attributes for the call of the span at this payload start (until the splice)."""
        if not self.result.append(start, encoded):
            next(call for call in self.others if call.span.payload_start == start).append(encoded)

    def columns(self, names: list[str]) -> dict[str, list[Any]] | None:
        """Some columns of the ledger rows of the request's priced billable calls (the stage's attribution
        dimensions among them), in its order, as ``CallColumns.select`` gives them; None when the rows must be
        made from calls, or a dimension is not the stage's."""
        columns = CallColumns(self.stage.dimensions)
        if not set(names) <= set(columns.names):
            return None
        batches = self.ledger(columns)
        if batches is None:
            return None
        return pa.Table.from_batches(batches, schema=columns.schema).select(list(dict.fromkeys(names))).to_pydict()

    def spend(self, budgets: list[tuple[int, int, list[float], bytes]],
              matching: Callable[[tuple], tuple[list[int], bytes]]) -> bool:
        """``genai_budget``'s state appended to the stage's priced calls natively (``StageResult.spend``); False
        when a call Python read is priced too (``spending`` then gives them all in order) or an amount is
        beyond the native arithmetic."""
        if any(call.billable and call.cost is not None and call.cost.amount_pico is not None for call in self.others):
            return False
        return self.result.spend(budgets, list(self.stage.dimensions), matching)

    def spending(self) -> list[tuple[tuple, int, Callable[[bytes], None]]] | None:
        """What ``genai_budget`` reads of each priced billable call, in the request's order (its ``_spending``),
        from the ledger rows; None when they must be made from calls."""
        dimensions = self.stage.dimensions
        data = self.columns(["provider", "model", "service", "cost_pico", *dimensions])
        if data is None:
            return None
        spending = []
        for row, start in enumerate(self._ledger_starts()):
            amount = data["cost_pico"][row]
            if amount is None:
                continue
            attribution = tuple((d, data[d][row]) for d in dimensions if data[d][row] is not None)
            key = (data["provider"][row], data["model"][row], data["service"][row], *attribution)
            spending.append((key, amount, functools.partial(self.append, start)))
        return spending

    def _ledger_starts(self) -> list[int]:
        """The span payload start of each ledger row, in the rows' order (the request's)."""
        return sorted(self._row_starts())

    def _row_starts(self) -> list[int]:
        """The span payload starts of the stage's rows, then of the rows of the calls Python read."""
        return self.result.ledger_starts() + [call.span.payload_start for call in self.others
                                              if call.billable and call.cost is not None]

    def ledger(self, columns: CallColumns) -> list[pa.RecordBatch] | None:
        """The ledger rows of the request's billable calls, in its order (``CallColumns.add``): the stage's made
        by the native core as Arrow data, those Python read by ``columns``' own code. None when the native core
        cannot make them (a number past 64 bits): then they are made from the calls. Made once per set of
        columns (the budget's, then the ledger's)."""
        if columns.names not in self._ledgers:
            self._ledgers[columns.names] = self._make_ledger(columns)
        return self._ledgers[columns.names]

    def _make_ledger(self, columns: CallColumns) -> list[pa.RecordBatch] | None:
        dimensions = self.stage.dimensions
        made = self.result.ledger(list(columns.names), [dimensions.index(dimension) if dimension in dimensions
                                                        else None for dimension in columns.dimensions])
        if made is None:
            return None
        rows = pa.record_batch(made)
        python_rows = CallColumns(columns.dimensions)
        python_rows.add_calls(self.others)
        if not python_rows.rows:
            return [rows]
        starts = self._row_starts()
        order = sorted(range(len(starts)), key=starts.__getitem__)  # the request's
        table = pa.Table.from_batches([rows, *python_rows.table().to_batches()], schema=columns.schema)
        return table.take(order).to_batches()

    def calls(self) -> list[GenAICall]:
        """The calls as the Python processors would have left them (edits pending until spliced)."""
        records = self.result.calls()
        spans = {span.payload_start: (resource_at, scope, span) for resource_at, scope, span
                 in self.stage.selector.read(self.wire, {record[0] for record in records})}
        resources = WireResources(self.wire)
        catalog = self.stage.cost.catalog
        calls = list(self.others)
        for record in records:
            (start, dialect, provider, operation, request_model, response_model, response_id, input_tokens,
             output_tokens, counts, total, tier, reported, billable, skip_reason, usage_error, cost, updated,
             dropped, appended, attribution) = record
            resource_at, scope, span = spans[start]
            resource = resources.at(resource_at)
            index = self.stage.reader.shape_of(scope, span.keys).index
            if dropped:
                gone = {span.keys[position] for position in dropped}
                index = {key: position for key, position in index.items() if key not in gone}
            call = WireCall(span, resource, index, {})
            call.dialect, call.provider, call.operation = dialect, provider, operation
            call.request_model, call.response_model, call.response_id = request_model, response_model, response_id
            call.input, call.output, call.total, call.tier = input_tokens, output_tokens, total, tier
            call.cache_read, call.cache_write, call.reasoning, call.input_audio, call.output_audio = counts
            call.reported_cost, call.billable, call.skip_reason, call.usage_error = reported, billable, \
                skip_reason, usage_error
            call.updated, call.dropped = updated, set(dropped)
            if cost is not None:
                call.cost = _cost_result(cost, catalog)
            if attribution is not None:
                call.attribution = _by_dimension(self.stage.dimensions, attribution)
            if self.spliced:
                call.wire_at = None
            else:
                call.pending = appended
            calls.append(call)
        calls.sort(key=lambda call: call.span.payload_start)
        return calls


class WireResources:
    """The resources of an undecoded request's spans, by payload range, each decoded once."""

    def __init__(self, wire: bytes):
        self.wire = wire
        self.decoded: dict[tuple[int, int] | None, Resource] = {}

    def at(self, payload: tuple[int, int] | None) -> Resource:
        resource = self.decoded.get(payload)
        if resource is None:
            resource = self.decoded[payload] = (Resource() if payload is None
                                                else Resource.FromString(self.wire[payload[0]:payload[1]]))
        return resource


def _by_dimension(dimensions: tuple[str, ...], values: list[str | None]) -> dict[str, str]:
    """Attribution values as a call holds them: dimension → value, for the dimensions with one."""
    return {dimension: value for dimension, value in zip(dimensions, values, strict=True) if value is not None}


def _attribution_dimensions(attribution: GenAIAttribution, span_keys: list[str],
                            header_keys: list[str]) -> list[tuple]:
    """The dimensions as the stage takes them: (attribute, sources, default), a header or span source by its
    index in ``header_keys`` or ``span_keys`` (which this fills), a resource source by its key."""
    def index(keys: list[str], key: str) -> int:
        if key not in keys:
            keys.append(key)
        return keys.index(key)

    dimensions = []
    for dimension, chain in attribution.sources.items():
        sources = [("header", index(header_keys, key)) if kind == "header" else ("resource", key)
                   if kind == "resource" else ("span", index(span_keys, key)) for kind, key in chain]
        dimensions.append((ATTRIBUTE_PREFIX + dimension, sources, attribution.defaults.get(dimension)))
    return dimensions


def _cost_result(cost: tuple, catalog: Any) -> CostResult:
    status, amount, breakdown, source, match, reported, mismatch, reason, priced_at_snapshot = cost
    return CostResult(status, catalog.currency, amount, None if breakdown is None else Breakdown(*breakdown), source,
                      match, None, reported, mismatch, reason, catalog.snapshot_id if priced_at_snapshot else "")
