"""The shared ledger store: PostgreSQL, written by any number of collector processes on any number of hosts.

- **One call, one row.** A write is a binary ``COPY`` into a temporary table and one ``INSERT … ON
  CONFLICT DO NOTHING``: ``llm_calls`` has a unique index on the span (trace_id, span_id) and one on the
  provider's response id, so a retry, a replay, or the same request sent to two replicas inserts once;
  only the rows actually inserted move the budget counters, in the same transaction.
- **Migrations** are versioned and applied on start under an advisory lock: replicas starting together
  wait for the first one instead of racing it.
- **Reports** sum the calls at read (an index on start_time), so every replica answers the same at once;
  there are no rollup tables to keep up to date.
"""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import psycopg
import pyarrow as pa
from psycopg_pool import ConnectionPool, PoolTimeout

from collector.errors import LedgerError
from collector.storage.budget_tables import BudgetTables
from collector.storage.diagnostics import budget_diagnostics, ledger_diagnostics
from collector.storage.dialect import POSTGRESQL
from collector.storage.schema import (
    ALERTS_DDL,
    BUDGET_STATE_DDL,
    BUDGETS_DDL,
    COST_COLUMNS,
    STANDARD_DIMENSIONS,
    TEXT_COLUMNS,
    TOKEN_COLUMNS,
    calls_ddl,
    q,
)
from collector.storage.store import LedgerStore, WriteTxn

SCHEMA_VERSION = 1  # of the PostgreSQL ledger (DuckDB files have their own numbering)
MIGRATION_LOCK = 0x67656E6169  # pg_advisory_xact_lock key: "genai"
MAINTENANCE_LOCK = MIGRATION_LOCK + 1  # one replica at a time applies retention
_FIXED_COLUMNS = {"start_time", "duration_ms", "inserted_at", "response_id", *TEXT_COLUMNS, *TOKEN_COLUMNS,
                  *COST_COLUMNS}


def _incoming_columns(dimensions: Sequence[str]) -> list[str]:
    """The columns of ``rows.CallColumns`` (costs in pico-units), as the temporary table of a write has them."""
    return ["start_us", "duration_ms", *TEXT_COLUMNS, *TOKEN_COLUMNS, *(f"{c}_pico" for c in COST_COLUMNS),
            *dimensions, "response_id"]


def _sql_type(name: str) -> str:
    """The type of a column of the temporary table of a write."""
    if name == "start_us" or name in TOKEN_COLUMNS or name.endswith("_pico"):
        return "bigint"
    return "double precision" if name == "duration_ms" else "text"


def _incoming_ddl(dimensions: Sequence[str]) -> str:
    columns = ", ".join(f"{q(name)} {_sql_type(name)}" for name in _incoming_columns(dimensions))
    return f"CREATE TEMP TABLE IF NOT EXISTS incoming (row_index INTEGER, {columns}) ON COMMIT DELETE ROWS"


def _configure(con: psycopg.Connection) -> None:
    con.execute("SET TIME ZONE 'UTC'")
    con.commit()


class PostgresLedger(LedgerStore):
    backend = "postgresql"
    shared = True
    dialect = POSTGRESQL

    def __init__(self, pool: ConnectionPool, dimensions: Sequence[str]):
        self.pool = pool
        self.dimensions = tuple(dimensions)
        self.version = SCHEMA_VERSION

    @classmethod
    def open(cls, dsn: str, dimensions: Sequence[str] = STANDARD_DIMENSIONS, pool_size: int = 4,
             connect_timeout: float = 10.0) -> PostgresLedger:
        """Connect, then create or migrate the schema (under an advisory lock) with columns for ``dimensions``."""
        pool = ConnectionPool(dsn, min_size=1, max_size=pool_size, open=False, configure=_configure,
                              check=ConnectionPool.check_connection, timeout=connect_timeout,
                              name="genai-ledger")
        try:
            pool.open(wait=True, timeout=connect_timeout)
        except PoolTimeout:
            pool.close()
            raise LedgerError(f"cannot connect to PostgreSQL at {where(dsn)} within {connect_timeout:g}s: "
                              "check the exporter's dsn, that the server runs and accepts this host") from None
        ledger = cls(pool, tuple(dict.fromkeys((*STANDARD_DIMENSIONS, *dimensions))))
        try:
            ledger.dimensions = ledger._migrate(ledger.dimensions)
        except psycopg.Error as exc:
            pool.close()
            raise LedgerError(f"cannot prepare the ledger in PostgreSQL at {where(dsn)}: {exc}") from None
        return ledger

    def _migrate(self, dimensions: Sequence[str]) -> tuple[str, ...]:
        with self.pool.connection() as con:
            con.execute("SELECT pg_advisory_xact_lock(%s)", [MIGRATION_LOCK])
            exists = con.execute("SELECT to_regclass('schema_version') IS NOT NULL").fetchone()[0]
            version = con.execute("SELECT max(version) FROM schema_version").fetchone()[0] if exists else 0
            if version and version > SCHEMA_VERSION:
                raise LedgerError(f"the PostgreSQL ledger has schema version {version}, newer than this "
                                  f"genai-collector knows ({SCHEMA_VERSION}): upgrade every replica")
            if not version:
                con.execute("CREATE TABLE schema_version (version INTEGER NOT NULL, applied_at TIMESTAMP NOT NULL)")
                con.execute(calls_ddl(dimensions).replace("llm_calls (", "llm_calls (response_id VARCHAR, ", 1))
                con.execute("CREATE UNIQUE INDEX llm_calls_span ON llm_calls (trace_id, span_id)")
                con.execute("CREATE UNIQUE INDEX llm_calls_response ON llm_calls (provider, response_id) "
                            "WHERE response_id IS NOT NULL")
                con.execute("CREATE INDEX llm_calls_start ON llm_calls (start_time)")
                for statement in (BUDGETS_DDL, ALERTS_DDL, *BUDGET_STATE_DDL):
                    con.execute(statement)
                con.execute("INSERT INTO schema_version VALUES (%s, now())", [SCHEMA_VERSION])
            stored = [name for (name,) in con.execute(
                "SELECT column_name FROM information_schema.columns WHERE table_name = 'llm_calls' "
                "AND table_schema = current_schema() ORDER BY ordinal_position").fetchall()
                if name not in _FIXED_COLUMNS]
            for dimension in dimensions:
                if dimension not in stored:
                    con.execute(f"ALTER TABLE llm_calls ADD COLUMN IF NOT EXISTS {q(dimension)} VARCHAR")
            return tuple(dict.fromkeys((*stored, *dimensions)))

    @contextlib.contextmanager
    def _connection(self, what: str) -> Iterator[psycopg.Connection]:
        """A pooled connection in a transaction, committed at the end; errors become LedgerError."""
        try:
            with self.pool.connection() as con:
                yield con
        except psycopg.Error as exc:
            raise LedgerError(f"ledger {what} failed: {str(exc).strip()}") from exc
        except PoolTimeout:
            raise LedgerError(f"ledger {what} failed: no PostgreSQL connection within the pool's timeout") from None

    @contextlib.contextmanager
    def write(self) -> Iterator[WriteTxn]:
        with self._connection("write") as con:
            txn = _PostgresWrite(self, con)
            yield txn
        self.commits += 1
        txn.committed()

    @contextlib.contextmanager
    def reading(self) -> Iterator[psycopg.Cursor]:
        with self._connection("read") as con:
            yield con.cursor()

    def roll_up(self) -> int:
        """Nothing to do: reports sum the calls at read."""
        return 0

    def prune(self, older_than: dt.datetime, tables: Iterable[str] = ("llm_calls",)) -> dict[str, int]:
        """Delete the calls of the whole days before ``older_than``'s (one replica at a time; the others skip)."""
        cutoff = older_than.replace(hour=0, minute=0, second=0, microsecond=0, tzinfo=None)
        deleted = {table: 0 for table in tables}
        if "llm_calls" not in deleted:
            return deleted
        with self._connection("retention") as con:
            if con.execute("SELECT pg_try_advisory_xact_lock(%s)", [MAINTENANCE_LOCK]).fetchone()[0]:
                deleted["llm_calls"] = con.execute("DELETE FROM llm_calls WHERE start_time < %s",
                                                   [cutoff]).rowcount
        return deleted

    def diagnostics(self, statuses: list) -> dict[str, Any]:
        with self.reading() as cursor:
            ledger = ledger_diagnostics(cursor, dialect=POSTGRESQL)
            ledger["schema_version_known"] = SCHEMA_VERSION
            return {"ledger": ledger, "budgets": budget_diagnostics(cursor, statuses, POSTGRESQL)}

    def close(self) -> None:
        self.pool.close()


class _PostgresWrite(WriteTxn):
    def __init__(self, ledger: PostgresLedger, con: psycopg.Connection):
        super().__init__()
        self.ledger = ledger
        self.con = con
        self.budgets = BudgetTables(con.cursor(), POSTGRESQL)

    def append(self, calls: pa.Table) -> list[int]:
        if calls.num_rows == 0:
            return []
        dimensions = self.ledger.dimensions
        names = _incoming_columns(dimensions)
        self.con.execute(_incoming_ddl(dimensions))
        columns = [calls.column(name).to_pylist() if name in calls.column_names else [None] * calls.num_rows
                   for name in names]
        # binary COPY: psycopg's C dumpers format the rows (faster than text, CSV or array parameters here)
        with self.con.cursor().copy(f"COPY incoming (row_index, {', '.join(map(q, names))}) FROM STDIN "
                                    "WITH (FORMAT binary)") as copy:
            copy.set_types(["int4", *(_sql_type(name) for name in names)])
            for index, row in enumerate(zip(*columns, strict=True)):
                copy.write_row((index, *row))
        costs = ", ".join(f"{c}_pico::NUMERIC(38,0) / 1000000000000" for c in COST_COLUMNS)
        inserted = self.con.execute(f"""
            INSERT INTO llm_calls (start_time, duration_ms, {', '.join(TEXT_COLUMNS)}, {', '.join(TOKEN_COLUMNS)},
                                   {', '.join(COST_COLUMNS)}, {', '.join(map(q, dimensions))}, response_id,
                                   inserted_at)
            SELECT TIMESTAMP 'epoch' + start_us * INTERVAL '1 microsecond', duration_ms, {', '.join(TEXT_COLUMNS)},
                   {', '.join(TOKEN_COLUMNS)}, {costs}, {', '.join(map(q, dimensions))}, response_id,
                   now() AT TIME ZONE 'UTC'
            FROM incoming ORDER BY row_index
            ON CONFLICT DO NOTHING
            RETURNING trace_id, span_id""").fetchall()
        if len(inserted) == calls.num_rows:
            return list(range(calls.num_rows))
        first: dict[tuple[str, str], int] = {}
        for index, key in enumerate(zip(columns[names.index("trace_id")], columns[names.index("span_id")],
                                        strict=True)):
            first.setdefault(key, index)
        return sorted(first[(trace_id, span_id)] for trace_id, span_id in inserted)


def probe(dsn: str, timeout: float = 5.0) -> dict[str, Any]:
    """What ``doctor`` checks of a PostgreSQL ledger without changing it: the server's version, the schema
    version (0: not created yet), the calls stored, and this host's clock minus the server's, in seconds
    (replicas whose clocks disagree disagree on when a budget period ends)."""
    try:
        with psycopg.connect(dsn, connect_timeout=max(1, int(timeout)), autocommit=True) as con:
            sent = dt.datetime.now(dt.UTC)
            server_now = con.execute("SELECT now()").fetchone()[0]
            received = dt.datetime.now(dt.UTC)
            version = 0
            calls = None
            if con.execute("SELECT to_regclass('schema_version') IS NOT NULL").fetchone()[0]:
                version = con.execute("SELECT max(version) FROM schema_version").fetchone()[0] or 0
                calls = con.execute("SELECT count(*) FROM llm_calls").fetchone()[0]
            return {"server_version": con.info.server_version, "schema_version": version,
                    "schema_version_known": SCHEMA_VERSION, "calls": calls,
                    "clock_skew_s": ((sent + (received - sent) / 2) - server_now).total_seconds(),
                    "round_trip_ms": (received - sent).total_seconds() * 1000}
    except psycopg.Error as exc:
        raise LedgerError(f"cannot reach PostgreSQL at {where(dsn)}: {str(exc).strip()}") from None


def where(dsn: str) -> str:
    """host:port/dbname of a DSN, without its password."""
    try:
        info = psycopg.conninfo.conninfo_to_dict(dsn)
    except psycopg.ProgrammingError:
        return "the configured DSN (it does not parse)"
    return f"{info.get('host', 'localhost')}:{info.get('port', 5432)}/{info.get('dbname', '')}"
