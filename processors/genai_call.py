"""GenAICall: the canonical reading of one GenAI span, and the conversion of the values it is read from."""

from __future__ import annotations

import functools
import json
from typing import Any

from opentelemetry.proto.trace.v1.trace_pb2 import Span

from collector.attributes import value_of


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
        return None if position is None else value_of(self.span.attributes[position])

    @property
    def model(self) -> str | None:
        """The model to price: the response model (a dated snapshot) when the span has it."""
        return self.response_model or self.request_model

    @property
    def has_usage(self) -> bool:
        return self.input is not None or self.output is not None


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


def as_float(value: Any) -> float | None:
    if isinstance(value, bool) or value is None:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if number == number and abs(number) != float("inf") else None


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
