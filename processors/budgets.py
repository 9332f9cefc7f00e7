"""Budgets: definitions, calendar periods in a timezone, and BudgetLedger, the exact spend per budget.

Spend comes only from calls the cost ledger committed (so retries and failed writes never count)
and is rebuilt from the ledger on start, so a restart neither forgets nor double counts. Money is
integer pico-units, like everywhere else.
"""

from __future__ import annotations

import datetime as dt
import fnmatch
import re
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from collector.errors import BudgetError
from pricing_catalog.compiled import from_pico, to_pico

PERIODS = ("daily", "weekly", "monthly", "total")
MATCH_KEYS_FIXED = ("provider", "model", "service")
_ROLLING = re.compile(r"rolling (\d+)([hd])")


@dataclass(frozen=True)
class Budget:
    id: str
    match: tuple[tuple[str, str], ...]  # (key, glob) pairs; empty = all spend
    limit_pico: int
    period: str  # daily | weekly | monthly | total | rolling <N>d / <N>h
    thresholds: tuple[float, ...] = (0.5, 0.8, 1.0)
    hard: bool = False
    source: str = "config"  # config (read-only through the API) or api

    @property
    def limit(self) -> Decimal:
        return from_pico(self.limit_pico)

    def matches(self, values: Mapping[str, Any]) -> bool:
        for key, pattern in self.match:
            value = values.get(key)
            if value is None or not fnmatch.fnmatchcase(str(value), pattern):
                return False
        return True

    def spec(self) -> dict[str, Any]:
        return {"id": self.id, "match": dict(self.match), "limit": format(self.limit.normalize(), "f"),
                "period": self.period, "thresholds": list(self.thresholds), "hard": self.hard}


def parse_budget(data: Any, match_keys: Iterable[str] | None, source: str = "config") -> Budget:
    """A budget from its YAML / JSON form; raises BudgetError naming the field at fault.
    ``match_keys``: the dimensions a budget may match on (None: checked later)."""
    if not isinstance(data, Mapping):
        raise BudgetError("", "a budget is a mapping with id, match, limit, period")
    known = {"id", "match", "limit", "period", "thresholds", "hard"}
    for key in data:
        if key not in known:
            raise BudgetError(str(key), f"unknown field; a budget has {', '.join(sorted(known))}")
    budget_id = data.get("id")
    if not isinstance(budget_id, str) or not re.fullmatch(r"[A-Za-z0-9_.:-]{1,100}", budget_id):
        raise BudgetError("id", "required: letters, digits, _ . : - (at most 100)")
    match = data.get("match") or {}
    if not isinstance(match, Mapping):
        raise BudgetError("match", "a mapping of dimension to value or glob, e.g. {customer: acme}")
    allowed = None if match_keys is None else tuple(match_keys)
    for key, value in match.items():
        if allowed is not None and key not in allowed:
            raise BudgetError(f"match.{key}", f"not a dimension; use {', '.join(allowed)}")
        if not isinstance(value, str | int) or isinstance(value, bool) or value == "":
            raise BudgetError(f"match.{key}", "a value or a glob such as gpt-5*")
    try:
        limit = Decimal(str(data.get("limit")))
    except InvalidOperation:
        raise BudgetError("limit", f"{data.get('limit')!r} is not a number") from None
    if not limit.is_finite() or limit <= 0:
        raise BudgetError("limit", "must be a positive amount in the cost currency")
    period = str(data.get("period", "monthly"))
    if period not in PERIODS and not _ROLLING.fullmatch(period):
        raise BudgetError("period", f"{period!r}: use daily, weekly, monthly, total or rolling <N>d / <N>h")
    thresholds = data.get("thresholds", [0.5, 0.8, 1.0])
    if not isinstance(thresholds, list) or not all(
            isinstance(t, int | float) and not isinstance(t, bool) and 0 < t <= 10 for t in thresholds):
        raise BudgetError("thresholds", "a list of fractions of the limit, e.g. [0.5, 0.8, 1.0]")
    hard = data.get("hard", False)
    if not isinstance(hard, bool):
        raise BudgetError("hard", "true or false")
    return Budget(budget_id, tuple(sorted((str(k), str(v)) for k, v in match.items())), to_pico(limit), period,
                  tuple(sorted(float(t) for t in thresholds)), hard, source)


def period_bounds(period: str, now: dt.datetime, zone: dt.tzinfo) -> tuple[dt.datetime, dt.datetime | None]:
    """[start, end) of the period containing ``now`` (aware), on calendar boundaries in ``zone``.
    ``end`` is None for ``total``; a rolling period ends now."""
    local = now.astimezone(zone)
    if period == "total":
        return dt.datetime(1970, 1, 1, tzinfo=dt.UTC), None
    rolling = _ROLLING.fullmatch(period)
    if rolling:
        amount, unit = int(rolling.group(1)), rolling.group(2)
        return now - (dt.timedelta(days=amount) if unit == "d" else dt.timedelta(hours=amount)), now
    midnight = local.replace(hour=0, minute=0, second=0, microsecond=0)
    if period == "daily":
        start, end = midnight, midnight + dt.timedelta(days=1)
    elif period == "weekly":
        start = midnight - dt.timedelta(days=local.weekday())
        end = start + dt.timedelta(days=7)
    else:
        start = midnight.replace(day=1)
        end = (start + dt.timedelta(days=32)).replace(day=1)
    # re-localise: a day across a DST change is 23 or 25 hours
    return (start.replace(tzinfo=None).replace(tzinfo=zone).astimezone(dt.UTC),
            end.replace(tzinfo=None).replace(tzinfo=zone).astimezone(dt.UTC))


def spend_in_ledger(con: Any, budget: Budget, now: dt.datetime, zone: dt.tzinfo) -> int:
    """A budget's spend in the period containing ``now``, summed exactly from ``llm_calls`` (pico-units)."""
    start, end = period_bounds(budget.period, now, zone)
    where, params = ["start_time >= ?"], [start.astimezone(dt.UTC).replace(tzinfo=None)]
    if end is not None and not budget.period.startswith("rolling"):
        where.append("start_time < ?")
        params.append(end.astimezone(dt.UTC).replace(tzinfo=None))
    for key, pattern in budget.match:
        where.append('"' + key.replace('"', '""') + '" GLOB ?')
        params.append(pattern)
    total = con.execute(f"SELECT coalesce(sum(cost), 0) FROM llm_calls WHERE {' AND '.join(where)}",
                        params).fetchone()[0]
    return to_pico(Decimal(total))


def zone_named(name: str) -> dt.tzinfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise BudgetError("timezone", f"{name!r} is not an IANA time zone such as Europe/Berlin") from None


@dataclass
class Alert:
    budget: Budget
    threshold: float
    period_start: dt.datetime
    spent_pico: int
    at: dt.datetime

    def payload(self) -> dict[str, Any]:
        return {"type": "budget.threshold_crossed", "budget": self.budget.id, "threshold": self.threshold,
                "period": self.budget.period, "period_start": self.period_start.isoformat(),
                "spent": format(from_pico(self.spent_pico).normalize(), "f"),
                "limit": format(self.budget.limit.normalize(), "f"), "match": dict(self.budget.match),
                "utilization": round(self.spent_pico / self.budget.limit_pico, 6), "at": self.at.isoformat()}


@dataclass
class _State:
    period_start: dt.datetime
    period_end: dt.datetime | None
    spent: int = 0
    rolling: dict[int, int] = field(default_factory=dict)  # minute → pico, for rolling periods


@dataclass
class Status:
    budget: Budget
    spent_pico: int
    period_start: dt.datetime
    resets_at: dt.datetime | None

    @property
    def utilization(self) -> float:
        return self.spent_pico / self.budget.limit_pico

    @property
    def status(self) -> str:
        if self.spent_pico >= self.budget.limit_pico:
            return "exceeded"
        crossed = [t for t in self.budget.thresholds if t < 1 and self.utilization >= t]
        return "warning" if crossed else "ok"

    def as_dict(self) -> dict[str, Any]:
        return {**self.budget.spec(), "source": self.budget.source,
                "spent": format(from_pico(self.spent_pico).normalize(), "f"),
                "remaining": format(from_pico(self.budget.limit_pico - self.spent_pico).normalize(), "f"),
                "utilization": round(self.utilization, 6), "status": self.status,
                "period_start": self.period_start.isoformat(),
                "resets_at": self.resets_at.isoformat() if self.resets_at else None}


class BudgetLedger:
    """The spend of every budget in its current period, fed by committed ledger rows."""

    def __init__(self, zone: dt.tzinfo, clock: Callable[[], dt.datetime] | None = None):
        self.zone = zone
        self.clock = clock or (lambda: dt.datetime.now(dt.UTC))
        self.budgets: dict[str, Budget] = {}
        self.states: dict[str, _State] = {}
        self.fired: set[tuple[str, str, float]] = set()
        self.lock = threading.RLock()

    def set_budget(self, budget: Budget, spent_pico: int = 0, rolling: dict[int, int] | None = None) -> None:
        with self.lock:
            self.budgets[budget.id] = budget
            start, end = period_bounds(budget.period, self.clock(), self.zone)
            self.states[budget.id] = _State(start, end, spent_pico, dict(rolling or {}))

    def remove(self, budget_id: str) -> None:
        with self.lock:
            self.budgets.pop(budget_id, None)
            self.states.pop(budget_id, None)

    def _current(self, budget: Budget) -> _State:
        """The budget's state, rolled over to a new period when the clock has passed the old one."""
        state = self.states[budget.id]
        now = self.clock()
        if budget.period.startswith("rolling"):
            start, end = period_bounds(budget.period, now, self.zone)
            cutoff = int(start.timestamp()) // 60
            for minute in [m for m in state.rolling if m < cutoff]:
                state.spent -= state.rolling.pop(minute)
            state.period_start, state.period_end = start, end
        elif state.period_end is not None and now >= state.period_end:
            start, end = period_bounds(budget.period, now, self.zone)
            self.states[budget.id] = state = _State(start, end)
        return state

    def record(self, calls: Iterable[tuple[int, int, Mapping[str, Any]]]) -> list[Alert]:
        """Add committed calls — (start µs, cost pico, dimension values) — and return thresholds crossed."""
        alerts = []
        with self.lock:
            for budget in self.budgets.values():
                state = self._current(budget)
                before = state.spent
                start_us = int(state.period_start.timestamp() * 1e6)
                end_us = int(state.period_end.timestamp() * 1e6) if state.period_end else None
                for call_start, cost, values in calls:
                    if cost and call_start >= start_us and (end_us is None or call_start < end_us
                                                            or budget.period.startswith("rolling")) \
                            and budget.matches(values):
                        state.spent += cost
                        if budget.period.startswith("rolling"):
                            minute = call_start // 60_000_000
                            state.rolling[minute] = state.rolling.get(minute, 0) + cost
                alerts += self._crossed(budget, state, before)
        return alerts

    def _crossed(self, budget: Budget, state: _State, before: int) -> list[Alert]:
        alerts = []
        for threshold in budget.thresholds:
            line = budget.limit_pico * Decimal(repr(threshold))
            key = (budget.id, state.period_start.isoformat(), threshold)
            if before < line <= state.spent and key not in self.fired:
                self.fired.add(key)
                alerts.append(Alert(budget, threshold, state.period_start, state.spent, self.clock()))
        return alerts

    def status(self, budget_id: str) -> Status:
        with self.lock:
            budget = self.budgets[budget_id]
            state = self._current(budget)
            return Status(budget, state.spent, state.period_start, state.period_end)

    def statuses(self) -> list[Status]:
        with self.lock:
            return [self.status(budget_id) for budget_id in sorted(self.budgets)]
