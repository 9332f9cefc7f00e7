"""Writing OTLP attributes onto spans in place, cheaply.

New attributes are encoded straight to protobuf wire bytes and appended with one
``MergeFromString`` per span (see ``processors.genai_call.GenAICall.append``), instead of one
message object per attribute; the
encodings of recurring (key, value) pairs are cached.
"""

from __future__ import annotations

import struct
from typing import Any

from opentelemetry.proto.common.v1.common_pb2 import AnyValue, ArrayValue, KeyValue, KeyValueList
from opentelemetry.proto.trace.v1.trace_pb2 import Span

_ATTRIBUTES_TAG = b"\x4a"  # Span.attributes: field 9, length-delimited (also LogRecord.attributes: field 6 → 0x32)
_CACHE_LIMIT = 65_536
_constant_cache: dict[tuple[str, Any, type], bytes] = {}
_double_headers: dict[str, bytes] = {}
_pack_double = pack_double = struct.Struct("<d").pack


def varint(number: int) -> bytes:
    """Protobuf base-128 varint; negative numbers as int64 two's complement (ten bytes), as protobuf does."""
    number &= 0xFFFFFFFFFFFFFFFF
    if number < 0x80:
        return bytes((number,))
    out = bytearray()
    while number > 0x7F:
        out.append((number & 0x7F) | 0x80)
        number >>= 7
    out.append(number)
    return bytes(out)


def _field(tag: bytes, payload: bytes) -> bytes:
    return tag + varint(len(payload)) + payload


def _any_value(value: Any) -> bytes:
    if isinstance(value, list | tuple):  # array_value: ArrayValue{repeated AnyValue values = 1}
        return _field(b"\x2a", b"".join(_field(b"\x0a", _any_value(item)) for item in value))
    if isinstance(value, bool):
        return b"\x10\x01" if value else b"\x10\x00"
    if isinstance(value, int):
        return b"\x18" + varint(value)
    if isinstance(value, float):
        return b"\x21" + _pack_double(value)
    if isinstance(value, bytes):
        return _field(b"\x3a", value)
    if isinstance(value, ArrayValue):  # as value_of gives an array or a key-value list read from a span
        return _field(b"\x2a", value.SerializeToString())
    if isinstance(value, KeyValueList):
        return _field(b"\x32", value.SerializeToString())
    return _field(b"\x0a", str(value).encode())


def key_value(key: str, value: Any) -> bytes:
    """Wire bytes of a KeyValue message (no tag): the body of one attribute."""
    return _field(b"\x0a", key.encode()) + _field(b"\x12", _any_value(value))


def double_header(key: str) -> bytes:
    """Wire bytes of a double-valued span attribute up to its 8 value bytes: ``header + pack('<d', v)``."""
    header = _double_headers.get(key)
    if header is None:
        key_part = _field(b"\x0a", key.encode())
        header = _double_headers[key] = _ATTRIBUTES_TAG + varint(len(key_part) + 11) + key_part + b"\x12\x09\x21"
    return header


def encode(key: str, value: Any) -> bytes:
    """Wire bytes of one span attribute (tag included), ready to append to a serialised Span."""
    if isinstance(value, float):
        return double_header(key) + _pack_double(value)
    if isinstance(value, ArrayValue | KeyValueList):  # unhashable, and rare
        return _field(_ATTRIBUTES_TAG, key_value(key, value))
    cache_key = (key, tuple(value) if isinstance(value, list) else value, type(value))
    encoded = _constant_cache.get(cache_key)
    if encoded is None:
        encoded = _field(_ATTRIBUTES_TAG, key_value(key, value))
        if len(_constant_cache) >= _CACHE_LIMIT:
            _constant_cache.clear()
        _constant_cache[cache_key] = encoded
    return encoded


def set_value(target: AnyValue, value: Any) -> None:
    if isinstance(value, list | tuple):
        target.array_value.Clear()
        for item in value:
            set_value(target.array_value.values.add(), item)
        return
    if isinstance(value, bool):
        target.bool_value = value
    elif isinstance(value, int):
        target.int_value = value
    elif isinstance(value, float):
        target.double_value = value
    else:
        target.string_value = str(value)


def plain_value(value: AnyValue) -> Any:
    """An AnyValue as plain Python: lists and dicts for arrays and kvlists, hex for bytes."""
    kind = value.WhichOneof("value")
    if kind == "array_value":
        return [plain_value(v) for v in value.array_value.values]
    if kind == "kvlist_value":
        return {kv.key: plain_value(kv.value) for kv in value.kvlist_value.values}
    if kind == "bytes_value":
        return value.bytes_value.hex()
    return getattr(value, kind) if kind else None


def value_of(kv: KeyValue) -> Any:
    value = kv.value
    kind = value.WhichOneof("value")
    return getattr(value, kind) if kind else None


def add_to(container: Any, key: str, value: Any) -> None:
    """Append an attribute to a repeated KeyValue field of a message being built (not the hot path)."""
    set_value(container.add(key=key).value, value)


def add(span: Span, key: str, value: Any) -> None:
    """Append one attribute (the caller knows the key is not on the span yet)."""
    span.MergeFromString(encode(key, value))
