"""GenAICall: the canonical reading of one GenAI span, and the conversion of the values it is read from."""

from __future__ import annotations

import functools
import json
from collections.abc import Collection
from typing import Any

from opentelemetry.proto.trace.v1.trace_pb2 import Span

from collector.attributes import encode, set_value, value_of


class GenAICall:
    """The canonical reading of one GenAI span; the index every GenAI processor works from.

    Fields not read from the span keep the class defaults below (no per-instance work).
    """

    dialect = "otel_semconv"
    provider: str | None = None
    operation: str | None = None
    request_model: str | None = None
    response_model: str | None = None
    response_id: str | None = None
    input: int | None = None
    output: int | None = None
    cache_read = 0
    cache_write = 0
    reasoning = 0
    input_audio = 0
    output_audio = 0
    total: int | None = None  # the span's total token count, when it has one: a check on the others
    tier = "standard"
    reported_cost: float | None = None
    billable = True
    skip_reason = ""  # why a GenAI span is not priced: wrapper, duplicate
    usage_error = ""  # token counts that cannot be right (negative, absurd)
    cost = None  # processors.genai_cost.CostResult once priced
    server: str | None = None  # server.address or the API base URL
    pending = b""  # encoded attributes to append to the span
    attribution: dict[str, str] | None = None  # dimension → value (genai_attribution)
    wire_at: int | None = None  # a WireCall's span payload offset in its request, until spliced

    def __init__(self, span: Span, resource: Any, index: dict[str, int], sent: dict[str, Any]):
        self.span = span
        self.resource = resource
        self.index = index  # key → position in span.attributes, for the keys any dialect uses
        self.sent = sent  # key → value of each attribute a field was read from

    def append(self, encoded: bytes) -> None:
        """Queue encoded attributes for the span; the pipeline appends them all at once (``flush``)."""
        if encoded:
            self.pending = self.pending + encoded

    def flush(self) -> None:
        if self.pending:
            self.span.MergeFromString(self.pending)
            self.pending = b""

    def value(self, key: str) -> Any:
        """The value of one of the indexed attributes, or None."""
        position = self.index.get(key)
        return None if position is None else self.value_at(position)

    def value_at(self, position: int) -> Any:
        return value_of(self.span.attributes[position])

    def _store(self, position: int, value: Any) -> None:
        set_value(self.span.attributes[position].value, value)

    def put(self, items: list[tuple[str, Any]], keep_original_prefix: str | None = None) -> None:
        """Set each (key, value): an indexed attribute is updated in place, the others are queued to be
        appended. With ``keep_original_prefix``, a different old value is kept under ``prefix + key``."""
        appended = []
        for key, value in items:
            position = self.index.get(key)
            if position is None:
                appended.append(encode(key, value))
                continue
            current = self.value_at(position)
            if current == value and type(current) is type(value):
                continue
            if keep_original_prefix is not None and current is not None:
                appended.append(encode(keep_original_prefix + key, current))
            self._store(position, value)
        self.append(b"".join(appended))

    def drop(self, keys: Collection[str]) -> None:
        """Remove the indexed attributes with these keys from the span (after the queued ones are appended)."""
        self.flush()
        span = self.span
        kept = [kv for kv in span.attributes if kv.key not in keys]
        del span.attributes[:]
        span.attributes.extend(kept)
        self.index = {kv.key: i for i, kv in enumerate(span.attributes) if kv.key in self.index}

    @property
    def model(self) -> str | None:
        """The model to price: the response model (a dated snapshot) when the span has it."""
        return self.response_model or self.request_model

    @property
    def has_usage(self) -> bool:
        return self.input is not None or self.output is not None


class WireCall(GenAICall):
    """A call read from a span the native core left in the request's bytes (``collector._native.WireSpan``).

    Changes are kept as edits to the span (attributes updated or dropped, by their position in the span as
    received, and attributes appended) and spliced into the request by ``TelemetryBatch.invalidate``.
    """

    def __init__(self, span: Any, resource: Any, index: dict[str, int], sent: dict[str, Any]):
        super().__init__(span, resource, index, sent)
        self.wire_at = span.payload_start
        self.updated: dict[int, Any] = {}
        self.dropped: set[int] = set()

    def flush(self) -> None:
        """Nothing to do until the edits are spliced into the request."""

    def value_at(self, position: int) -> Any:
        if position in self.updated:
            return self.updated[position]
        return self.span.value(position)

    def _store(self, position: int, value: Any) -> None:
        self.updated[position] = value

    def drop(self, keys: Collection[str]) -> None:
        self.dropped.update(position for position, key in enumerate(self.span.keys) if key in keys)
        self.index = {key: position for key, position in self.index.items() if key not in keys}

    def edits(self) -> tuple[int, int, list[tuple[int, bytes | None]], bytes]:
        """(payload start, payload end, attribute edits by position, attributes to append): the span's
        changes as ``collector.native.TraceWire.edit`` takes them."""
        keys = self.span.keys
        changes: list[tuple[int, bytes | None]] = [(position, None) for position in self.dropped]
        changes += [(position, encode(keys[position], value)) for position, value in self.updated.items()
                    if position not in self.dropped]
        return self.span.payload_start, self.span.payload_end, sorted(changes), self.pending


def as_int(value: Any) -> int | None:
    """Token counts arrive as ints, doubles or (OTLP/JSON, Vercel) strings."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value) if value == value and abs(value) < 1e18 else None
    if isinstance(value, str):
        text = value.strip()
        if text.lstrip("-").isdigit():
            return int(text)
        try:
            return as_int(json.loads(text).get("intValue"))
        except (ValueError, AttributeError):
            return None
    return None


MAX_TOKENS = 10**12  # per call: anything above is a broken emitter, not a bill


def token_count(value: Any) -> int:
    """A token count from an attribute value; ValueError when it cannot be one (not a number, absurd)."""
    number = value if type(value) is int else as_int(value)
    if number is None:
        raise ValueError(f"token count {value!r} is not a whole number")
    if not 0 <= number <= MAX_TOKENS:
        raise ValueError(f"token count {number} is negative or absurd")
    return number


def as_text(value: Any) -> str | None:
    """A name or an id from an attribute value: text as it is, a number as its text, anything else (a boolean,
    an array, bytes) none."""
    if isinstance(value, str):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    return None


def as_float(value: Any) -> float | None:
    if isinstance(value, bool) or value is None:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if number == number and abs(number) != float("inf") else None


MAX_REPORTED_COST = 1_000_000.0  # per call: a reported cost above is a broken emitter, not a bill


def reported_cost(value: Any) -> float | None:
    """A cost the instrumentation reported, or None when it reported none or one no call costs."""
    number = as_float(value)
    return None if number is None or abs(number) > MAX_REPORTED_COST else number


def json_attr(call: GenAICall, key: str) -> dict:
    """A JSON-object attribute (Vercel providerMetadata, OpenInference invocation parameters, Langfuse usage)."""
    value = call.value(key)
    return _parse_json_object(value) if isinstance(value, str) else {}


@functools.lru_cache(maxsize=1024)
def _parse_json_object(text: str) -> dict:
    """Parsed once per distinct string; callers must not mutate the result."""
    try:
        parsed = json.loads(text)
    except ValueError:
        return {}
    return parsed if isinstance(parsed, dict) else {}
