"""Budgets: definitions, calendar periods in a timezone, and BudgetBook, the arithmetic of their spend.

Spend comes only from calls the cost ledger committed (so retries and failed writes never count):
counters in the ledger move in the transaction that inserts the calls, so a restart, a retry or a
second replica neither forgets nor double counts. Money is integer pico-units, like everywhere else.
"""

from __future__ import annotations

import datetime as dt
import fnmatch
import functools
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from collector.errors import BudgetError
from collector.storage.budget_tables import Window
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


@functools.lru_cache(maxsize=4096)
def _minute(minutes: int) -> dt.datetime:
    """The start of a minute (minutes since the epoch), as a rolling budget's counter bucket."""
    return dt.datetime.fromtimestamp(minutes * 60, dt.UTC)


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
class Status:
    budget: Budget
    spent_pico: int
    period_start: dt.datetime
    resets_at: dt.datetime | None
    held_pico: int = 0  # reserved for calls not yet seen (POST /api/v1/budgets/reserve)

    @property
    def utilization(self) -> float:
        return self.spent_pico / self.budget.limit_pico

    def refuses(self, estimate_pico: int) -> bool:
        """Whether a hard budget refuses a call of this estimated cost: spent, held and the estimate would
        pass the limit (or it is exceeded already)."""
        limit = self.budget.limit_pico
        return self.budget.hard and (self.spent_pico >= limit
                                     or self.spent_pico + self.held_pico + estimate_pico > limit)

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
                "reserved": format(from_pico(self.held_pico).normalize(), "f"),
                "period_start": self.period_start.isoformat(),
                "resets_at": self.resets_at.isoformat() if self.resets_at else None}


class BudgetBook:
    """The budgets in force, their periods in a time zone, and the arithmetic of their spend: which counter
    bucket a call adds to, which window of buckets is a budget's current spend, which thresholds a change
    of spend crosses. The counters themselves live in the ledger (collector.storage.budget_tables)."""

    def __init__(self, zone: dt.tzinfo, clock: Callable[[], dt.datetime] | None = None):
        self.zone = zone
        self.clock = clock or (lambda: dt.datetime.now(dt.UTC))
        self.budgets: dict[str, Budget] = {}  # replaced whole, never changed in place: readers need no lock
        self.version = -1  # of the definitions in the ledger these budgets are
        self._periods: dict[str, tuple[int, int | None, dt.datetime]] = {}  # id → [start µs, end µs), start

    def counted(self, budget: Budget) -> dict[str, Any]:
        """What a budget's counters depend on: its definition and the zone its calendar periods are in."""
        return {**budget.spec(), "timezone": str(self.zone)}

    def window(self, budget: Budget, now: dt.datetime) -> Window:
        """The counter buckets that make up the budget's spend now."""
        start, end = period_bounds(budget.period, now, self.zone)
        if budget.period.startswith("rolling"):  # the minutes the window has begun
            return Window(budget.id, start.replace(second=0, microsecond=0), None)
        return Window(budget.id, start, end)

    def bucket(self, budget: Budget, start_us: int) -> dt.datetime:
        """The counter a call that started at ``start_us`` adds to: its period's start, or its minute."""
        if budget.period.startswith("rolling"):
            return _minute(start_us // 60_000_000)
        cached = self._periods.get(budget.id)
        if cached is None or start_us < cached[0] or (cached[1] is not None and start_us >= cached[1]):
            start, end = period_bounds(budget.period, dt.datetime.fromtimestamp(start_us / 1e6, dt.UTC), self.zone)
            cached = (int(start.timestamp() * 1e6), int(end.timestamp() * 1e6) if end else None, start)
            if len(self._periods) > 10_000:
                self._periods.clear()
            self._periods[budget.id] = cached
        return cached[2]

    def increments(self, keys: Sequence[str], calls: Iterable[tuple[int, int, tuple]]
                   ) -> dict[tuple[str, dt.datetime], int]:
        """What calls — (start µs, cost pico, their values of the dimensions ``keys``) — add to each (budget,
        bucket) counter. Which budgets a call matches is worked out once per distinct set of values."""
        budgets = list(self.budgets.values())
        matching: dict[tuple, list[Budget]] = {}
        added: dict[tuple[str, dt.datetime], int] = {}
        for start_us, cost, values in calls:
            if not cost:
                continue
            matched = matching.get(values)
            if matched is None:
                by_key = dict(zip(keys, values, strict=True))
                matched = matching[values] = [budget for budget in budgets if budget.matches(by_key)]
            for budget in matched:
                key = (budget.id, self.bucket(budget, start_us))
                added[key] = added.get(key, 0) + cost
        return added

    def crossed(self, budget: Budget, before: int, after: int, period_start: dt.datetime) -> list[Alert]:
        """The thresholds spend passed going from ``before`` to ``after`` (pico-units)."""
        return [Alert(budget, threshold, period_start, after, self.clock()) for threshold in budget.thresholds
                if before < budget.limit_pico * Decimal(repr(threshold)) <= after]

    def statuses(self, spent: Mapping[str, int], held: Mapping[str, int], now: dt.datetime,
                 budgets: Iterable[Budget] | None = None) -> list[Status]:
        """The status of each budget (of ``budgets``, or all) given its spend and holds."""
        result = []
        for budget in sorted(self.budgets.values() if budgets is None else budgets, key=lambda b: b.id):
            budget_id = budget.id
            start, end = period_bounds(budget.period, now, self.zone)
            result.append(Status(budget, spent.get(budget_id, 0), start, end, held.get(budget_id, 0)))
        return result
