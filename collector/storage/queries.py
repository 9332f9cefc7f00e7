"""Read queries over the ledger, shared by the HTTP API and the CLI: cost reports, calls, unpriced models.

Reports read the rollups (``cost_hourly`` for hourly buckets or ranges that do not start and end on
a day, ``cost_daily`` otherwise) plus the few calls written since the last roll-up, so they cost
about the same whatever the number of calls.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import re
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from collector.config import parse_duration
from collector.errors import NotFound, QueryError
from collector.storage.dialect import DUCKDB, SqlDialect
from collector.storage.rollups import ROLLUP_SUMS
from collector.storage.schema import ROLLUP_KEYS, call_fields, q

GRANULARITIES = ("hour", "day", "month")
MAX_CALLS_PAGE = 1000


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


def parse_time(parameter: str, text: str | None, default: dt.datetime, now: dt.datetime | None = None
               ) -> dt.datetime:
    """``2026-01-01``, ``2026-01-01T12:00:00Z``, ``now``, or a duration ago (``24h``, ``7d``) → naive UTC."""
    if text is None or text == "":
        return default
    now = now or utcnow()
    if text == "now":
        return now
    if re.fullmatch(r"\d+(\.\d+)?(ms|s|m|h|d)", text):
        return now - dt.timedelta(seconds=parse_duration(text))
    try:
        value = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise QueryError(parameter, f"{text!r} is not a time (use 2026-01-31, 2026-01-31T12:00:00Z, now or 7d)") \
            from None
    return value.astimezone(dt.UTC).replace(tzinfo=None) if value.tzinfo else value


def iso(value: dt.datetime | None) -> str | None:
    return None if value is None else value.isoformat() + "Z"


def jsonable(value: Any) -> Any:
    if isinstance(value, Decimal):
        return format(value.normalize(), "f") if value else "0"
    if isinstance(value, dt.datetime):
        return iso(value)
    return value


@dataclass
class CostQuery:
    start: dt.datetime
    end: dt.datetime
    group_by: list[str] = field(default_factory=list)
    granularity: str | None = None
    filters: dict[str, str] = field(default_factory=dict)
    top: int | None = None


class LedgerQueries:
    """Queries on one connection: a cursor of the collector's DuckDB ledger, a read-only file, or a
    PostgreSQL connection (``dialect``)."""

    def __init__(self, connection: Any, dimensions: tuple[str, ...], lagging: bool = True,
                 dialect: SqlDialect = DUCKDB):
        self.con = connection
        self.dimensions = dimensions
        self.keys = (*ROLLUP_KEYS, *dimensions, "currency")
        self.lagging = lagging  # False for a file of schema 2 or older: its rollups hold every call
        self.dialect = dialect
        self.fields = ", ".join(call_fields(dimensions))

    def check_keys(self, parameter: str, names: list[str]) -> None:
        for name in names:
            if name not in self.keys:
                raise QueryError(parameter, f"unknown dimension {name!r}; use {', '.join(self.keys)}")

    def costs(self, query: CostQuery) -> dict[str, Any]:
        """Series per bucket, group and currency, and totals per currency, over [start, end): money of two
        currencies is never summed."""
        self.check_keys("group_by", query.group_by)
        self.check_keys("filter", list(query.filters))
        if query.granularity is not None and query.granularity not in GRANULARITIES:
            raise QueryError("granularity", f"{query.granularity!r}: use {', '.join(GRANULARITIES)}")
        if query.end <= query.start:
            raise QueryError("to", "must be after from")
        day_aligned = all(t == t.replace(hour=0, minute=0, second=0, microsecond=0) for t in (query.start, query.end))
        table = "cost_hourly" if query.granularity == "hour" or not day_aligned else "cost_daily"
        where = ["bucket >= ?", "bucket < ?"] + [f"{q(k)} = ?" for k in query.filters]
        params: list[Any] = [query.start, query.end, *query.filters.values()]
        groups = [q(g) for g in query.group_by]
        select = [*groups, *([] if "currency" in query.group_by else ["currency"])]
        if query.granularity:
            select.insert(0, f"date_trunc('{query.granularity}', bucket) AS bucket")
        # by position: the truncated bucket, not the stored (hourly) column of the same name
        group_clause = f"GROUP BY {', '.join(str(i) for i in range(1, len(select) + 1))}" if select else ""
        order = ", ".join([*(["bucket"] if query.granularity else []), "cost DESC", *groups])  # ties: by group
        source = self.dialect.rollup(table, self.keys, self.lagging)
        sql = (f"SELECT {', '.join([*select, ROLLUP_SUMS])} FROM {source} AS r WHERE {' AND '.join(where)} "
               f"{group_clause} ORDER BY {order}")
        series = self._rows(sql, params)
        if query.top is not None and query.group_by and not query.granularity:
            series = series[:query.top]
        totals_sql = f"SELECT currency, {ROLLUP_SUMS} FROM {source} AS r WHERE {' AND '.join(where)} GROUP BY 1"
        totals = self._rows(totals_sql, params)
        return {"from": iso(query.start), "to": iso(query.end), "granularity": query.granularity,
                "group_by": query.group_by, "filters": query.filters, "source": table,
                "series": series, "totals": totals}

    def calls(self, start: dt.datetime, end: dt.datetime, filters: dict[str, str], limit: int,
              cursor: str | None, order: str = "time") -> dict[str, Any]:
        """Ledger rows, newest first (``order=cost``: most expensive first, one page); ``next_cursor``
        continues where this page ended."""
        if order not in ("time", "cost"):
            raise QueryError("order", f"{order!r}: use time or cost")
        self.check_keys("filter", [k for k in filters if k != "status"])
        if not 1 <= limit <= MAX_CALLS_PAGE:
            raise QueryError("limit", f"must be between 1 and {MAX_CALLS_PAGE}")
        where = ["start_time >= ?", "start_time < ?"] + [f"{q(k)} = ?" for k in filters]
        params: list[Any] = [start, end, *filters.values()]
        if order == "cost":
            rows = self._rows(f"SELECT {self.fields} FROM llm_calls WHERE {' AND '.join(where)} "
                              f"AND cost IS NOT NULL ORDER BY cost DESC, start_time DESC LIMIT {limit}", params)
            return {"calls": rows, "next_cursor": None}
        if cursor:
            position = decode_cursor(cursor)
            where.append("(start_time, trace_id, span_id) < (?, ?, ?)")
            params += position
        rows = self._rows(f"SELECT {self.fields} FROM llm_calls WHERE {' AND '.join(where)} "
                          f"ORDER BY start_time DESC, trace_id DESC, span_id DESC LIMIT {limit + 1}", params)
        next_cursor = None
        if len(rows) > limit:
            rows = rows[:limit]
            last = rows[-1]
            next_cursor = encode_cursor(last["start_time"], last["trace_id"], last["span_id"])
        return {"calls": rows, "next_cursor": next_cursor}

    def call(self, trace_id: str, span_id: str) -> dict[str, Any]:
        """One stored call, by its span; NotFound when the ledger has none."""
        rows = self._rows(f"SELECT {self.fields} FROM llm_calls WHERE trace_id = ? AND span_id = ?",
                          [trace_id, span_id])
        if not rows:
            raise NotFound(f"no call {trace_id}/{span_id} in the ledger")
        return rows[0]

    def unpriced(self) -> dict[str, Any]:
        """Models without a price, and models priced from incomplete token counts, with counts and last seen."""
        def models(status: str) -> list[dict[str, Any]]:
            return self._rows("SELECT provider, model, count(*)::BIGINT AS calls, max(start_time) AS last_seen "
                              "FROM llm_calls WHERE status = ? GROUP BY 1, 2 ORDER BY calls DESC, 1, 2", [status])
        return {"models": models("unpriced"), "incomplete": models("incomplete_usage")}

    def _rows(self, sql: str, params: list[Any]) -> list[dict[str, Any]]:
        cursor = self.con.execute(self.dialect.sql(sql), params)
        names = [d[0] for d in cursor.description]
        return [{n: jsonable(v) for n, v in zip(names, row, strict=True)} for row in cursor.fetchall()]


def encode_cursor(start_time: str, trace_id: str, span_id: str) -> str:
    return base64.urlsafe_b64encode(json.dumps([start_time, trace_id, span_id]).encode()).decode()


def decode_cursor(cursor: str) -> list[Any]:
    try:
        start_time, trace_id, span_id = json.loads(base64.urlsafe_b64decode(cursor.encode()))
        return [dt.datetime.fromisoformat(start_time.replace("Z", "")), str(trace_id), str(span_id)]
    except (ValueError, TypeError):
        raise QueryError("cursor", "not a cursor this API returned") from None
