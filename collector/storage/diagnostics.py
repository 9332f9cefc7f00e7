"""What the ledger says about the health of cost data: used by ``doctor`` and ``/api/v1/diagnostics``."""

from __future__ import annotations

from typing import Any

import duckdb

from collector.storage.queries import jsonable
from collector.storage.rollups import rollup_consistency, rollups_lag
from collector.storage.schema import SCHEMA_VERSION


def ledger_diagnostics(con: duckdb.DuckDBPyConnection, tolerance: float = 0.01) -> dict[str, Any]:
    """Rows, schema, last write, rollup consistency, and the last 24 hours by dialect and status."""
    rows, last_write = con.execute("SELECT count(*), max(inserted_at) FROM llm_calls").fetchone()
    version = con.execute("SELECT max(version) FROM schema_version").fetchone()[0]
    recent = "start_time >= now()::TIMESTAMP - INTERVAL 24 HOUR"
    dialects = dict(con.execute(f"SELECT dialect, count(*) FROM llm_calls WHERE {recent} GROUP BY ALL").fetchall())
    statuses = dict(con.execute(f"SELECT status, count(*) FROM llm_calls WHERE {recent} GROUP BY ALL").fetchall())
    mismatched = con.execute(
        f"SELECT count(*) FROM llm_calls WHERE {recent} AND reported_cost IS NOT NULL AND cost IS NOT NULL "
        "AND abs(cost - reported_cost) > ? * greatest(abs(cost), abs(reported_cost))", [tolerance]).fetchone()[0]
    unpriced = con.execute(f"SELECT provider, model, count(*) FROM llm_calls WHERE {recent} AND status = 'unpriced' "
                           "GROUP BY ALL ORDER BY 3 DESC LIMIT 10").fetchall()
    return {
        "rows": rows, "last_write": jsonable(last_write), "schema_version": version,
        "schema_version_known": SCHEMA_VERSION,
        "rollups_consistent": rollup_consistency(con, rollups_lag(version))["consistent"],
        "last_24h": {"dialects": dialects, "statuses": statuses, "reported_cost_mismatches": mismatched,
                     "unpriced": [{"provider": p, "model": m, "calls": c} for p, m, c in unpriced]},
    }


def budget_diagnostics(con: duckdb.DuckDBPyConnection, statuses: list) -> list[dict[str, Any]]:
    """Each budget with whether it matched any call in the last 30 days."""
    result = []
    for status in statuses:
        where = ["start_time >= now()::TIMESTAMP - INTERVAL 30 DAY"]
        params = []
        for key, pattern in status.budget.match:
            where.append('"' + key.replace('"', '""') + '" GLOB ?')
            params.append(pattern)
        matched = con.execute(f"SELECT count(*) FROM llm_calls WHERE {' AND '.join(where)}", params).fetchone()[0]
        result.append({**status.as_dict(), "calls_last_30d": matched})
    return result
