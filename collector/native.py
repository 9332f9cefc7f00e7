"""Which hot path runs: the native core (``collector._native``, the Rust crate in ``native/``) or pure Python.

The native core works on an export request's wire bytes: it vouches for a request upb would accept (or
says it cannot, and upb decodes it as before) and counts its items without decoding (every signal);
for traces it also sizes the span attributes, finds the spans with GenAI attributes, splices the spans
the processors changed back into the request, redacts content, and runs genai_normalize and genai_cost
(``processors.genai_native``) on the GenAI spans, with the dialect rules but LiteLLM's. The pure-Python path is the
reference: both give the same forwarded data and the same ledger rows (tests/test_native.py).
``GENAI_COLLECTOR_NATIVE=0`` forces the Python path.
"""

from __future__ import annotations

import os
from collections.abc import Collection, Sequence
from typing import Any, NamedTuple

from google.protobuf.descriptor import Descriptor, FieldDescriptor

from collector.signals import Signal

ENV = "GENAI_COLLECTOR_NATIVE"
BUILD_HINT = "reinstall with cargo on PATH (pip install -e . builds the native core), and unset GENAI_COLLECTOR_NATIVE"


def _load() -> tuple[Any, str]:
    """The native module, or None with the reason the Python path runs."""
    if os.environ.get(ENV, "").strip().lower() in ("0", "false", "no", "off"):
        return None, f"{ENV}=0"
    try:
        from collector import _native
    except ImportError as exc:
        return None, f"the native extension is not built ({exc})"
    return _native, ""


_NATIVE, WHY_PYTHON = _load()
HOT_PATH = "native" if _NATIVE is not None else "python"
# The dialects whose rule (processors.dialect_rules) the native GenAI stage applies itself, and the span
# attributes those rules read, in the order the stage takes their positions.
NATIVE_RULES: frozenset[str] = frozenset(_NATIVE.NATIVE_RULES) if _NATIVE is not None else frozenset()
RULE_KEYS: tuple[str, ...] = tuple(_NATIVE.RULE_KEYS) if _NATIVE is not None else ()

# Field kind codes shared with native/src/python.rs (schema::Kind::from_code).
_VARINT, _FIXED64, _BYTES, _STRING, _MESSAGE, _FIXED32, _UNSURE = range(7)
_REPEATED = {_VARINT: 7, _FIXED64: 8, _FIXED32: 9}  # repeated scalars of each kind, packed or not
_KINDS = {
    **dict.fromkeys((FieldDescriptor.TYPE_INT32, FieldDescriptor.TYPE_INT64, FieldDescriptor.TYPE_UINT32,
                     FieldDescriptor.TYPE_UINT64, FieldDescriptor.TYPE_SINT32, FieldDescriptor.TYPE_SINT64,
                     FieldDescriptor.TYPE_BOOL, FieldDescriptor.TYPE_ENUM), _VARINT),
    **dict.fromkeys((FieldDescriptor.TYPE_FIXED64, FieldDescriptor.TYPE_SFIXED64, FieldDescriptor.TYPE_DOUBLE),
                    _FIXED64),
    **dict.fromkeys((FieldDescriptor.TYPE_FIXED32, FieldDescriptor.TYPE_SFIXED32, FieldDescriptor.TYPE_FLOAT),
                    _FIXED32),
    FieldDescriptor.TYPE_BYTES: _BYTES, FieldDescriptor.TYPE_STRING: _STRING, FieldDescriptor.TYPE_MESSAGE: _MESSAGE,
}


def schema_fields(root: Descriptor) -> tuple[list[tuple[int, int, int, int]], int]:
    """(message index, field number, kind code, target message index) of every field reachable from
    ``root`` (message 0), and the number of messages: the schema the native validator checks against.
    Groups are left to upb."""
    messages: dict[str, int] = {root.full_name: 0}
    pending = [root]
    fields = []
    while pending:
        message = pending.pop()
        for field in message.fields:
            target = 0
            kind = _KINDS.get(field.type, _UNSURE)
            if kind == _MESSAGE:
                name = field.message_type.full_name
                if name not in messages:
                    messages[name] = len(messages)
                    pending.append(field.message_type)
                target = messages[name]
            elif field.is_repeated:
                kind = _REPEATED.get(kind, kind)
            fields.append((messages[message.full_name], field.number, kind, target))
    return fields, len(messages)


class WireStats(NamedTuple):
    """A request as counted on the wire."""

    items: int  # spans, data points or log records
    resources: int
    most_attributes: int  # on one span (0 for metrics and logs)
    largest_value: int  # bytes of one span attribute value on the wire: at least its size once decoded


def available() -> bool:
    return _NATIVE is not None


class RequestWire:
    """The native core's check and count of one signal's export requests (only when :func:`available`)."""

    def __init__(self, signal: Signal):
        fields, count = schema_fields(signal.spec.request_type.DESCRIPTOR)
        self.schema = _NATIVE.RequestSchema(signal.spec.name, fields, count)

    def scan(self, wire: bytes) -> WireStats | None:
        """What the native core counts of a request it vouches upb would accept; None when upb must decode
        it (malformed, or unusual). Checked on this thread."""
        return self.stats(self.scan_job(bytes(wire)).run())

    def scan_job(self, wire: bytes) -> Any:
        """``scan`` as a native job (:mod:`collector.offload`), whose result :meth:`stats` reads."""
        return self.schema.scan_job(wire)

    @staticmethod
    def stats(counted: tuple[int, int, int, int] | None) -> WireStats | None:
        return None if counted is None else WireStats(*counted)


class TraceWire(RequestWire):
    """The native operations on trace requests."""

    def __init__(self) -> None:
        super().__init__(Signal.TRACES)

    @staticmethod
    def selector(evidence: Collection[str]) -> Any:
        """A ``SpanSelector``: its ``read(wire)`` gives (resource payload range or None, scope name, WireSpan)
        of each span of a scanned request with an ``evidence`` key, or None when upb must decode it."""
        return _NATIVE.SpanSelector(sorted(evidence))

    @staticmethod
    def redactor(exact: Collection[str], prefixes: Collection[str], allow: Collection[str],
                 events: Collection[str]) -> Any:
        """A ``Redactor``: its ``redact(wire)`` gives the request without the content attributes (exact keys
        and prefixes, less ``allow``) and content events, the same object when it has none, or None when
        upb must decode it."""
        return _NATIVE.Redactor(sorted(exact), sorted(prefixes), sorted(allow), sorted(events))

    @staticmethod
    def edit(wire: bytes, edits: Sequence[tuple[int, int, list[tuple[int, bytes | None]], bytes]]) -> bytes:
        """``wire`` with spans rewritten: (payload start, payload end, attribute edits by position (None
        drops), attributes to append) for each, sorted by start."""
        return _NATIVE.edit_spans(wire, edits)


TRACE_WIRE = TraceWire() if _NATIVE is not None else None
# every signal's requests are checked and counted natively; traces are also read and rewritten (TRACE_WIRE)
REQUEST_WIRES = {} if TRACE_WIRE is None else {Signal.TRACES: TRACE_WIRE, Signal.METRICS: RequestWire(Signal.METRICS),
                                               Signal.LOGS: RequestWire(Signal.LOGS)}


def recent_keys(window: float, max_entries: int) -> Any:
    """``genai_normalize``'s memory of recent keys, natively (shared with the native GenAI stage)."""
    return _NATIVE.RecentKeys(window, max_entries)


def cardinality_limit(limit: int) -> Any:
    """A ``CardinalityLimit`` the native GenAI stage can share (the Python one where the core is not built)."""
    if _NATIVE is None:
        from collector.cardinality import CardinalityLimit
        return CardinalityLimit(limit)
    return _NATIVE.CardinalityLimit(limit)


def genai_stage(settings: dict[str, Any], resolver: Any, evidence: Collection[str], dedupe: tuple | None) -> Any:
    """A ``GenAIStage``: ``genai_normalize`` then ``genai_cost`` on the wire (``processors.genai_native``)."""
    return _NATIVE.GenAIStage(settings, resolver, sorted(evidence), dedupe)


def asks(read: Any) -> bool:
    """Whether what a ``GenAIStage`` read gave is ``Questions``, to ``learn`` the answers of before reading again."""
    return isinstance(read, _NATIVE.Questions)


def worker() -> Any:
    """A ``Worker``: the thread the native core's jobs run on off the event loop (:mod:`collector.offload`)."""
    return _NATIVE.Worker()


def describe() -> dict[str, str]:
    """What the startup log, ``doctor`` and ``/api/v1/info`` say of the hot path."""
    return {"hot_path": HOT_PATH, **({"reason": WHY_PYTHON} if WHY_PYTHON else {})}
