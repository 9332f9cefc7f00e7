"""SpanReader: a span's attributes, scanned once, as a GenAICall (or None when the span is not GenAI).

It keeps only the keys any dialect uses, detects the dialect from the instrumentation scope and the
attribute shape, and returns a call with cache-inclusive input tokens, the normalised provider and
whether the span is a billable leaf call.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

from opentelemetry.proto.trace.v1.trace_pb2 import Span

from collector.attributes import value_of
from processors.dialect_rules import DIALECT_RULES
from processors.dialects import (
    FRAMEWORKS,
    GENAI_EVIDENCE,
    HOST_DERIVED,
    KNOWN_KEYS,
    OUTPUT_KEYS,
    SOURCES,
    TOKEN_FIELDS,
    WRAPPER_OPERATIONS,
    detect_dialect,
    normalize_operation,
    normalize_tier,
    provider_from_host,
    provider_from_model,
    provider_value,
    scope_dialect,
)
from processors.genai_call import GenAICall, WireCall, as_text, reported_cost, token_count


class _Shape:
    """What a span's attribute keys (and scope) tell before any value is read; cached per shape."""

    __slots__ = ("dialect", "fields", "index", "openlit_sdk", "positions", "server_keys")

    def __init__(self, dialect: str, index: dict[str, int], fields: tuple[tuple[str, int, bool], ...],
                 openlit_sdk: bool, server_keys: tuple[str, ...] = ()):
        self.dialect = dialect
        self.index = index  # key → position, for the keys any dialect uses
        self.fields = fields  # (field, position, integer?) of the attribute each field is read from
        self.positions = [position for _, position, _ in fields]
        self.openlit_sdk = openlit_sdk  # telemetry.sdk.name on the span may say "openlit"
        self.server_keys = server_keys  # server.address / API base keys on the span, best first


NOT_GENAI = _Shape("", {}, (), False)
_SHAPE_CACHE_LIMIT = 20_000


class SpanReader:
    """Reads spans as GenAI calls; ``custom`` maps canonical fields to extra source keys (read first), and
    ``extra_keys`` are other span attributes the processors read from calls (attribution's ``span.K``).

    A span's attribute keys are read once; everything that follows from the keys alone (is it a GenAI
    span, which dialect, which attribute feeds which field) is cached per (scope, keys), so for the
    shapes an instrumentation emits again and again only the needed values are read.
    """

    def __init__(self, custom: Mapping[str, tuple[str, ...]] | None = None, extra_keys: Collection[str] = ()):
        custom = custom or {}
        # key → (field, priority)
        self.slots: dict[str, tuple[str, int]] = {}
        for field, keys in SOURCES.items():
            for priority, key in enumerate((*custom.get(field, ()), *keys)):
                if key not in self.slots or priority < self.slots[key][1]:
                    self.slots[key] = (field, priority)
        custom_keys = frozenset(k for keys in custom.values() for k in keys)
        self.evidence = GENAI_EVIDENCE | custom_keys
        self.known = KNOWN_KEYS | custom_keys | OUTPUT_KEYS | frozenset(extra_keys)  # keys indexed on GenAI spans
        self.shapes: dict[tuple[str, tuple[str, ...]], _Shape] = {}

    def _shape(self, scope: str, keys: tuple[str, ...]) -> _Shape:
        index = {key: position for position, key in enumerate(keys) if key in self.known}
        if self.evidence.isdisjoint(index):
            return NOT_GENAI
        best: dict[str, tuple[int, int]] = {}
        for key, position in index.items():
            slot = self.slots.get(key)
            if slot is not None and (slot[0] not in best or slot[1] < best[slot[0]][0]):
                best[slot[0]] = (slot[1], position)
        fields = tuple((field, position, field in TOKEN_FIELDS) for field, (_, position) in best.items()
                       if field != "server")  # read only when the provider needs re-deriving
        server_keys = tuple(key for key in SOURCES["server"] if key in index)
        dialect = detect_dialect(scope, index)
        return _Shape(dialect, index, fields, scope_dialect(scope) is None and "telemetry.sdk.name" in index,
                      server_keys)

    def shape_of(self, scope: str, keys: tuple[str, ...]) -> _Shape:
        """What the keys of a span from this scope tell (NOT_GENAI: not a GenAI span), cached."""
        shape = self.shapes.get((scope, keys))
        if shape is None:
            if len(self.shapes) >= _SHAPE_CACHE_LIMIT:
                self.shapes.clear()
            shape = self.shapes[(scope, keys)] = self._shape(scope, keys)
        return shape

    def read(self, span: Span, scope: str, resource: Any) -> GenAICall | None:
        """Read a span as a GenAI call, or None when it is not one."""
        attributes = span.attributes
        keys = tuple([kv.key for kv in attributes])
        shape = self.shape_of(scope, keys)
        if shape is NOT_GENAI:
            return None
        call = GenAICall(span, resource, shape.index, {})
        for field, position, integer in shape.fields:
            kv = attributes[position]
            value = kv.value
            read = value.int_value if integer else value.string_value
            _set_field(call, field, keys[position], read or value_of(kv))
        return self._complete(call, shape, span)

    def read_wire(self, span: Any, scope: str, resource: Any) -> GenAICall | None:
        """Read a ``collector._native.WireSpan`` as a GenAI call, or None when it is not one."""
        keys = span.keys
        shape = self.shape_of(scope, keys)
        if shape is NOT_GENAI:
            return None
        call = WireCall(span, resource, shape.index, {})
        for (field, position, _), value in zip(shape.fields, span.values(shape.positions), strict=True):
            _set_field(call, field, keys[position], value)
        return self._complete(call, shape, span)

    @staticmethod
    def _complete(call: GenAICall, shape: _Shape, span: Any) -> GenAICall:
        call.dialect = shape.dialect
        if shape.openlit_sdk and call.value("telemetry.sdk.name") == "openlit":
            call.dialect = "openlit"
        rule = DIALECT_RULES.get(call.dialect)
        if rule is not None:
            rule(call, span)
        if shape.server_keys and call.provider in HOST_DERIVED:
            call.server = call.value(shape.server_keys[0])
        _finish(call)
        return call


def _set_field(call: GenAICall, field: str, key: str, value: Any) -> None:
    """Set a call's field from the attribute ``key`` it is read from (noting the value as sent)."""
    call.sent[key] = value
    convert = _CONVERTERS.get(field)
    try:
        setattr(call, field, value if convert is None else convert(value))
    except ValueError as exc:
        call.usage_error = f"{field}: {exc}"


def _finish(call: GenAICall) -> None:
    """The rules every dialect shares: provider re-derivation, wrappers, cache-inclusive input."""
    _resolve_provider(call)
    if _is_wrapper(call):
        call.billable, call.skip_reason = False, "wrapper"
    elif call.operation is None:
        call.operation = "chat"
    if not call.usage_error:
        _make_input_inclusive(call)


def _resolve_provider(call: GenAICall) -> None:
    """Re-derive the provider from the endpoint when an instrumentation says ``openai`` for any
    OpenAI-compatible API, and from the model for framework spans."""
    if call.provider in HOST_DERIVED and isinstance(call.server, str):
        call.provider = provider_from_host(call.server) or call.provider
    if call.provider is None:
        call.provider = provider_from_model(call.model)


TRACELOOP_WRAPPERS = ("workflow", "task", "agent", "tool")  # traceloop.span.kind values of wrapper spans


def _is_wrapper(call: GenAICall) -> bool:
    """Agent, chain, workflow and framework spans aggregate their children."""
    if call.operation in WRAPPER_OPERATIONS or "gen_ai.aggregated_usage.input_tokens" in call.index:
        return True
    if call.provider in FRAMEWORKS and call.dialect != "google_adk":
        return True
    return "traceloop.span.kind" in call.index and call.value("traceloop.span.kind") in TRACELOOP_WRAPPERS


def _make_input_inclusive(call: GenAICall) -> None:
    """DIALECTS.md pitfalls 1 and 2: input includes cache tokens, output includes reasoning."""
    cached = call.cache_read + call.cache_write
    if call.input is not None and cached and (input_excludes_cache(call) or cached > call.input):
        call.input += cached
    if call.output is not None and call.reasoning > call.output:
        call.output += call.reasoning


def input_excludes_cache(call: GenAICall) -> bool:
    family = call.provider
    if call.dialect == "openlit":
        return family == "anthropic"
    if call.dialect == "otel_botocore":
        return True
    if call.dialect == "vercel_ai":
        return "ai.usage.inputTokenDetails.noCacheTokens" not in call.index and (
            family == "anthropic" or family == "aws.bedrock")
    return False


# How a raw attribute value becomes a GenAICall field (fields not listed are taken as they are).
def _operation(value: Any) -> str | None:
    text = as_text(value)
    return None if text is None else normalize_operation(text)


_CONVERTERS = {**dict.fromkeys(TOKEN_FIELDS, token_count), "tier": normalize_tier, "reported_cost": reported_cost,
               "provider": provider_value, "operation": _operation,
               **dict.fromkeys(("request_model", "response_model", "response_id"), as_text)}
