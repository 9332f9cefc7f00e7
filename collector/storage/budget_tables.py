"""Budget state in the ledger, the same on DuckDB and PostgreSQL: definitions, spend counters, alerts, holds.

- ``budgets``: every budget in force, from the config files (``source = 'config'``) and the API, with the
  definition its counters were computed for (``counted``: the spec and time zone, as JSON).
- ``budget_registry``: one row whose ``version`` grows with every change of definitions; a write reads it
  ``FOR SHARE`` (PostgreSQL) and a change takes it ``FOR UPDATE``, so no write counts calls with a stale set
  of budgets while a new budget's counters are computed from the ledger.
- ``budget_spend``: pico-units per (budget, bucket). The bucket is the start of the calendar period the call
  falls in, or its minute for a rolling period. Writes add to it in the transaction that inserts the calls,
  only for rows actually inserted: a retry, a replay or a second replica never counts a call again.
- ``budget_alerts``: one row per (budget, period, threshold) raised; the writer that inserts it sends it.
- ``budget_holds``: reservations, an estimated cost held against budgets until its call arrives or it expires.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from collector.storage.dialect import SqlDialect
from collector.storage.schema import q

PICO = 10**12


@dataclass(frozen=True)
class StoredBudget:
    spec: dict[str, Any]
    source: str  # config | api
    counted: dict[str, Any] | None  # the definition its counters hold the spend of


@dataclass(frozen=True)
class Window:
    """The buckets of ``budget_id`` that make up its current spend: [start, end), end None for open."""
    budget_id: str
    start: dt.datetime  # UTC: aware, as the budget processor makes them (the tables take naive too)
    end: dt.datetime | None

    def contains(self, moment: dt.datetime) -> bool:
        return moment >= self.start and (self.end is None or moment < self.end)


def _naive(value: dt.datetime) -> dt.datetime:
    return value.astimezone(dt.UTC).replace(tzinfo=None) if value.tzinfo else value


class BudgetTables:
    """The budget tables on one connection (a cursor of the writer's transaction, or a reader's)."""

    def __init__(self, con: Any, dialect: SqlDialect):
        self.con = con
        self.dialect = dialect

    def _run(self, sql: str, params: Sequence[Any] = ()) -> Any:
        return self.con.execute(self.dialect.sql(sql), list(params))

    # definitions -----------------------------------------------------------------------------------------

    def version(self, lock: str | None = None) -> int:
        """The definitions' version; ``lock`` ("share" or "update") locks the row on PostgreSQL."""
        suffix = f" FOR {lock.upper()}" if lock and self.dialect.name == "postgresql" else ""
        return self._run(f"SELECT version FROM budget_registry{suffix}").fetchone()[0]

    def lock(self, budget_ids: Iterable[str]) -> None:
        """Serialise, until the transaction ends, with every other write moving these budgets' spend or holds
        (PostgreSQL advisory locks, taken in one order; one DuckDB process serialises its writes already)."""
        if self.dialect.name == "postgresql":
            for budget_id in sorted(set(budget_ids)):
                self._run("SELECT pg_advisory_xact_lock(hashtextextended(?, 0))", [budget_id])

    def definitions(self) -> dict[str, StoredBudget]:
        rows = self._run("SELECT id, spec, source, counted FROM budgets ORDER BY id").fetchall()
        return {budget_id: StoredBudget(_json(spec), source, _json(counted) if counted else None)
                for budget_id, spec, source, counted in rows}

    def put(self, budget_id: str, spec: Mapping[str, Any], source: str, counted: Mapping[str, Any]) -> None:
        """Define (or redefine) a budget; ``counted`` is what its counters were just computed for."""
        self._run("INSERT INTO budgets (id, spec, updated_at, source, counted) VALUES (?, ?, ?, ?, ?) "
                  "ON CONFLICT (id) DO UPDATE SET spec = excluded.spec, updated_at = excluded.updated_at, "
                  "source = excluded.source, counted = excluded.counted",
                  [budget_id, json.dumps(spec), _naive(dt.datetime.now(dt.UTC)), source, json.dumps(counted)])
        self._run("UPDATE budget_registry SET version = version + 1")

    def delete(self, budget_id: str) -> None:
        for table, column in (("budgets", "id"), ("budget_spend", "budget_id"), ("budget_holds", "budget_id")):
            self._run(f"DELETE FROM {table} WHERE {column} = ?", [budget_id])
        self._run("UPDATE budget_registry SET version = version + 1")

    # spend -----------------------------------------------------------------------------------------------

    def set_counters(self, budget_id: str, buckets: Iterable[tuple[dt.datetime, int]]) -> None:
        """Replace a budget's counters (after computing them from the ledger)."""
        self._run("DELETE FROM budget_spend WHERE budget_id = ?", [budget_id])
        self.add({(budget_id, bucket): amount for bucket, amount in buckets})

    def add(self, increments: Mapping[tuple[str, dt.datetime], int]) -> dict[tuple[str, dt.datetime], int]:
        """Add pico-units to (budget, bucket) counters; returns the counters moved, (budget, naive UTC bucket)
        → their new value."""
        rows = sorted((budget_id, _naive(bucket), Decimal(amount)) for (budget_id, bucket), amount
                      in increments.items() if amount)  # sorted: replicas lock the rows in one order
        if not rows:
            return {}
        values = ", ".join(["(?, ?::TIMESTAMP, ?::DECIMAL(38, 0))"] * len(rows))
        moved = self._run(  # one statement: DuckDB charges each milliseconds, whatever its rows
            f"INSERT INTO budget_spend VALUES {values} ON CONFLICT (budget_id, bucket) "
            "DO UPDATE SET spent_pico = budget_spend.spent_pico + excluded.spent_pico "
            "RETURNING budget_id, bucket, spent_pico", [value for row in rows for value in row]).fetchall()
        return {(budget_id, bucket): int(total) for budget_id, bucket, total in moved}

    def spend_of_calls(self, match: Sequence[tuple[str, str]], window: Window, per_minute: bool
                       ) -> list[tuple[dt.datetime, int]]:
        """What the calls in the ledger matching ``match`` (dimension, glob) spent in ``window``: one bucket at
        the window's start, or one per minute (for a rolling period)."""
        where, params = ["start_time >= ?"], [_naive(window.start)]
        if window.end is not None:
            where.append("start_time < ?")
            params.append(_naive(window.end))
        for key, pattern in match:
            condition, parameter = self.dialect.glob(q(key), pattern)
            where.append(condition)
            params.append(parameter)
        if per_minute:
            rows = self._run("SELECT date_trunc('minute', start_time), sum(cost) FROM llm_calls "
                             f"WHERE {' AND '.join(where)} GROUP BY 1", params).fetchall()
        else:
            rows = [(_naive(window.start), self._run(f"SELECT sum(cost) FROM llm_calls WHERE {' AND '.join(where)}",
                                                     params).fetchone()[0])]
        return [(bucket_start, int(total * PICO)) for bucket_start, total in rows if total]

    def spend(self, windows: Sequence[Window], known: Mapping[tuple[str, dt.datetime], int] | None = None
              ) -> dict[str, int]:
        """The spend of each window, summed from its counters (0 when it has none). ``known``: counters
        just moved (``add``'s answer); a calendar period's window (the ones with an end) has a single
        counter, at its start, so one of those is not read again."""
        known = known or {}
        spent = {window.budget_id: known[window.budget_id, _naive(window.start)] for window in windows
                 if window.end is not None and (window.budget_id, _naive(window.start)) in known}
        windows = [window for window in windows if window.budget_id not in spent]
        if not windows:
            return spent
        far = dt.datetime(9999, 1, 1)
        params: list[Any] = []
        for window in windows:
            params += [window.budget_id, _naive(window.start), _naive(window.end) if window.end else far]
        either = " OR ".join(["(budget_id = ? AND bucket >= ? AND bucket < ?)"] * len(windows))
        rows = self._run(f"SELECT budget_id, sum(spent_pico) FROM budget_spend WHERE {either} GROUP BY 1",
                         params).fetchall()  # a join with a VALUES list takes DuckDB twice as long
        spent.update({window.budget_id: 0 for window in windows})
        spent.update({budget_id: int(total) for budget_id, total in rows})
        return spent

    def held(self, now: dt.datetime) -> dict[str, int]:
        """What unexpired reservations hold against each budget."""
        rows = self._run("SELECT budget_id, sum(amount_pico) FROM budget_holds WHERE expires_at > ? GROUP BY 1",
                         [_naive(now)]).fetchall()
        return {budget_id: int(total) for budget_id, total in rows}

    # alerts and holds ------------------------------------------------------------------------------------

    def claim_alert(self, budget_id: str, period_start: dt.datetime, threshold: float, at: dt.datetime) -> bool:
        """Record that a threshold was crossed; True only for the one writer whose row this is."""
        rows = self._run("INSERT INTO budget_alerts VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING RETURNING budget_id",
                         [budget_id, period_start, threshold, at]).fetchall()
        return bool(rows)

    def hold(self, reservation: str, amounts: Mapping[str, int], expires_at: dt.datetime) -> None:
        self.con.executemany(self.dialect.sql("INSERT INTO budget_holds VALUES (?, ?, ?, ?)"),
                             [(reservation, budget_id, Decimal(amount), _naive(expires_at))
                              for budget_id, amount in sorted(amounts.items())])

    def release(self, reservations: Iterable[str], now: dt.datetime) -> int:
        """Drop the holds of these reservations, and every expired one; returns the holds dropped."""
        released = 0
        for reservation in sorted(set(reservations)):
            released += len(self._run("DELETE FROM budget_holds WHERE reservation = ? RETURNING budget_id",
                                      [reservation]).fetchall())
        self._run("DELETE FROM budget_holds WHERE expires_at <= ?", [_naive(now)])
        return released


def _json(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value
