"""The embedded ledger store: a DuckDB file with one row per billable GenAI call and hourly / daily rollups.

One process writes a ledger file (DuckDB allows a single writer). Writes come in batches (an
Arrow table per flush), and each is one statement: the calls not already in the ledger — a
retried export is counted once, by (trace_id, span_id) — are appended to ``llm_calls``, all
stamped with one ``inserted_at`` that grows with every write. The rollups catch up apart
(:mod:`collector.storage.rollups`); the tables and migrations are :mod:`collector.storage.schema`'s.
"""

from __future__ import annotations

import collections
import contextlib
import datetime as dt
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from collector.errors import LedgerError
from collector.storage import rollups, schema
from collector.storage.budget_tables import BudgetTables
from collector.storage.diagnostics import budget_diagnostics, ledger_diagnostics
from collector.storage.dialect import DUCKDB
from collector.storage.queries import LedgerQueries
from collector.storage.schema import COST_COLUMNS, STANDARD_DIMENSIONS, TEXT_COLUMNS, TOKEN_COLUMNS, q
from collector.storage.store import LedgerStore, WriteTxn

_PICO_TO_DECIMAL = "0.000000000001::DECIMAL(18,12)"
# writes committed to each ledger file by this process, over every Ledger open on it
_COMMITS: collections.Counter[str] = collections.Counter()
_COMMITS_LOCK = threading.Lock()


class Ledger(LedgerStore):
    """Writes, reads and maintenance of one ledger file. Writes are serialised by a lock (the writer thread
    and budget changes from the API share the connection); reads take cursors of their own."""

    backend = "duckdb"
    shared = False
    dialect = DUCKDB

    def __init__(self, connection: duckdb.DuckDBPyConnection, dimensions: Sequence[str] = STANDARD_DIMENSIONS):
        self.con = connection
        self.dimensions = tuple(dict.fromkeys((*STANDARD_DIMENSIONS, *dimensions)))
        self.version = schema.SCHEMA_VERSION
        self._last_stamp = 0  # µs: the inserted_at of the last write (each write's is greater)
        self._lock = threading.RLock()
        self._file = f"connection {id(connection)}"  # the file's key in _COMMITS (its path, once opened)

    @classmethod
    def open(cls, path: str | Path, dimensions: Sequence[str] = STANDARD_DIMENSIONS,
             read_only: bool = False, threads: int | None = None) -> Ledger:
        if not read_only:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        elif not Path(path).exists():
            raise LedgerError(f"{path}: no such ledger file")
        ledger = cls(schema.connect(path, read_only, threads), dimensions)
        ledger._file = str(Path(path).resolve())
        if read_only:
            ledger.version = schema.check_version(ledger.con)
            ledger.dimensions = schema.stored_dimensions(ledger.con)
        else:
            ledger.dimensions = schema.migrate(ledger.con, ledger.dimensions)
            newest = ledger.con.execute("SELECT epoch_us(max(inserted_at)) FROM llm_calls").fetchone()[0]
            ledger._last_stamp = newest or 0
        return ledger

    def check_version(self) -> int:
        return schema.check_version(self.con)

    def rollup_keys(self) -> tuple[str, ...]:
        return schema.rollup_keys(self.dimensions)

    # writes ----------------------------------------------------------------------------------------------

    @contextlib.contextmanager
    def _transaction(self, name: str | None = None, table: pa.Table | None = None):
        """One transaction, rolled back on any error; with ``table``, an Arrow table registered as ``name``
        for its duration. (BEGIN comes first: it closes the result a SELECT may have left open, which
        DuckDB 2 lets no ``register`` pass.)"""
        with self._lock:
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

    @contextlib.contextmanager
    def write(self) -> Iterator[WriteTxn]:
        txn = _DuckDBWrite(self)
        try:
            with self._transaction():
                yield txn
        except duckdb.Error as exc:
            raise LedgerError(f"ledger write failed: {exc}") from exc
        with _COMMITS_LOCK:
            _COMMITS[self._file] += 1
        txn.committed()

    @property
    def commits(self) -> int:
        """Writes committed to this file by this process, through this Ledger or another open on it."""
        return _COMMITS[self._file]

    @contextlib.contextmanager
    def reading(self) -> Iterator[duckdb.DuckDBPyConnection]:
        cursor = self.con.cursor()
        try:
            yield cursor
        finally:
            cursor.close()

    @contextlib.contextmanager
    def queries(self) -> Iterator[LedgerQueries]:
        with self.reading() as con:
            yield LedgerQueries(con, self.dimensions, rollups.rollups_lag(self.version))

    def diagnostics(self, statuses: list) -> dict[str, Any]:
        with self.reading() as con:
            return {"ledger": ledger_diagnostics(con), "budgets": budget_diagnostics(con, statuses)}

    def _insert(self, calls: pa.Table) -> list[int]:
        """The insert of a write's ``append``, inside its transaction."""
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
        self.con.register("incoming", calls)
        try:
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
        finally:
            self.con.unregister("incoming")
        return [i for (i,) in rows]

    def _call_columns(self) -> list[str]:
        return ["start_time", "duration_ms", *TEXT_COLUMNS, *TOKEN_COLUMNS, *COST_COLUMNS,
                *map(q, self.dimensions), "inserted_at"]

    def roll_up(self) -> int:
        """Add the calls written since the last roll-up to the rollups and move the watermark past them, in
        one transaction. Returns the calls rolled up."""
        with self._transaction():
            return rollups.roll_up(self.con, self.rollup_keys())

    # maintenance -----------------------------------------------------------------------------------------

    def rebuild_stats(self, start: dt.datetime | None = None, end: dt.datetime | None = None,
                      progress: Callable[[int, int], None] | None = None) -> int:
        """Recompute the rollups of whole days in [start, end) from the calls; returns days rebuilt."""
        self.roll_up()  # every call below the watermark: the rebuilt days count them all
        bounds = self.con.execute("SELECT min(start_time), max(start_time) FROM llm_calls").fetchone()
        if bounds[0] is None:  # no calls kept: the rollups are all there is of the days before
            return 0
        first = rollups.day_of(start or bounds[0])
        last = end.replace(tzinfo=None) if end else rollups.day_of(bounds[1]) + dt.timedelta(days=1)
        days = max(1, (last - first).days + (1 if (last - first) % dt.timedelta(days=1) else 0))
        for index in range(days):
            day_start = first + dt.timedelta(days=index)
            day_end = day_start + dt.timedelta(days=1)
            self.con.execute("BEGIN")
            rollups.recompute(self.con, self.rollup_keys(), day_start, day_end)
            self.con.execute("COMMIT")
            if progress:
                progress(index + 1, days)
        return days

    def prune(self, older_than: dt.datetime, tables: Iterable[str] = ("llm_calls",)) -> dict[str, int]:
        """Delete calls (and, if listed, rollup buckets) of the whole days before ``older_than``'s day (UTC),
        so a daily rollup stands either for calls all kept or for calls all gone; returns rows deleted per
        table."""
        cutoff = rollups.day_of(older_than)
        deleted = {}
        with self._lock:
            for table in tables:
                column = "start_time" if table == "llm_calls" else "bucket"
                deleted[table] = self.con.execute(f"DELETE FROM {table} WHERE {column} < ?",
                                                  [cutoff]).fetchone()[0]
        return deleted

    def billable_calls(self, start: dt.datetime, end: dt.datetime) -> list[tuple]:
        """What ``reprice`` prices again: (trace_id, span_id, start_us, provider, model, tier, source, status,
        *TOKEN_COLUMNS, cost, reported_cost, currency) of the priced and unpriced calls in [start, end)
        (those priced from incomplete token counts too)."""
        return self.con.execute(
            f"SELECT trace_id, span_id, epoch_us(start_time) AS start_us, provider, model, tier, source, status, "
            f"{', '.join(TOKEN_COLUMNS)}, cost, reported_cost, currency FROM llm_calls WHERE start_time >= ? "
            f"AND start_time < ? AND status IN ('priced', 'unpriced', 'incomplete_usage')", [start, end]).fetchall()

    def apply_prices(self, repriced: pa.Table, start: dt.datetime, end: dt.datetime) -> int:
        """Replace the costs of stored calls (``repriced``: trace_id, span_id, status, source, pricing_provider,
        pricing_model, snapshot, currency and ``<cost column>_pico``) and recompute the rollups of the days
        they fall in, in one transaction. Returns the calls updated."""
        costs = ", ".join(f"{c} = (r.{c}_pico::DECIMAL(38,0) * {_PICO_TO_DECIMAL})" for c in COST_COLUMNS
                          if c != "reported_cost")
        texts = ", ".join(f"{c} = r.{c}" for c in ("status", "source", "pricing_provider", "pricing_model",
                                                    "snapshot", "currency"))
        first = rollups.day_of(start)
        last = end if end == rollups.day_of(end) else rollups.day_of(end) + dt.timedelta(days=1)
        with self._transaction("repriced", repriced):
            updated = self.con.execute(f"""
                UPDATE llm_calls SET {costs}, {texts} FROM repriced r
                WHERE llm_calls.trace_id = r.trace_id AND llm_calls.span_id = r.span_id
                  AND llm_calls.start_time >= ? AND llm_calls.start_time < ?""", [start, end]).fetchone()[0]
            rollups.recompute(self.con, self.rollup_keys(), first, last)
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
        """Calls vs. daily rollups (with the calls past the watermark): the same totals when consistent."""
        return rollups.rollup_consistency(self.con, rollups.rollups_lag(self.version))

    def close(self) -> None:
        self.con.close()


class _DuckDBWrite(WriteTxn):
    def __init__(self, ledger: Ledger):
        super().__init__()
        self.ledger = ledger
        self.budgets = BudgetTables(ledger.con, DUCKDB)

    def append(self, calls: pa.Table) -> list[int]:
        return self.ledger._insert(calls)
