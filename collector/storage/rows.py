"""GenAI calls of a batch → the columns of ``llm_calls`` (an Arrow table per ledger write)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pyarrow as pa

from collector.attributes import value_of
from collector.batch import TelemetryBatch
from collector.storage.schema import COST_COLUMNS, TEXT_COLUMNS, TOKEN_COLUMNS
from pricing_catalog.compiled import to_pico

_NO_BREAKDOWN = (None,) * 5
RESERVATION_KEY = "gen_ai.budget.reservation"  # set by an app on the span of a call it reserved budget for


def _type(name: str) -> pa.DataType:
    if name == "start_us" or name in TOKEN_COLUMNS or name.endswith("_pico"):
        return pa.int64()
    return pa.float64() if name == "duration_ms" else pa.string()


class CallColumns:
    """Accumulates ledger rows, one tuple per call; ``columns`` and ``table()`` transpose them once."""

    def __init__(self, dimensions: tuple[str, ...]):
        self.dimensions = dimensions
        self.names = ("start_us", "duration_ms", *TEXT_COLUMNS, *TOKEN_COLUMNS,
                      *(f"{c}_pico" for c in COST_COLUMNS), *dimensions, "response_id", "reservation")
        self._rows: list[tuple] = []
        self._columns: dict[str, list[Any]] | None = None

    @property
    def rows(self) -> int:
        return len(self._rows)

    def add(self, batch: TelemetryBatch) -> None:
        """Every billable GenAI call of a batch that has been through genai_cost."""
        rows = self._rows
        dimensions = self.dimensions
        services: dict[int, str | None] = {}
        for call in batch.genai or ():
            cost = call.cost
            if cost is None or not call.billable:
                continue
            span = call.span
            service = services.get(id(call.resource), "")
            if service == "":
                service = services[id(call.resource)] = next(
                    (value_of(kv) for kv in call.resource.attributes if kv.key == "service.name"), None)
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
                call.value(RESERVATION_KEY)))
        self._columns = None

    @property
    def columns(self) -> dict[str, list[Any]]:
        """Column name → values, in the order the calls were added."""
        if self._columns is None:
            transposed = zip(*self._rows, strict=True) if self._rows else ([] for _ in self.names)
            self._columns = {name: list(values) for name, values in zip(self.names, transposed, strict=True)}
        return self._columns

    def table(self) -> pa.Table:
        return pa.table({name: pa.array(values, type=_type(name)) for name, values in self.columns.items()})
