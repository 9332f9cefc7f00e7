"""TelemetryBatch: one OTLP export request travelling through a pipeline."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from google.protobuf.message import Message

from collector.native import REQUEST_WIRES, TRACE_WIRE, WireStats
from collector.offload import Steps, run_here, run_offloaded
from collector.signals import Signal, count_items, top_level

NO_HEADERS: Mapping[str, str] = {}


class TelemetryBatch:
    """An OTLP export request plus the request metadata it arrived with.

    Processors mutate ``message`` in place. Once the batch reaches the exporters it
    is read-only, so every exporter shares the same message and serialised bytes.

    On the native path (:mod:`collector.native`) a request the native core vouched for stays as its
    wire bytes: ``message`` decodes it only when something asks for it; for traces, the GenAI index
    decodes just the GenAI spans, whose changes :meth:`invalidate` splices back into the bytes; or the native
    GenAI stage (``native``: :class:`processors.genai_native.NativeCalls`) normalised and priced them
    without Python objects, which are made only if something reads ``genai``.
    """

    __slots__ = ("_genai", "_item_count", "_message", "_resource_count", "_wire", "headers", "native", "signal",
                 "wire_stats")

    def __init__(self, signal: Signal, message: Message | None, headers: Mapping[str, str] = NO_HEADERS):
        self.signal = signal
        self._message = message
        self.headers = headers
        self._item_count: int | None = None
        self._resource_count: int | None = None
        self._wire: bytes | None = None
        self._genai: list | None = None
        self.native: Any = None  # the native GenAI stage's result (processors.genai_native.NativeCalls)
        self.wire_stats: WireStats | None = None  # as received, when the native core counted it

    @classmethod
    def from_wire(cls, signal: Signal, wire: bytes, headers: Mapping[str, str] = NO_HEADERS) -> TelemetryBatch:
        """Parse protobuf bytes; raises ``google.protobuf.message.DecodeError`` on a malformed body.

        The bytes are kept: a batch no processor changed is forwarded as it was received. A request
        the native core vouches for is not decoded here at all."""
        return run_here(cls._from_wire(signal, wire, headers))

    @classmethod
    async def received(cls, signal: Signal, wire: bytes, headers: Mapping[str, str] = NO_HEADERS) -> TelemetryBatch:
        """``from_wire`` for a receiver on the event loop: the native core checks and counts the request off the
        loop's thread (:mod:`collector.offload`)."""
        return await run_offloaded(cls._from_wire(signal, wire, headers))

    @classmethod
    def _from_wire(cls, signal: Signal, wire: bytes, headers: Mapping[str, str]) -> Steps[TelemetryBatch]:
        scanner = REQUEST_WIRES.get(signal)
        if scanner is not None:
            wire = bytes(wire)
            stats = scanner.stats((yield scanner.scan_job(wire)))
            if stats is not None:
                return cls._undecoded(signal, wire, headers, stats.items, stats.resources, stats)
        message = signal.spec.request_type()
        message.ParseFromString(wire)
        batch = cls(signal, message, headers)
        batch._wire = wire
        return batch

    @classmethod
    def _undecoded(cls, signal: Signal, wire: bytes, headers: Mapping[str, str], items: int | None,
                   resources: int | None, stats: WireStats | None = None) -> TelemetryBatch:
        batch = cls(signal, None, headers)
        batch._wire = wire
        batch._item_count = items
        batch._resource_count = resources
        batch.wire_stats = stats
        return batch

    @classmethod
    def concatenate(cls, signal: Signal, batches: Sequence[TelemetryBatch],
                    headers: Mapping[str, str] = NO_HEADERS) -> TelemetryBatch:
        """One batch of the data of several (the batch processor's merge). Undecoded requests are joined
        as bytes: protobuf's concatenation of two messages is their merge, repeated fields appended."""
        if all(batch._message is None for batch in batches):
            merged = cls._undecoded(signal, b"".join(batch._wire for batch in batches), headers,
                                    sum(batch.item_count for batch in batches),
                                    sum(batch.resource_count for batch in batches))
        else:
            merged = cls(signal, signal.spec.request_type(), headers)
            for batch in batches:
                top_level(signal, merged.message).extend(top_level(signal, batch.message))
        results = [batch.native_result for batch in batches if batch.indexed]
        if results and all(result is not None for result in results):
            merged.native = NativeParts(results)  # calls not made yet: they stay so
            return merged
        calls = [call for batch in batches for call in batch.genai or ()]
        for call in calls:  # they read their original spans, which are in another request now
            call.wire_at = None
        merged.genai = calls or None
        return merged

    @property
    def genai(self) -> list | None:
        """The GenAI calls, indexed by the pipeline (processors.genai_call.GenAICall)."""
        if self._genai is None and self.native is not None:
            self._genai = self.native.calls()
        return self._genai

    @genai.setter
    def genai(self, calls: list | None) -> None:
        """Set the calls; None forgets them (and the native stage's result): the next pass reads the spans afresh."""
        self._genai = calls
        if calls is None:
            self.native = None

    @property
    def native_result(self) -> Any:
        """The native GenAI stage's result while no call was made of it (None otherwise)."""
        return self.native if self._genai is None else None

    @property
    def genai_count(self) -> int:
        """How many GenAI calls the batch has, without making them."""
        if self._genai is None and self.native is not None:
            return self.native.count
        return len(self._genai or ())

    @property
    def has_ledger_rows(self) -> bool:
        """Whether a GenAI call of the batch is priced and billable (the ledger records it)."""
        native = self.native_result
        if native is not None:
            return native.has_ledger_rows
        return any(call.cost is not None and call.billable for call in self._genai or ())

    @property
    def indexed(self) -> bool:
        return self._genai is not None or self.native is not None

    @property
    def message(self) -> Message:
        """The decoded request (decoded on first use where the native path kept it as bytes)."""
        if self._message is None:
            message = self.signal.spec.request_type()
            message.ParseFromString(self._wire)
            self._message = message
        return self._message

    @property
    def decoded(self) -> bool:
        return self._message is not None

    @property
    def wire(self) -> bytes | None:
        """The request's bytes when they are current (received, or spliced on the native path)."""
        return self._wire

    def rewrite(self, wire: bytes) -> None:
        """Replace the bytes of a request kept undecoded, by a processor that edits them (``edits_wire``) before
        any GenAI index was built on them; the spans and resources stay the same."""
        assert self._message is None and not self.indexed, "rewrite() needs an undecoded, unindexed request"
        self._wire = wire

    @property
    def item_count(self) -> int:
        if self._item_count is None:
            self._item_count = count_items(self.signal, self.message)
        return self._item_count

    @property
    def resource_count(self) -> int:
        """Resources (ResourceSpans, ResourceMetrics, ResourceLogs) in the request."""
        if self._resource_count is None:
            self._resource_count = len(top_level(self.signal, self.message))
        return self._resource_count

    def invalidate(self) -> None:
        """After processors changed the message: append the attributes they queued on GenAI calls, and
        forget cached counts and bytes (the pipeline calls this after each run of processors). Where the
        request was never decoded, the changed GenAI spans are spliced into its bytes instead."""
        if self._genai is None and self.native is not None:
            if not self.native.spliced:
                self._wire = self.native.splice()
            return
        calls = self._genai or ()
        for call in calls:
            call.flush()
        if self._message is None:
            edits = [call.edits() for call in calls if call.wire_at is not None]
            if edits:
                self._wire = TRACE_WIRE.edit(self._wire, sorted(edits))
                for call in calls:
                    call.wire_at = None
            return
        self._item_count = self._resource_count = None
        self._wire = None

    def serialized(self) -> bytes:
        """Protobuf encoding, computed once and shared by every exporter."""
        if self._wire is None:
            self._wire = self.message.SerializeToString()
        return self._wire

    def copy(self) -> TelemetryBatch:
        if self._message is None:
            return self._undecoded(self.signal, self._wire, self.headers, self._item_count, self._resource_count,
                                   self.wire_stats)
        clone = self.signal.spec.request_type()
        clone.CopyFrom(self.message)
        return TelemetryBatch(self.signal, clone, self.headers)


class NativeParts:
    """The native GenAI stage's results of several requests merged into one batch (the batch processor's),
    standing for them: calls are made, and ledger rows put together, only when asked for."""

    spliced = True  # each request's were, before the merge

    def __init__(self, parts: list[Any]):
        self.parts = parts
        self.applied = parts[0].applied
        self.count = sum(part.count for part in parts)
        self.has_ledger_rows = any(part.has_ledger_rows for part in parts)

    def calls(self) -> list:
        calls = [call for part in self.parts for call in part.calls()]
        for call in calls:  # they read their original spans, which are in another request now
            call.wire_at = None
        return calls

    @staticmethod
    def spend(budgets: list, matching: Any) -> bool:
        """The budget reads the calls of a merged batch (their requests are spliced already)."""
        return False

    @staticmethod
    def spending() -> None:
        return None

    def columns(self, names: list[str]) -> dict[str, list[Any]] | None:
        """The parts' ledger columns, joined (``NativeCalls.columns``); None when one part has none."""
        joined: dict[str, list[Any]] = {name: [] for name in dict.fromkeys(names)}
        for part in self.parts:
            columns = part.columns(names)
            if columns is None:
                return None
            for name, values in columns.items():
                joined[name] += values
        return joined

    def ledger(self, columns: Any) -> list | None:
        """The parts' ledger rows as Arrow record batches, or None when one part's must be made from calls."""
        rows = []
        for part in self.parts:
            part_rows = part.ledger(columns)
            if part_rows is None:
                return None
            rows += part_rows
        return rows
