"""What the ledger says about the health of cost data: used by ``doctor`` and ``/api/v1/diagnostics``."""

from __future__ import annotations

import datetime as dt
from typing import Any

from collector.storage.dialect import DUCKDB, SqlDialect
from collector.storage.queries import jsonable, utcnow
from collector.storage.rollups import rollup_consistency, rollups_lag
from collector.storage.schema import SCHEMA_VERSION, q


def ledger_diagnostics(con: Any, tolerance: float = 0.01, dialect: SqlDialect = DUCKDB) -> dict[str, Any]:
    """Rows, schema, last write, rollup consistency, and the last 24 hours by dialect and status."""
    def query(sql: str, *params: Any) -> list[tuple]:
        return con.execute(dialect.sql(sql), params).fetchall()

    (rows, last_write), = query("SELECT count(*), max(inserted_at) FROM llm_calls")
    (version,), = query("SELECT max(version) FROM schema_version")
    since = utcnow() - dt.timedelta(hours=24)
    dialects = dict(query("SELECT dialect, count(*) FROM llm_calls WHERE start_time >= ? GROUP BY 1", since))
    statuses = dict(query("SELECT status, count(*) FROM llm_calls WHERE start_time >= ? GROUP BY 1", since))
    (mismatched,), = query(
        "SELECT count(*) FROM llm_calls WHERE start_time >= ? AND reported_cost IS NOT NULL AND cost IS NOT NULL "
        "AND abs(cost - reported_cost) > ? * greatest(abs(cost), abs(reported_cost))", since, tolerance)
    unpriced = query("SELECT provider, model, count(*) FROM llm_calls WHERE start_time >= ? AND status = 'unpriced' "
                     "GROUP BY 1, 2 ORDER BY 3 DESC LIMIT 10", since)
    # PostgreSQL sums the calls at read: there are no rollups to drift
    consistent = rollup_consistency(con, rollups_lag(version))["consistent"] if dialect is DUCKDB else True
    return {
        "rows": rows, "last_write": jsonable(last_write), "schema_version": version,
        "schema_version_known": SCHEMA_VERSION,
        "rollups_consistent": consistent,
        "last_24h": {"dialects": dialects, "statuses": statuses, "reported_cost_mismatches": mismatched,
                     "unpriced": [{"provider": p, "model": m, "calls": c} for p, m, c in unpriced]},
    }


def budget_diagnostics(con: Any, statuses: list, dialect: SqlDialect = DUCKDB) -> list[dict[str, Any]]:
    """Each budget with whether it matched any call in the last 30 days."""
    result = []
    for status in statuses:
        where, params = ["start_time >= ?"], [utcnow() - dt.timedelta(days=30)]
        for key, pattern in status.budget.match:
            condition, parameter = dialect.glob(q(key), pattern)
            where.append(condition)
            params.append(parameter)
        matched = con.execute(dialect.sql(f"SELECT count(*) FROM llm_calls WHERE {' AND '.join(where)}"),
                              params).fetchone()[0]
        result.append({**status.as_dict(), "calls_last_30d": matched})
    return result
