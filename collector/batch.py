"""TelemetryBatch: one OTLP export request travelling through a pipeline."""

from __future__ import annotations

from collections.abc import Mapping

from google.protobuf.message import Message

from collector.signals import Signal, count_items

NO_HEADERS: Mapping[str, str] = {}


class TelemetryBatch:
    """An OTLP export request plus the request metadata it arrived with.

    Processors mutate ``message`` in place. Once the batch reaches the exporters it
    is read-only, so every exporter shares the same message and serialised bytes.
    """

    __slots__ = ("_item_count", "_wire", "genai", "headers", "message", "signal")

    def __init__(self, signal: Signal, message: Message, headers: Mapping[str, str] = NO_HEADERS):
        self.signal = signal
        self.message = message
        self.headers = headers
        self._item_count: int | None = None
        self._wire: bytes | None = None
        self.genai: list | None = None  # the GenAI calls, indexed by the pipeline (processors.genai_call.GenAICall)

    @classmethod
    def from_wire(cls, signal: Signal, wire: bytes, headers: Mapping[str, str] = NO_HEADERS) -> TelemetryBatch:
        """Parse protobuf bytes; raises ``google.protobuf.message.DecodeError`` on a malformed body.

        The bytes are kept: a batch no processor changed is forwarded as it was received."""
        message = signal.spec.request_type()
        message.ParseFromString(wire)
        batch = cls(signal, message, headers)
        batch._wire = wire
        return batch

    @property
    def item_count(self) -> int:
        if self._item_count is None:
            self._item_count = count_items(self.signal, self.message)
        return self._item_count

    def invalidate(self) -> None:
        """After processors changed the message: append the attributes they queued on GenAI calls, and
        forget cached counts and bytes (the pipeline calls this after each run of processors)."""
        for call in self.genai or ():
            call.flush()
        self._item_count = None
        self._wire = None

    def serialized(self) -> bytes:
        """Protobuf encoding, computed once and shared by every exporter."""
        if self._wire is None:
            self._wire = self.message.SerializeToString()
        return self._wire

    def copy(self) -> TelemetryBatch:
        clone = self.signal.spec.request_type()
        clone.CopyFrom(self.message)
        return TelemetryBatch(self.signal, clone, self.headers)
