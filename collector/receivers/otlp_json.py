"""OTLP/JSON codec.

OTLP/JSON differs from protobuf's canonical JSON mapping in one way that matters:
trace and span ids are hex strings, not base64. Requests are decoded by ``json_wire``
(which knows that) into wire bytes and parsed in one go; printing uses ``json_format``
and rewrites the ids it prints as base64 into hex. Everything else (lowerCamelCase keys,
int64 as strings, enums as integers, unknown fields ignored) is protobuf's JSON mapping.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Iterator

from google.protobuf import json_format
from google.protobuf.message import DecodeError, Message

from collector.receivers import json_wire
from collector.signals import Signal

_ID_KEYS = ("traceId", "spanId", "parentSpanId")
_METRIC_KINDS = ("gauge", "sum", "histogram", "exponentialHistogram", "summary")


class OtlpJsonError(ValueError):
    """The body is not valid OTLP/JSON."""


def _items(container: dict, *path: str) -> Iterator[dict]:
    """Yield the dicts reached by following list-valued keys in ``path``."""
    if not path:
        yield container
        return
    children = container.get(path[0])
    if children is None:
        return
    if not isinstance(children, list):
        raise OtlpJsonError(f"{path[0]!r} must be an array")
    for child in children:
        if not isinstance(child, dict):
            raise OtlpJsonError(f"elements of {path[0]!r} must be objects")
        yield from _items(child, *path[1:])


def _id_holders(signal: Signal, document: dict) -> Iterator[dict]:
    """Every object in an export request that carries traceId / spanId fields."""
    if signal is Signal.TRACES:
        for span in _items(document, "resourceSpans", "scopeSpans", "spans"):
            yield span
            yield from _items(span, "links")
    elif signal is Signal.LOGS:
        yield from _items(document, "resourceLogs", "scopeLogs", "logRecords")
    else:
        for metric in _items(document, "resourceMetrics", "scopeMetrics", "metrics"):
            for kind in _METRIC_KINDS:
                data = metric.get(kind)
                if isinstance(data, dict):
                    for point in _items(data, "dataPoints"):
                        yield from _items(point, "exemplars")


def _rewrite_ids(signal: Signal, document: dict, convert: Callable[[str], str]) -> None:
    for holder in _id_holders(signal, document):
        for key in _ID_KEYS:
            value = holder.get(key)
            if value:
                if not isinstance(value, str):
                    raise OtlpJsonError(f"{key} must be a hex string")
                holder[key] = convert(value)


def _base64_to_hex(value: str) -> str:
    try:
        return base64.b64decode(value, validate=True).hex()
    except binascii.Error:
        raise OtlpJsonError(f"id {value!r} is not base64") from None


def decode(signal: Signal, body: bytes) -> Message:
    """Parse an OTLP/JSON export request into its protobuf message."""
    try:
        document = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise OtlpJsonError(f"body is not JSON: {exc}") from None
    if not isinstance(document, dict):
        raise OtlpJsonError("body must be a JSON object")
    message = signal.spec.request_type()
    try:
        message.ParseFromString(json_wire.encode_message(message.DESCRIPTOR, document))
    except json_wire.JsonWireError as exc:
        raise OtlpJsonError(str(exc)) from None
    except (RecursionError, DecodeError):
        raise OtlpJsonError("the document nests too deeply") from None
    return message


def encode(signal: Signal | None, message: Message) -> bytes:
    """Print a protobuf message as OTLP/JSON (hex ids when it is an export request)."""
    document = json_format.MessageToDict(message)
    if signal is not None:
        _rewrite_ids(signal, document, _base64_to_hex)
    return json.dumps(document, separators=(",", ":")).encode()
