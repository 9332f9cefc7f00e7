"""The cost ledger: a DuckDB file with one row per billable GenAI call and hourly / daily rollups.

One process writes a ledger file (DuckDB allows a single writer). Writes come in batches (an
Arrow table per flush), and each is one statement: the calls not already in the ledger — a
retried export is counted once, by (trace_id, span_id) — are appended to ``llm_calls``, all
stamped with one ``inserted_at`` that grows with every write. DuckDB charges every statement a
fixed cost of milliseconds whatever its rows, so the rollups are not written there: ``roll_up``
adds the calls appended since the last roll-up (those past ``rollup_watermark``) to them now and
then, in one transaction that also moves the watermark. Reads take the rollups plus the sums of
the calls past the watermark (``rollup_source``), so a report always agrees with the calls.
``rebuild_stats`` recomputes rollups from the calls.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from collector.errors import LedgerError

SCHEMA_VERSION = 3  # 2: rollups without a primary key; 3: rollups lag the calls up to rollup_watermark
STANDARD_DIMENSIONS = ("customer", "user", "feature", "team")
ROLLUP_KEYS = ("provider", "model", "service")  # + currency + dimensions
TOKEN_COLUMNS = ("input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens", "reasoning_tokens")
COST_COLUMNS = ("cost", "cost_input", "cost_output", "cost_cache_read", "cost_cache_write", "cost_other",
                "reported_cost")
TEXT_COLUMNS = ("trace_id", "span_id", "service", "provider", "model", "request_model", "operation", "tier",
                "dialect", "currency", "status", "source", "pricing_provider", "pricing_model", "snapshot")
ROLLUPS = {"cost_hourly": "hour", "cost_daily": "day"}
_PICO_TO_DECIMAL = "0.000000000001::DECIMAL(18,12)"
# the measures of rollup rows summed (rows of one bucket and key are partial sums)
ROLLUP_SUMS = ", ".join(f"sum({c})::{'DECIMAL(38,12)' if c == 'cost' else 'BIGINT'} AS {c}"
                        for c in ("calls", "unpriced_calls", *TOKEN_COLUMNS, "cost"))
_WATERMARK_DDL = "CREATE TABLE rollup_watermark (rolled_up_to TIMESTAMP NOT NULL)"  # one row
_WATERMARK = "(SELECT rolled_up_to FROM rollup_watermark)"


def _day(value: dt.datetime) -> dt.datetime:
    return value.replace(hour=0, minute=0, second=0, microsecond=0, tzinfo=None)


def q(name: str) -> str:
    """A quoted SQL identifier (dimension names such as ``user`` are SQL keywords)."""
    return '"' + name.replace('"', '""') + '"'


def rollup_select(unit: str, keys: Sequence[str], where: str = "") -> str:
    """The sums of the calls (of ``where``) per ``unit`` bucket and rollup key, as rows of a rollup table."""
    key_sql = ", ".join(f"coalesce({q(k)}, '') AS {q(k)}" for k in keys)
    measures = ", ".join(["count(*) AS calls", "count(*) FILTER (WHERE status = 'unpriced') AS unpriced_calls",
                          *(f"coalesce(sum({c}), 0) AS {c}" for c in TOKEN_COLUMNS),
                          "coalesce(sum(cost), 0)::DECIMAL(38,12) AS cost"])
    return (f"SELECT date_trunc('{unit}', start_time) AS bucket, {key_sql}, {measures} FROM llm_calls {where} "
            "GROUP BY ALL")


def rollups_lag(version: int) -> bool:
    """Whether a file of this schema version keeps a watermark (older ones rolled up every call at once)."""
    return version >= 3


def rollup_source(table: str, keys: Sequence[str], lagging: bool = True) -> str:
    """SQL of what a rollup table says once the calls past the watermark are added: rows whose measures
    are partial sums (sum them per bucket and key). ``lagging=False`` for a file of schema 2 or older,
    whose rollups held every call."""
    if not lagging:
        return table
    tail = rollup_select(ROLLUPS[table], keys, f"WHERE inserted_at > {_WATERMARK}")
    return f"(SELECT * FROM {table} UNION ALL {tail})"


def rollup_consistency(con: duckdb.DuckDBPyConnection, lagging: bool = True) -> dict[str, Any]:
    """Count and cost of the calls vs. what the daily rollups say (with the calls past the watermark, unless
    the file is of schema 2 or older): the same when they are consistent."""
    calls = con.execute("SELECT count(*), coalesce(sum(cost), 0) FROM llm_calls").fetchone()
    tail = f" UNION ALL SELECT count(*), sum(cost) FROM llm_calls WHERE inserted_at > {_WATERMARK}" if lagging else ""
    daily = con.execute("SELECT coalesce(sum(calls), 0), coalesce(sum(cost), 0) "
                        f"FROM (SELECT calls, cost FROM cost_daily{tail})").fetchone()
    return {"calls": calls[0], "cost": calls[1], "rollup_calls": daily[0], "rollup_cost": daily[1],
            "consistent": tuple(calls) == tuple(daily)}


def connect(path: str | Path, read_only: bool = False, threads: int | None = None) -> duckdb.DuckDBPyConnection:
    """Open a ledger file with an error a user can act on when another process holds it."""
    try:
        config = {"threads": threads} if threads else {}
        return duckdb.connect(str(path), read_only=read_only, config=config)
    except duckdb.IOException as exc:
        if "lock" in str(exc).lower():
            raise LedgerError(f"{path} is in use by a running collector (DuckDB allows one process); "
                              "ask the collector instead: --url http://127.0.0.1:8888") from None
        raise LedgerError(f"cannot open {path}: {exc}") from None


class Ledger:
    """Schema, writes and maintenance of one ledger file (not thread-safe: one writer thread owns it)."""

    def __init__(self, connection: duckdb.DuckDBPyConnection, dimensions: Sequence[str] = STANDARD_DIMENSIONS):
        self.con = connection
        self.dimensions = tuple(dict.fromkeys((*STANDARD_DIMENSIONS, *dimensions)))
        self.version = SCHEMA_VERSION
        self._last_stamp = 0  # µs: the inserted_at of the last write (each write's is greater)

    @classmethod
    def open(cls, path: str | Path, dimensions: Sequence[str] = STANDARD_DIMENSIONS,
             read_only: bool = False, threads: int | None = None) -> Ledger:
        if not read_only:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        elif not Path(path).exists():
            raise LedgerError(f"{path}: no such ledger file")
        ledger = cls(connect(path, read_only, threads), dimensions)
        if read_only:
            ledger.version = ledger.check_version()
            ledger.dimensions = ledger.stored_dimensions()
        else:
            ledger.migrate()
            newest = ledger.con.execute("SELECT epoch_us(max(inserted_at)) FROM llm_calls").fetchone()[0]
            ledger._last_stamp = newest or 0
        return ledger

    # schema ----------------------------------------------------------------------------------------------

    def check_version(self) -> int:
        try:
            row = self.con.execute("SELECT max(version) FROM schema_version").fetchone()
        except duckdb.CatalogException:
            return 0
        version = row[0] or 0
        if version > SCHEMA_VERSION:
            raise LedgerError(f"the ledger has schema version {version}, newer than this genai-collector knows "
                              f"({SCHEMA_VERSION}): upgrade genai-cost-collector to read it")
        return version

    def migrate(self) -> None:
        version = self.check_version()
        if version == 1:
            self._drop_rollup_keys()
        if version in (1, 2):
            self._add_watermark()
        if version == 0:
            self.con.execute("BEGIN")
            self.con.execute("CREATE TABLE schema_version (version INTEGER NOT NULL, applied_at TIMESTAMP NOT NULL)")
            self.con.execute(self._calls_ddl())
            for table in ROLLUPS:
                self.con.execute(self._rollup_ddl(table))
            self.con.execute(_WATERMARK_DDL)
            self.con.execute("INSERT INTO rollup_watermark VALUES ('epoch'::TIMESTAMP)")
            self.con.execute("CREATE TABLE budgets (id VARCHAR PRIMARY KEY, spec JSON NOT NULL, "
                             "updated_at TIMESTAMP NOT NULL)")
            self.con.execute("CREATE TABLE budget_alerts (budget_id VARCHAR NOT NULL, "
                             "period_start TIMESTAMPTZ NOT NULL, threshold DOUBLE NOT NULL, "
                             "fired_at TIMESTAMPTZ NOT NULL, PRIMARY KEY (budget_id, period_start, threshold))")
            self.con.execute("INSERT INTO schema_version VALUES (?, now())", [SCHEMA_VERSION])
            self.con.execute("COMMIT")
        self._ensure_dimensions()

    def _drop_rollup_keys(self) -> None:
        """Schema 1 → 2: the rollups lose their primary key (their rows stay as they are)."""
        self.con.execute("BEGIN")
        for table in ROLLUPS:
            self.con.execute(self._rollup_ddl(f"{table}_v2"))
            self.con.execute(f"INSERT INTO {table}_v2 SELECT * FROM {table}")
            self.con.execute(f"DROP TABLE {table}")
            self.con.execute(f"ALTER TABLE {table}_v2 RENAME TO {table}")
        self.con.execute("INSERT INTO schema_version VALUES (2, now())")
        self.con.execute("COMMIT")

    def _add_watermark(self) -> None:
        """Schema 2 → 3: the rollups hold every call written so far, so the watermark starts at the newest."""
        self.con.execute("BEGIN")
        self.con.execute(_WATERMARK_DDL)
        self.con.execute("INSERT INTO rollup_watermark SELECT coalesce(max(inserted_at), 'epoch'::TIMESTAMP) "
                         "FROM llm_calls")
        self.con.execute("INSERT INTO schema_version VALUES (?, now())", [SCHEMA_VERSION])
        self.con.execute("COMMIT")

    def _calls_ddl(self) -> str:
        columns = ["start_time TIMESTAMP NOT NULL", "duration_ms DOUBLE"]
        columns += [f"{c} VARCHAR" for c in TEXT_COLUMNS]
        columns += [f"{c} BIGINT" for c in TOKEN_COLUMNS]
        columns += [f"{c} DECIMAL(38,12)" for c in COST_COLUMNS]
        columns += [f"{q(d)} VARCHAR" for d in self.dimensions]
        columns += ["inserted_at TIMESTAMP NOT NULL DEFAULT now()"]
        return f"CREATE TABLE llm_calls ({', '.join(columns)})"

    def rollup_keys(self) -> tuple[str, ...]:
        return (*ROLLUP_KEYS, *self.dimensions, "currency")

    def _rollup_ddl(self, table: str) -> str:
        keys = self.rollup_keys()
        columns = ["bucket TIMESTAMP NOT NULL"] + [f"{q(k)} VARCHAR NOT NULL" for k in keys]
        columns += ["calls BIGINT NOT NULL", "unpriced_calls BIGINT NOT NULL"]
        columns += [f"{c} BIGINT NOT NULL" for c in TOKEN_COLUMNS] + ["cost DECIMAL(38,12) NOT NULL"]
        return f"CREATE TABLE {table} ({', '.join(columns)})"

    def stored_dimensions(self) -> tuple[str, ...]:
        fixed = {"start_time", "duration_ms", "inserted_at", *TEXT_COLUMNS, *TOKEN_COLUMNS, *COST_COLUMNS}
        rows = self.con.execute("SELECT column_name FROM information_schema.columns WHERE table_name = 'llm_calls' "
                                "ORDER BY ordinal_position").fetchall()
        return tuple(name for (name,) in rows if name not in fixed)

    def _ensure_dimensions(self) -> None:
        """Extra attribution dimensions declared since the file was made become columns (and rollup keys)."""
        stored = self.stored_dimensions()
        missing = [d for d in self.dimensions if d not in stored]
        self.dimensions = tuple(dict.fromkeys((*stored, *self.dimensions)))
        if not missing:
            return
        self.con.execute("BEGIN")
        for dimension in missing:
            self.con.execute(f"ALTER TABLE llm_calls ADD COLUMN {q(dimension)} VARCHAR")
        for table, unit in ROLLUPS.items():  # a new key: rebuild the rollups
            self.con.execute(f"DROP TABLE {table}")
            self.con.execute(self._rollup_ddl(table))
            self.con.execute(f"INSERT INTO {table} "
                             f"{rollup_select(unit, self.rollup_keys(), f'WHERE inserted_at <= {_WATERMARK}')}")
        self.con.execute("COMMIT")

    # writes ----------------------------------------------------------------------------------------------

    @contextlib.contextmanager
    def _transaction(self, name: str | None = None, table: pa.Table | None = None):
        """One transaction, rolled back on any error; with ``table``, an Arrow table registered as ``name``
        for its duration. (BEGIN comes first: it closes the result a SELECT may have left open, which
        DuckDB 2 lets no ``register`` pass.)"""
        self.con.execute("BEGIN")
        try:
            if table is not None:
                self.con.register(name, table)
            yield
            self.con.execute("COMMIT")
        except Exception:
            self.con.execute("ROLLBACK")
            raise
        finally:
            if table is not None:
                self.con.unregister(name)

    def append(self, calls: pa.Table) -> list[int]:
        """Add the calls not already in the ledger, in one statement; returns the positions (in ``calls``)
        of the rows added. ``calls`` has the columns of ``rows.CallColumns``: start time in µs, costs in
        pico-units."""
        if calls.num_rows == 0:
            return []
        calls = calls.append_column("row_index", pa.array(range(calls.num_rows), type=pa.int64()))
        starts = calls.column("start_us")
        self._last_stamp = stamp = max(self._last_stamp + 1, time.time_ns() // 1000)
        costs = ", ".join(f"{c}_pico::DECIMAL(38,0) * {_PICO_TO_DECIMAL}" for c in COST_COLUMNS)
        ids = pc.binary_join_element_wise(calls.column("trace_id"), calls.column("span_id"), "/")
        # a span twice in one write keeps its first row; the window costs a few µs per call, so only then
        first_only = "QUALIFY row_number() OVER (PARTITION BY trace_id, span_id ORDER BY row_index) = 1" \
            if pc.count_distinct(ids).as_py() < calls.num_rows else ""
        with self._transaction("incoming", calls):
            # A retry carries the same span, so the same start time: comparing with the calls of that time
            # range finds every duplicate while the zone maps skip the rest of the table.
            (added,) = self.con.execute(f"""
                INSERT INTO llm_calls ({', '.join(self._call_columns())})
                SELECT make_timestamp(start_us), duration_ms, {', '.join(TEXT_COLUMNS)},
                       {', '.join(TOKEN_COLUMNS)}, {costs}, {', '.join(map(q, self.dimensions))}, make_timestamp($3)
                FROM incoming i
                WHERE NOT EXISTS (SELECT 1 FROM llm_calls c
                                  WHERE c.start_time BETWEEN make_timestamp($1) AND make_timestamp($2)
                                    AND c.trace_id = i.trace_id AND c.span_id = i.span_id)
                {first_only}""",
                                        [pc.min(starts).as_py(), pc.max(starts).as_py(), stamp]).fetchone()
            if added == calls.num_rows:
                return list(range(added))
            rows = self.con.execute("""
                SELECT min(row_index) FROM incoming
                SEMI JOIN (SELECT trace_id, span_id FROM llm_calls WHERE inserted_at = make_timestamp($1))
                     USING (trace_id, span_id)
                GROUP BY trace_id, span_id ORDER BY 1""", [stamp]).fetchall()
        return [i for (i,) in rows]

    def _call_columns(self) -> list[str]:
        return ["start_time", "duration_ms", *TEXT_COLUMNS, *TOKEN_COLUMNS, *COST_COLUMNS,
                *map(q, self.dimensions), "inserted_at"]

    def roll_up(self) -> int:
        """Add the calls written since the last roll-up to the rollups, which keep one row per bucket and
        key, and move the watermark past them, in one transaction. Returns the calls rolled up."""
        with self._transaction():
            watermark = self.con.execute(f"SELECT {_WATERMARK}").fetchall()[0][0]
            count, newest, earliest = self.con.execute(
                "SELECT count(*), max(inserted_at), min(start_time) FROM llm_calls WHERE inserted_at > ?",
                [watermark]).fetchall()[0]
            if count:
                self._merge_into_rollups(earliest, watermark, newest)
                self.con.execute("UPDATE rollup_watermark SET rolled_up_to = ?", [newest])
        return count

    def _merge_into_rollups(self, earliest: dt.datetime, after: dt.datetime, through: dt.datetime) -> None:
        """Add the sums of the calls with ``inserted_at`` in (after, through] to both rollups: the buckets
        from the one of ``earliest`` on are rewritten with one row per bucket and key."""
        keys = self.rollup_keys()
        for table, unit in ROLLUPS.items():
            first = _day(earliest) if unit == "day" else earliest.replace(minute=0, second=0, microsecond=0)
            calls = rollup_select(unit, keys, "WHERE inserted_at > ? AND inserted_at <= ?")
            self.con.execute(f"CREATE OR REPLACE TEMP TABLE merged AS SELECT bucket, {', '.join(map(q, keys))}, "
                             f"{ROLLUP_SUMS} FROM (SELECT * FROM {table} WHERE bucket >= ? UNION ALL {calls}) "
                             "GROUP BY ALL", [first, after, through])
            self.con.execute(f"DELETE FROM {table} WHERE bucket >= ?", [first])
            self.con.execute(f"INSERT INTO {table} SELECT * FROM merged")
            self.con.execute("DROP TABLE merged")

    # maintenance -----------------------------------------------------------------------------------------

    def rebuild_stats(self, start: dt.datetime | None = None, end: dt.datetime | None = None,
                      progress: Callable[[int, int], None] | None = None) -> int:
        """Recompute the rollups of whole days in [start, end) from the calls; returns days rebuilt."""
        self.roll_up()  # every call below the watermark: the rebuilt days count them all
        bounds = self.con.execute("SELECT min(start_time), max(start_time) FROM llm_calls").fetchone()
        if bounds[0] is None:
            for table in ROLLUPS:
                self.con.execute(f"DELETE FROM {table}")
            return 0
        first = _day(start or bounds[0])
        last = end.replace(tzinfo=None) if end else _day(bounds[1]) + dt.timedelta(days=1)
        days = max(1, (last - first).days + (1 if (last - first) % dt.timedelta(days=1) else 0))
        for index in range(days):
            day_start = first + dt.timedelta(days=index)
            day_end = day_start + dt.timedelta(days=1)
            self.con.execute("BEGIN")
            self._recompute_rollups(day_start, day_end)
            self.con.execute("COMMIT")
            if progress:
                progress(index + 1, days)
        return days

    def prune(self, older_than: dt.datetime, tables: Iterable[str] = ("llm_calls",)) -> dict[str, int]:
        """Delete calls (and, if listed, rollup buckets) before a time; returns rows deleted per table."""
        deleted = {}
        for table in tables:
            column = "start_time" if table == "llm_calls" else "bucket"
            deleted[table] = self.con.execute(f"DELETE FROM {table} WHERE {column} < ?", [older_than]).fetchone()[0]
        return deleted

    def billable_calls(self, start: dt.datetime, end: dt.datetime) -> list[tuple]:
        """What ``reprice`` prices again: (trace_id, span_id, start_us, provider, model, tier, source,
        *TOKEN_COLUMNS, cost, reported_cost) of the priced and unpriced calls in [start, end)."""
        return self.con.execute(
            f"SELECT trace_id, span_id, epoch_us(start_time) AS start_us, provider, model, tier, source, "
            f"{', '.join(TOKEN_COLUMNS)}, cost, reported_cost FROM llm_calls WHERE start_time >= ? "
            f"AND start_time < ? AND status IN ('priced', 'unpriced')", [start, end]).fetchall()

    def apply_prices(self, repriced: pa.Table, start: dt.datetime, end: dt.datetime) -> int:
        """Replace the costs of stored calls (``repriced``: trace_id, span_id, status, source, pricing_provider,
        pricing_model, snapshot, currency and ``<cost column>_pico``) and recompute the rollups of the days
        they fall in, in one transaction. Returns the calls updated."""
        costs = ", ".join(f"{c} = (r.{c}_pico::DECIMAL(38,0) * {_PICO_TO_DECIMAL})" for c in COST_COLUMNS
                          if c != "reported_cost")
        texts = ", ".join(f"{c} = r.{c}" for c in ("status", "source", "pricing_provider", "pricing_model",
                                                    "snapshot", "currency"))
        first = _day(start)
        last = end if end == _day(end) else _day(end) + dt.timedelta(days=1)
        with self._transaction("repriced", repriced):
            updated = self.con.execute(f"""
                UPDATE llm_calls SET {costs}, {texts} FROM repriced r
                WHERE llm_calls.trace_id = r.trace_id AND llm_calls.span_id = r.span_id
                  AND llm_calls.start_time >= ? AND llm_calls.start_time < ?""", [start, end]).fetchone()[0]
            self._recompute_rollups(first, last)
        return updated

    def _recompute_rollups(self, start: dt.datetime, end: dt.datetime) -> None:
        """Rewrite the rollup buckets of [start, end) (whole days) from the calls up to the watermark."""
        where = f"WHERE start_time >= ? AND start_time < ? AND inserted_at <= {_WATERMARK}"
        for table, unit in ROLLUPS.items():
            self.con.execute(f"DELETE FROM {table} WHERE bucket >= ? AND bucket < ?", [start, end])
            self.con.execute(f"INSERT INTO {table} {rollup_select(unit, self.rollup_keys(), where)}", [start, end])

    def export(self, start: dt.datetime, end: dt.datetime, path: Path, file_format: str) -> int:
        """Write the calls of [start, end) to a CSV or Parquet file; returns rows written."""
        rows = self.con.execute("SELECT count(*) FROM llm_calls WHERE start_time >= ? AND start_time < ?",
                                [start, end]).fetchone()[0]
        target = str(path).replace("'", "''")
        options = "FORMAT parquet" if file_format == "parquet" else "FORMAT csv, HEADER true"
        self.con.execute(f"COPY (SELECT * EXCLUDE (inserted_at) FROM llm_calls WHERE start_time >= "
                         f"'{start.isoformat()}'::TIMESTAMP AND start_time < '{end.isoformat()}'::TIMESTAMP "
                         f"ORDER BY start_time) TO '{target}' ({options})")
        return rows

    def consistency(self) -> dict[str, Any]:
        """Calls vs. daily rollups (with the calls past the watermark): the same totals when consistent."""
        return rollup_consistency(self.con, rollups_lag(self.version))

    def close(self) -> None:
        self.con.close()
