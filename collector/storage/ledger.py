"""The cost ledger: a DuckDB file with one row per billable GenAI call and hourly / daily rollups.

One process writes a ledger file (DuckDB allows a single writer). Writes come in batches
(an Arrow table per flush) and run in one transaction: new calls are deduplicated on
(trace_id, span_id) — a retried export is counted once —, appended to ``llm_calls``, and
their sums appended to the rollups, which are therefore always consistent with the calls and
never recomputed from them on read. Rollup tables hold partial sums (several rows may share a
bucket and key; reads sum them): appending beats an upsert, whose fixed cost in DuckDB is several
times a plain insert's, and ``compact_rollups`` merges the rows of recent buckets now and then.
``rebuild_stats`` recomputes rollups from the calls.
"""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

SCHEMA_VERSION = 2  # 2: rollups hold partial sums, without a primary key
STANDARD_DIMENSIONS = ("customer", "user", "feature", "team")
ROLLUP_KEYS = ("provider", "model", "service")  # + currency + dimensions
TOKEN_COLUMNS = ("input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens", "reasoning_tokens")
COST_COLUMNS = ("cost", "cost_input", "cost_output", "cost_cache_read", "cost_cache_write", "cost_other",
                "reported_cost")
TEXT_COLUMNS = ("trace_id", "span_id", "service", "provider", "model", "request_model", "operation", "tier",
                "dialect", "currency", "status", "source", "pricing_provider", "pricing_model", "snapshot")
ROLLUPS = {"cost_hourly": "hour", "cost_daily": "day"}
_PICO_TO_DECIMAL = "0.000000000001::DECIMAL(18,12)"


class LedgerError(Exception):
    """The ledger file cannot be used (locked by another process, newer schema, unreadable)."""


def _day(value: dt.datetime) -> dt.datetime:
    return value.replace(hour=0, minute=0, second=0, microsecond=0, tzinfo=None)


def q(name: str) -> str:
    """A quoted SQL identifier (dimension names such as ``user`` are SQL keywords)."""
    return '"' + name.replace('"', '""') + '"'


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
        self._uncompacted_since: int | None = None  # µs: the earliest call appended since the last compaction

    @classmethod
    def open(cls, path: str | Path, dimensions: Sequence[str] = STANDARD_DIMENSIONS,
             read_only: bool = False, threads: int | None = None) -> Ledger:
        if not read_only:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        elif not Path(path).exists():
            raise LedgerError(f"{path}: no such ledger file")
        ledger = cls(connect(path, read_only, threads), dimensions)
        if read_only:
            ledger.check_version()
            ledger.dimensions = ledger.stored_dimensions()
        else:
            ledger.migrate()
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
        if version == 0:
            self.con.execute("BEGIN")
            self.con.execute("CREATE TABLE schema_version (version INTEGER NOT NULL, applied_at TIMESTAMP NOT NULL)")
            self.con.execute(self._calls_ddl())
            for table in ROLLUPS:
                self.con.execute(self._rollup_ddl(table))
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
        for table in ROLLUPS:  # a new key: rebuild the rollups
            self.con.execute(f"DROP TABLE {table}")
            self.con.execute(self._rollup_ddl(table))
        self._rollup_from("llm_calls")
        self.con.execute("COMMIT")

    # writes ----------------------------------------------------------------------------------------------

    @contextlib.contextmanager
    def _transaction(self, name: str, table: pa.Table):
        """One transaction over an Arrow table registered as ``name``; rolled back on any error. (BEGIN comes
        first: it closes the result a SELECT may have left open, which DuckDB 2 lets no ``register`` pass.)"""
        self.con.execute("BEGIN")
        try:
            self.con.register(name, table)
            yield
            self.con.execute("COMMIT")
        except Exception:
            self.con.execute("ROLLBACK")
            raise
        finally:
            self.con.unregister(name)

    def append(self, calls: pa.Table) -> list[int]:
        """Add calls not already in the ledger, and their sums to the rollups, in one transaction. Returns
        the positions (in ``calls``) of the rows added.

        ``calls`` has the columns of ``rows.CallColumns``: start time in µs, costs in pico-units. Every
        statement here costs DuckDB a millisecond or more whatever the rows, so there are few of them.
        """
        if calls.num_rows == 0:
            return []
        calls = calls.append_column("row_index", pa.array(range(calls.num_rows), type=pa.int64()))
        starts = calls.column("start_us")
        low, high = pc.min(starts).as_py(), pc.max(starts).as_py()
        with self._transaction("incoming", calls):
            # A retry carries the same span, so the same start time: comparing with the calls of that time
            # range finds every duplicate while the zone maps skip the rest of the table.
            repeated = self.con.execute("""
                SELECT s.row_index FROM incoming s
                SEMI JOIN (SELECT trace_id, span_id FROM llm_calls
                           WHERE start_time BETWEEN make_timestamp($1) AND make_timestamp($2)) c
                     USING (trace_id, span_id)
                UNION ALL
                SELECT row_index FROM incoming
                QUALIFY row_number() OVER (PARTITION BY trace_id, span_id ORDER BY row_index) > 1""",
                                        [low, high]).fetchall()
            if repeated:
                calls = calls.filter(pc.invert(pc.is_in(calls.column("row_index"),
                                                        pa.array([i for (i,) in repeated], type=pa.int64()))))
                self.con.register("incoming", calls)
            if calls.num_rows:
                self._insert_calls("incoming")
                self._rollup_from("incoming", starts="make_timestamp(start_us)", cost="cost_pico")
                self._uncompacted_since = low if self._uncompacted_since is None else min(self._uncompacted_since, low)
        return calls.column("row_index").to_pylist()

    def _insert_calls(self, source: str) -> None:
        costs = ", ".join(f"{c}_pico::DECIMAL(38,0) * {_PICO_TO_DECIMAL}" for c in COST_COLUMNS)
        self.con.execute(f"""
            INSERT INTO llm_calls ({', '.join(self._call_columns())})
            SELECT make_timestamp(start_us), duration_ms, {', '.join(TEXT_COLUMNS)}, {', '.join(TOKEN_COLUMNS)},
                   {costs}, {', '.join(map(q, self.dimensions))}, now()
            FROM {source}""")

    def _call_columns(self) -> list[str]:
        return ["start_time", "duration_ms", *TEXT_COLUMNS, *TOKEN_COLUMNS, *COST_COLUMNS,
                *map(q, self.dimensions), "inserted_at"]

    def _rollup_from(self, source: str, where: str = "", params: Sequence[Any] = (), starts: str = "start_time",
                     cost: str = "cost") -> None:
        """Append the sums of ``source``'s calls per bucket and key (``cost`` in pico-units when it is
        not the ``cost`` column) to both rollups."""
        keys = self.rollup_keys()
        key_sql = ", ".join(f"coalesce({q(k)}, '')" for k in keys)
        total = f"coalesce(sum({cost}), 0)" + ("" if cost == "cost" else f"::DECIMAL(38,0) * {_PICO_TO_DECIMAL}")
        measures = ", ".join(["count(*)", "count(*) FILTER (WHERE status = 'unpriced')",
                              *(f"coalesce(sum({c}), 0)" for c in TOKEN_COLUMNS), f"({total})::DECIMAL(38,12)"])
        for table, unit in ROLLUPS.items():
            self.con.execute(f"INSERT INTO {table} SELECT date_trunc('{unit}', {starts}), {key_sql}, {measures} "
                             f"FROM {source} {where} GROUP BY ALL", list(params))

    def compact_rollups(self) -> int:
        """Merge the partial sums of the buckets written since the last compaction into one row per bucket
        and key; returns the rows removed."""
        if self._uncompacted_since is None:
            return 0
        since = dt.datetime.fromtimestamp(self._uncompacted_since / 1e6, dt.UTC).replace(tzinfo=None)
        keys = ", ".join(map(q, self.rollup_keys()))
        sums = ", ".join(f"sum({c})::{kind}" for c, kind in (("calls", "BIGINT"), ("unpriced_calls", "BIGINT"),
                                                              *((c, "BIGINT") for c in TOKEN_COLUMNS),
                                                              ("cost", "DECIMAL(38,12)")))
        removed = 0
        self.con.execute("BEGIN")
        try:
            for table, unit in ROLLUPS.items():
                first = _day(since) if unit == "day" else since.replace(minute=0, second=0, microsecond=0)
                before = self.con.execute(f"SELECT count(*) FROM {table} WHERE bucket >= ?", [first]).fetchone()[0]
                self.con.execute(f"CREATE OR REPLACE TEMP TABLE merged AS SELECT bucket, {keys}, {sums} "
                                 f"FROM {table} WHERE bucket >= ? GROUP BY ALL", [first])
                self.con.execute(f"DELETE FROM {table} WHERE bucket >= ?", [first])
                after = self.con.execute(f"INSERT INTO {table} SELECT * FROM merged").fetchone()[0]
                self.con.execute("DROP TABLE merged")
                removed += before - after
            self.con.execute("COMMIT")
        except Exception:
            self.con.execute("ROLLBACK")
            raise
        self._uncompacted_since = None
        return removed

    # maintenance -----------------------------------------------------------------------------------------

    def rebuild_stats(self, start: dt.datetime | None = None, end: dt.datetime | None = None,
                      progress: Callable[[int, int], None] | None = None) -> int:
        """Recompute the rollups of whole days in [start, end) from the calls; returns days rebuilt."""
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
            for table in ROLLUPS:
                self.con.execute(f"DELETE FROM {table} WHERE bucket >= ? AND bucket < ?", [day_start, day_end])
            self._rollup_from("llm_calls", "WHERE start_time >= ? AND start_time < ?", [day_start, day_end])
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
            for table in ROLLUPS:
                self.con.execute(f"DELETE FROM {table} WHERE bucket >= ? AND bucket < ?", [first, last])
            self._rollup_from("llm_calls", "WHERE start_time >= ? AND start_time < ?", [first, last])
        return updated

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
        """Calls vs. daily rollups: the same totals when the rollups are consistent."""
        calls = self.con.execute("SELECT count(*), coalesce(sum(cost), 0) FROM llm_calls").fetchone()
        daily = self.con.execute("SELECT coalesce(sum(calls), 0), coalesce(sum(cost), 0) FROM cost_daily").fetchone()
        return {"calls": calls[0], "cost": calls[1], "rollup_calls": daily[0], "rollup_cost": daily[1],
                "consistent": tuple(calls) == tuple(daily)}

    def close(self) -> None:
        self.con.close()
