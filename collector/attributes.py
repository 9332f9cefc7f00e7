"""Writing OTLP attributes onto spans in place."""

from __future__ import annotations

from typing import Any

from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span


def set_value(target: AnyValue, value: Any) -> None:
    if isinstance(value, bool):
        target.bool_value = value
    elif isinstance(value, int):
        target.int_value = value
    elif isinstance(value, float):
        target.double_value = value
    else:
        target.string_value = str(value)


def add(span: Span, key: str, value: Any) -> KeyValue:
    """Append an attribute (the caller knows the key is not on the span yet)."""
    kv = span.attributes.add(key=key)
    set_value(kv.value, value)
    return kv


def put(span: Span, index: dict[str, KeyValue], key: str, value: Any, keep_original_as: str | None = None) -> None:
    """Set ``key`` to ``value``: update the existing attribute (``index`` maps keys on the span to
    their KeyValue) or append one. With ``keep_original_as``, a different old value is kept under that key."""
    kv = index.get(key)
    if kv is None:
        index[key] = add(span, key, value)
        return
    old = kv.value
    kind = old.WhichOneof("value")
    current = getattr(old, kind) if kind else None
    if current == value and type(current) is type(value):
        return
    if keep_original_as is not None and current is not None:
        add(span, keep_original_as, current)
    set_value(old, value)
