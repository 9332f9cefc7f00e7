"""The ledger's schema: tables and columns, migrations between schema versions, and opening a file.

Schema 4. ``llm_calls`` has one row per billable GenAI call; ``cost_hourly`` and ``cost_daily`` hold
partial sums per bucket and key, rolled up to ``rollup_watermark`` (see :mod:`collector.storage.rollups`);
the budget tables are :mod:`collector.storage.budget_tables`'s. A file of an older schema is migrated when
a writer opens it; a newer one is refused.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import duckdb

from collector.errors import LedgerError

SCHEMA_VERSION = 4  # 2: rollups without a primary key; 3: rollups lag the calls up to rollup_watermark;
# 4: budget counters, holds and every budget in force in the ledger (collector.storage.budget_tables)
STANDARD_DIMENSIONS = ("customer", "user", "feature", "team")
ROLLUP_KEYS = ("provider", "model", "service")  # + currency + dimensions
TOKEN_COLUMNS = ("input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens", "reasoning_tokens")
COST_COLUMNS = ("cost", "cost_input", "cost_output", "cost_cache_read", "cost_cache_write", "cost_other",
                "reported_cost")
TEXT_COLUMNS = ("trace_id", "span_id", "service", "provider", "model", "request_model", "operation", "tier",
                "dialect", "currency", "status", "source", "pricing_provider", "pricing_model", "snapshot")
ROLLUPS = {"cost_hourly": "hour", "cost_daily": "day"}
WATERMARK = "(SELECT rolled_up_to FROM rollup_watermark)"
_WATERMARK_DDL = "CREATE TABLE rollup_watermark (rolled_up_to TIMESTAMP NOT NULL)"  # one row
BUDGETS_DDL = ("CREATE TABLE budgets (id VARCHAR PRIMARY KEY, spec VARCHAR NOT NULL, updated_at TIMESTAMP NOT NULL, "
               "source VARCHAR NOT NULL, counted VARCHAR)")
ALERTS_DDL = ("CREATE TABLE budget_alerts (budget_id VARCHAR NOT NULL, period_start TIMESTAMPTZ NOT NULL, "
              "threshold DOUBLE PRECISION NOT NULL, fired_at TIMESTAMPTZ NOT NULL, "
              "PRIMARY KEY (budget_id, period_start, threshold))")


BUDGET_STATE_DDL = (  # see collector.storage.budget_tables
    "CREATE TABLE budget_registry (version BIGINT NOT NULL)",
    "INSERT INTO budget_registry VALUES (0)",
    "CREATE TABLE budget_spend (budget_id VARCHAR NOT NULL, bucket TIMESTAMP NOT NULL, "
    "spent_pico DECIMAL(38,0) NOT NULL, PRIMARY KEY (budget_id, bucket))",
    "CREATE TABLE budget_holds (reservation VARCHAR NOT NULL, budget_id VARCHAR NOT NULL, "
    "amount_pico DECIMAL(38,0) NOT NULL, expires_at TIMESTAMP NOT NULL, PRIMARY KEY (reservation, budget_id))",
)


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
            raise LedgerError(f"{path} is in use by a running collector (DuckDB allows one process): stop it "
                              "for rebuild-stats, prune, reprice and export; report and budgets status can ask it "
                              "instead (--url http://127.0.0.1:8888)") from None
        raise LedgerError(f"cannot open {path}: {exc}") from None


def rollup_select(unit: str, keys: Sequence[str], where: str = "") -> str:
    """The sums of the calls (of ``where``) per ``unit`` bucket and rollup key, as rows of a rollup table."""
    key_sql = ", ".join(f"coalesce({q(k)}, '') AS {q(k)}" for k in keys)
    measures = ", ".join(["count(*) AS calls", "count(*) FILTER (WHERE status = 'unpriced') AS unpriced_calls",
                          *(f"coalesce(sum({c}), 0) AS {c}" for c in TOKEN_COLUMNS),
                          "coalesce(sum(cost), 0)::DECIMAL(38,12) AS cost"])
    groups = ", ".join(str(position) for position in range(1, len(keys) + 2))
    return (f"SELECT date_trunc('{unit}', start_time) AS bucket, {key_sql}, {measures} FROM llm_calls {where} "
            f"GROUP BY {groups}")


def check_version(con: duckdb.DuckDBPyConnection) -> int:
    """The file's schema version (0: a new file); LedgerError when it is newer than this collector's."""
    try:
        row = con.execute("SELECT max(version) FROM schema_version").fetchone()
    except duckdb.CatalogException:
        return 0
    version = row[0] or 0
    if version > SCHEMA_VERSION:
        raise LedgerError(f"the ledger has schema version {version}, newer than this genai-collector knows "
                          f"({SCHEMA_VERSION}): upgrade genai-cost-collector to read it")
    return version


def rollup_keys(dimensions: Sequence[str]) -> tuple[str, ...]:
    return (*ROLLUP_KEYS, *dimensions, "currency")


def call_fields(dimensions: Sequence[str]) -> list[str]:
    """The columns of a call as reports show it: all but the write stamp."""
    return ["start_time", "duration_ms", *TEXT_COLUMNS, *TOKEN_COLUMNS, *COST_COLUMNS, *map(q, dimensions)]


def calls_ddl(dimensions: Sequence[str]) -> str:
    columns = ["start_time TIMESTAMP NOT NULL", "duration_ms DOUBLE PRECISION"]
    columns += [f"{c} VARCHAR" for c in TEXT_COLUMNS]
    columns += [f"{c} BIGINT" for c in TOKEN_COLUMNS]
    columns += [f"{c} DECIMAL(38,12)" for c in COST_COLUMNS]
    columns += [f"{q(d)} VARCHAR" for d in dimensions]
    columns += ["inserted_at TIMESTAMP NOT NULL DEFAULT now()"]
    return f"CREATE TABLE llm_calls ({', '.join(columns)})"


def rollup_ddl(table: str, dimensions: Sequence[str]) -> str:
    columns = ["bucket TIMESTAMP NOT NULL"] + [f"{q(k)} VARCHAR NOT NULL" for k in rollup_keys(dimensions)]
    columns += ["calls BIGINT NOT NULL", "unpriced_calls BIGINT NOT NULL"]
    columns += [f"{c} BIGINT NOT NULL" for c in TOKEN_COLUMNS] + ["cost DECIMAL(38,12) NOT NULL"]
    return f"CREATE TABLE {table} ({', '.join(columns)})"


def stored_dimensions(con: duckdb.DuckDBPyConnection) -> tuple[str, ...]:
    fixed = {"start_time", "duration_ms", "inserted_at", *TEXT_COLUMNS, *TOKEN_COLUMNS, *COST_COLUMNS}
    rows = con.execute("SELECT column_name FROM information_schema.columns WHERE table_name = 'llm_calls' "
                       "ORDER BY ordinal_position").fetchall()
    return tuple(name for (name,) in rows if name not in fixed)


def migrate(con: duckdb.DuckDBPyConnection, dimensions: Sequence[str]) -> tuple[str, ...]:
    """Bring the file to SCHEMA_VERSION with columns for ``dimensions``; returns every dimension it has."""
    version = check_version(con)
    if version == 1:
        _drop_rollup_keys(con, stored_dimensions(con))
    if version in (1, 2):
        _add_watermark(con)
    if version in (1, 2, 3):
        _add_budget_state(con)
    if version == 0:
        con.execute("BEGIN")
        con.execute("CREATE TABLE schema_version (version INTEGER NOT NULL, applied_at TIMESTAMP NOT NULL)")
        con.execute(calls_ddl(dimensions))
        for table in ROLLUPS:
            con.execute(rollup_ddl(table, dimensions))
        con.execute(_WATERMARK_DDL)
        con.execute("INSERT INTO rollup_watermark VALUES ('epoch'::TIMESTAMP)")
        con.execute(BUDGETS_DDL)
        con.execute(ALERTS_DDL)
        for statement in BUDGET_STATE_DDL:
            con.execute(statement)
        con.execute("INSERT INTO schema_version VALUES (?, now())", [SCHEMA_VERSION])
        con.execute("COMMIT")
    return _ensure_dimensions(con, dimensions)


def _drop_rollup_keys(con: duckdb.DuckDBPyConnection, dimensions: Sequence[str]) -> None:
    """Schema 1 → 2: the rollups lose their primary key (their rows stay as they are)."""
    con.execute("BEGIN")
    for table in ROLLUPS:
        con.execute(rollup_ddl(f"{table}_v2", dimensions))
        con.execute(f"INSERT INTO {table}_v2 SELECT * FROM {table}")
        con.execute(f"DROP TABLE {table}")
        con.execute(f"ALTER TABLE {table}_v2 RENAME TO {table}")
    con.execute("INSERT INTO schema_version VALUES (2, now())")
    con.execute("COMMIT")


def _add_watermark(con: duckdb.DuckDBPyConnection) -> None:
    """Schema 2 → 3: the rollups hold every call written so far, so the watermark starts at the newest."""
    con.execute("BEGIN")
    con.execute(_WATERMARK_DDL)
    con.execute("INSERT INTO rollup_watermark SELECT coalesce(max(inserted_at), 'epoch'::TIMESTAMP) FROM llm_calls")
    con.execute("INSERT INTO schema_version VALUES (3, now())")
    con.execute("COMMIT")


def _add_budget_state(con: duckdb.DuckDBPyConnection) -> None:
    """Schema 3 → 4: budget counters and holds. The budgets made through the API keep their definitions;
    their counters are computed from the calls when the budget processor starts (``counted`` is empty)."""
    con.execute("BEGIN")
    con.execute("CREATE TABLE budgets_v4 AS SELECT id, spec::VARCHAR AS spec, updated_at FROM budgets")
    con.execute("DROP TABLE budgets")
    con.execute(BUDGETS_DDL)
    con.execute("INSERT INTO budgets SELECT id, spec, updated_at, 'api', NULL FROM budgets_v4")
    con.execute("DROP TABLE budgets_v4")
    for statement in BUDGET_STATE_DDL:
        con.execute(statement)
    con.execute("INSERT INTO schema_version VALUES (4, now())")
    con.execute("COMMIT")


def _ensure_dimensions(con: duckdb.DuckDBPyConnection, dimensions: Sequence[str]) -> tuple[str, ...]:
    """Extra attribution dimensions declared since the file was made become columns (and rollup keys)."""
    stored = stored_dimensions(con)
    missing = [d for d in dimensions if d not in stored]
    every = tuple(dict.fromkeys((*stored, *dimensions)))
    if missing:
        con.execute("BEGIN")
        for dimension in missing:
            con.execute(f"ALTER TABLE llm_calls ADD COLUMN {q(dimension)} VARCHAR")
        for table, unit in ROLLUPS.items():  # a new key: rebuild the rollups
            con.execute(f"DROP TABLE {table}")
            con.execute(rollup_ddl(table, every))
            existing = rollup_select(unit, rollup_keys(every), f"WHERE inserted_at <= {WATERMARK}")
            con.execute(f"INSERT INTO {table} {existing}")
        con.execute("COMMIT")
    return every
