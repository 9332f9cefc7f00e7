"""Rollups: hourly and daily partial sums of the calls, brought up to date past a watermark.

DuckDB charges every statement a fixed cost of milliseconds whatever its rows, so a write does not
touch the rollups: ``roll_up`` adds the calls appended since the last roll-up (those with
``inserted_at`` past ``rollup_watermark``) to them now and then, in one transaction that also moves the
watermark. Reads take the rollups plus the sums of the calls past the watermark (``rollup_source``), so
a report always agrees with the calls.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

import duckdb

from collector.storage.schema import ROLLUPS, TOKEN_COLUMNS, WATERMARK, q, rollup_select

# the measures of rollup rows summed (rows of one bucket and key are partial sums)
ROLLUP_SUMS = ", ".join(f"sum({c})::{'DECIMAL(38,12)' if c == 'cost' else 'BIGINT'} AS {c}"
                        for c in ("calls", "unpriced_calls", *TOKEN_COLUMNS, "cost"))


def day_of(value: dt.datetime) -> dt.datetime:
    return value.replace(hour=0, minute=0, second=0, microsecond=0, tzinfo=None)


def rollups_lag(version: int) -> bool:
    """Whether a file of this schema version keeps a watermark (older ones rolled up every call at once)."""
    return version >= 3


def rollup_source(table: str, keys: Sequence[str], lagging: bool = True) -> str:
    """SQL of what a rollup table says once the calls past the watermark are added: rows whose measures
    are partial sums (sum them per bucket and key). ``lagging=False`` for a file of schema 2 or older,
    whose rollups held every call."""
    if not lagging:
        return table
    tail = rollup_select(ROLLUPS[table], keys, f"WHERE inserted_at > {WATERMARK}")
    return f"(SELECT * FROM {table} UNION ALL {tail})"


def rollup_consistency(con: duckdb.DuckDBPyConnection, lagging: bool = True) -> dict[str, Any]:
    """Count and cost of the calls vs. what the daily rollups say (with the calls past the watermark, unless
    the file is of schema 2 or older): the same when they are consistent.

    Only the days the calls are kept for are compared: retention deletes calls by whole days and keeps
    the daily rollups of the days before (``since``, the day of the oldest call, starts the window)."""
    calls, cost, oldest = con.execute("SELECT count(*), coalesce(sum(cost), 0), min(start_time) "
                                      "FROM llm_calls").fetchone()
    since = day_of(oldest) if oldest is not None else None
    tail = f" UNION ALL SELECT count(*), sum(cost) FROM llm_calls WHERE inserted_at > {WATERMARK}" if lagging else ""
    daily = con.execute("SELECT coalesce(sum(calls), 0), coalesce(sum(cost), 0) "
                        f"FROM (SELECT calls, cost FROM cost_daily WHERE bucket >= ?{tail})",
                        [since or dt.datetime.max]).fetchone()
    return {"calls": calls, "cost": cost, "rollup_calls": daily[0], "rollup_cost": daily[1],
            "since": since.date().isoformat() if since else None, "consistent": (calls, cost) == tuple(daily)}


def roll_up(con: duckdb.DuckDBPyConnection, keys: Sequence[str]) -> int:
    """Add the calls written since the last roll-up to the rollups, which keep one row per bucket and key,
    and move the watermark past them (call it inside a transaction). Returns the calls rolled up."""
    watermark = con.execute(f"SELECT {WATERMARK}").fetchall()[0][0]
    count, newest, earliest = con.execute(
        "SELECT count(*), max(inserted_at), min(start_time) FROM llm_calls WHERE inserted_at > ?",
        [watermark]).fetchall()[0]
    if count:
        for table, unit in ROLLUPS.items():
            first = day_of(earliest) if unit == "day" else earliest.replace(minute=0, second=0, microsecond=0)
            calls = rollup_select(unit, keys, "WHERE inserted_at > ? AND inserted_at <= ?")
            con.execute(f"CREATE OR REPLACE TEMP TABLE merged AS SELECT bucket, {', '.join(map(q, keys))}, "
                        f"{ROLLUP_SUMS} FROM (SELECT * FROM {table} WHERE bucket >= ? UNION ALL {calls}) "
                        "GROUP BY ALL", [first, watermark, newest])
            con.execute(f"DELETE FROM {table} WHERE bucket >= ?", [first])
            con.execute(f"INSERT INTO {table} SELECT * FROM merged")
            con.execute("DROP TABLE merged")
        con.execute("UPDATE rollup_watermark SET rolled_up_to = ?", [newest])
    return count


def recompute(con: duckdb.DuckDBPyConnection, keys: Sequence[str], start: dt.datetime, end: dt.datetime) -> None:
    """Rewrite the rollup buckets of [start, end) (whole days) from the calls up to the watermark."""
    where = f"WHERE start_time >= ? AND start_time < ? AND inserted_at <= {WATERMARK}"
    for table, unit in ROLLUPS.items():
        con.execute(f"DELETE FROM {table} WHERE bucket >= ? AND bucket < ?", [start, end])
        con.execute(f"INSERT INTO {table} {rollup_select(unit, keys, where)}", [start, end])
