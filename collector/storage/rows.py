"""GenAI calls of a batch → the columns of ``llm_calls`` (an Arrow table per ledger write)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pyarrow as pa

from collector.attributes import value_of
from collector.batch import TelemetryBatch
from collector.storage.ledger import COST_COLUMNS, TEXT_COLUMNS, TOKEN_COLUMNS
from pricing_catalog.compiled import to_pico

_BREAKDOWN_COLUMNS = ("cost_input", "cost_output", "cost_cache_read", "cost_cache_write", "cost_other")


class CallColumns:
    """Accumulates ledger rows column by column; ``table()`` hands them to DuckDB as Arrow."""

    def __init__(self, dimensions: tuple[str, ...]):
        self.dimensions = dimensions
        names = ("start_us", "duration_ms", *TEXT_COLUMNS, *TOKEN_COLUMNS,
                 *(f"{c}_pico" for c in COST_COLUMNS), *dimensions)
        self.columns: dict[str, list[Any]] = {name: [] for name in names}
        self.rows = 0

    def add(self, batch: TelemetryBatch) -> None:
        """Every billable GenAI call of a batch that has been through genai_cost."""
        columns = self.columns
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
            columns["start_us"].append(span.start_time_unix_nano // 1000)
            columns["duration_ms"].append((span.end_time_unix_nano - span.start_time_unix_nano) / 1e6)
            for name, value in (("trace_id", span.trace_id.hex()), ("span_id", span.span_id.hex()),
                                ("service", service), ("provider", call.provider), ("model", call.model),
                                ("request_model", call.request_model), ("operation", call.operation),
                                ("tier", call.tier), ("dialect", call.dialect), ("currency", cost.currency),
                                ("status", cost.status), ("source", cost.source if cost.amount_pico is not None
                                                                   else None),
                                ("pricing_provider", cost.match.provider_id if cost.match else None),
                                ("pricing_model", cost.match.model_id if cost.match else None),
                                ("snapshot", cost.snapshot)):
                columns[name].append(value)
            for name, value in zip(TOKEN_COLUMNS, (call.input, call.output, call.cache_read, call.cache_write,
                                                   call.reasoning), strict=True):
                columns[name].append(value)
            columns["cost_pico"].append(cost.amount_pico)
            parts = cost.breakdown[1:] if cost.breakdown is not None else (None,) * 5
            for name, part in zip(_BREAKDOWN_COLUMNS, parts, strict=True):
                columns[f"{name}_pico"].append(part)
            columns["reported_cost_pico"].append(
                None if cost.reported is None else to_pico(Decimal(repr(cost.reported))))
            attribution = call.attribution or {}
            for dimension in self.dimensions:
                columns[dimension].append(attribution.get(dimension))
            self.rows += 1

    def table(self) -> pa.Table:
        arrays = {}
        for name, values in self.columns.items():
            if name == "start_us" or name in TOKEN_COLUMNS or name.endswith("_pico"):
                arrays[name] = pa.array(values, type=pa.int64())
            elif name == "duration_ms":
                arrays[name] = pa.array(values, type=pa.float64())
            else:
                arrays[name] = pa.array(values, type=pa.string())
        return pa.table(arrays)
