"""GenAI calls of a batch → the columns of ``llm_calls`` (an Arrow table per ledger write)."""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from collector.attributes import value_of
from collector.batch import TelemetryBatch
from collector.storage.schema import COST_COLUMNS, TEXT_COLUMNS, TOKEN_COLUMNS
from pricing_catalog.compiled import to_pico

if TYPE_CHECKING:
    from processors.genai_call import GenAICall

_NO_BREAKDOWN = (None,) * 5
RESERVATION_KEY = "gen_ai.budget.reservation"  # set by an app on the span of a call it reserved budget for


def _type(name: str) -> pa.DataType:
    if name == "start_us" or name in TOKEN_COLUMNS or name.endswith("_pico"):
        return pa.int64()
    return pa.float64() if name == "duration_ms" else pa.string()


def as_label(value: Any) -> str | None:
    """A text column's value from an attribute value: text as it is, a number or a boolean as Python writes it."""
    return value if value is None or isinstance(value, str) else str(value)


class CallColumns:
    """Accumulates ledger rows in the order they are added: tuples for calls (one per call), or whole Arrow
    record batches where the native GenAI stage made a request's rows (``NativeCalls.ledger``); ``table()``
    and ``columns`` put them together once."""

    def __init__(self, dimensions: tuple[str, ...]):
        self.dimensions = dimensions
        self.names = ("start_us", "duration_ms", *TEXT_COLUMNS, *TOKEN_COLUMNS,
                      *(f"{c}_pico" for c in COST_COLUMNS), *dimensions, "response_id", "reservation")
        self.schema = pa.schema([(name, _type(name)) for name in self.names])
        self._parts: list[list[tuple] | pa.RecordBatch] = []
        self.rows = 0
        self._table: pa.Table | None = None

    def add(self, batch: TelemetryBatch) -> None:
        """Every billable GenAI call of a batch that has been through genai_cost."""
        native = batch.native_result
        batches = None if native is None else native.ledger(self)
        if batches is None:
            self.add_calls(batch.genai or ())
            return
        for rows in batches:
            if rows.num_rows:
                self._parts.append(rows)
                self.rows += rows.num_rows
                self._table = None

    def add_calls(self, calls: Iterable[GenAICall]) -> None:
        rows: list[tuple] = []
        dimensions = self.dimensions
        services: dict[int, str | None] = {}
        for call in calls:
            cost = call.cost
            if cost is None or not call.billable:
                continue
            span = call.span
            service = services.get(id(call.resource), "")
            if service == "":
                service = services[id(call.resource)] = as_label(next(
                    (value_of(kv) for kv in call.resource.attributes if kv.key == "service.name"), None))
            start = span.start_time_unix_nano
            match = cost.match
            attribution = call.attribution or {}
            rows.append((
                start // 1000, (span.end_time_unix_nano - start) / 1e6,
                span.trace_id.hex(), span.span_id.hex(), service, call.provider, call.model, call.request_model,
                call.operation, call.tier, call.dialect, cost.currency, cost.status,
                cost.source if cost.amount_pico is not None else None,
                match.provider_id if match else None, match.model_id if match else None, cost.snapshot,
                call.input, call.output, call.cache_read, call.cache_write, call.reasoning,
                cost.amount_pico, *(cost.breakdown[1:] if cost.breakdown is not None else _NO_BREAKDOWN),
                None if cost.reported is None else to_pico(Decimal(repr(cost.reported))),
                *[attribution.get(dimension) for dimension in dimensions], call.response_id,
                as_label(call.value(RESERVATION_KEY))))
        if rows:
            if self._parts and isinstance(self._parts[-1], list):
                self._parts[-1].extend(rows)
            else:
                self._parts.append(rows)
            self.rows += len(rows)
            self._table = None

    def table(self) -> pa.Table:
        if self._table is None:
            self._table = pa.Table.from_batches([self._batch(part) for part in self._parts], schema=self.schema)
        return self._table

    @property
    def columns(self) -> dict[str, list[Any]]:
        """Column name → values, in the order the calls were added."""
        return self.table().to_pydict()

    def select(self, names: list[str]) -> dict[str, list[Any]]:
        """Some of the columns, as ``columns`` has them."""
        return self.table().select(list(dict.fromkeys(names))).to_pydict()

    def _batch(self, part: list[tuple] | pa.RecordBatch) -> pa.RecordBatch:
        if isinstance(part, pa.RecordBatch):
            return part
        transposed = zip(*part, strict=True)
        return pa.record_batch([pa.array(values, type=_type(name)) for name, values
                                in zip(self.names, transposed, strict=True)], schema=self.schema)
