"""Budget periods, rollover in a non-UTC zone with a clock passed in, thresholds, definitions."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest

from collector.errors import BudgetError
from pricing_catalog.compiled import to_pico
from processors.budgets import BudgetLedger, parse_budget, period_bounds

BERLIN = ZoneInfo("Europe/Berlin")
UTC = dt.UTC


def at(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text)


@pytest.mark.parametrize(("period", "now", "start", "end"), [
    ("daily", "2026-03-10T23:30:00+00:00", "2026-03-10T23:00:00+00:00", "2026-03-11T23:00:00+00:00"),
    ("daily", "2026-03-10T22:59:59+00:00", "2026-03-09T23:00:00+00:00", "2026-03-10T23:00:00+00:00"),
    # 29 March 2026: clocks go forward in Berlin, the day has 23 hours
    ("daily", "2026-03-29T12:00:00+00:00", "2026-03-28T23:00:00+00:00", "2026-03-29T22:00:00+00:00"),
    ("weekly", "2026-03-11T12:00:00+00:00", "2026-03-08T23:00:00+00:00", "2026-03-15T23:00:00+00:00"),
    ("monthly", "2026-02-28T23:30:00+00:00", "2026-02-28T23:00:00+00:00", "2026-03-31T22:00:00+00:00"),
])
def test_calendar_periods_in_a_timezone(period, now, start, end):
    assert period_bounds(period, at(now), BERLIN) == (at(start), at(end))


def test_rolling_and_total():
    now = at("2026-03-10T12:00:00+00:00")
    assert period_bounds("rolling 7d", now, BERLIN) == (now - dt.timedelta(days=7), now)
    assert period_bounds("total", now, BERLIN)[1] is None


def test_daily_budget_resets_at_local_midnight_and_alerts_once_per_period():
    clock = [at("2026-03-10T22:00:00+00:00")]  # 23:00 in Berlin
    book = BudgetLedger(BERLIN, clock=lambda: clock[0])
    budget = parse_budget({"id": "d", "match": {"customer": "acme"}, "limit": 1, "period": "daily",
                           "thresholds": [0.5, 1.0]}, ["customer"])
    book.set_budget(budget)
    usec = int(clock[0].timestamp() * 1e6)
    dollar = to_pico(1)
    alerts = book.record([(usec, dollar // 2, {"customer": "acme"}), (usec, 0, {"customer": "acme"})])
    assert [a.threshold for a in alerts] == [0.5]
    assert book.record([(usec, dollar // 2, {"customer": "acme"})])[0].threshold == 1.0
    assert book.record([(usec, dollar, {"customer": "acme"})]) == []  # each threshold once per period
    assert book.status("d").spent_pico == 2 * dollar
    assert book.record([(usec, dollar, {"customer": "globex"})]) == []
    clock[0] = at("2026-03-10T23:00:01+00:00")  # midnight in Berlin: a new period
    assert book.status("d").spent_pico == 0
    usec = int(clock[0].timestamp() * 1e6)
    assert [a.threshold for a in book.record([(usec, dollar, {"customer": "acme"})])] == [0.5, 1.0]


def test_rolling_window_forgets_old_spend():
    clock = [at("2026-03-10T12:00:00+00:00")]
    book = BudgetLedger(UTC, clock=lambda: clock[0])
    book.set_budget(parse_budget({"id": "r", "limit": 10, "period": "rolling 1h"}, []))
    book.record([(int(clock[0].timestamp() * 1e6), to_pico(3), {})])
    clock[0] += dt.timedelta(minutes=30)
    book.record([(int(clock[0].timestamp() * 1e6), to_pico(4), {})])
    assert book.status("r").spent_pico == to_pico(7)
    clock[0] += dt.timedelta(minutes=45)
    assert book.status("r").spent_pico == to_pico(4)


@pytest.mark.parametrize(("data", "key"), [
    ({"match": {}, "limit": 1}, "id"), ({"id": "x", "limit": 0}, "limit"), ({"id": "x", "limit": "lots"}, "limit"),
    ({"id": "x", "limit": 1, "period": "fortnightly"}, "period"), ({"id": "x", "limit": 1, "thresholds": [2, "a"]},
                                                                    "thresholds"),
    ({"id": "x", "limit": 1, "match": {"colour": "red"}}, "match.colour"), ({"id": "x", "limit": 1, "hard": "yes"},
                                                                             "hard"),
    ({"id": "x", "limit": 1, "limits": 2}, "limits")])
def test_bad_definitions_name_the_field(data, key):
    with pytest.raises(BudgetError) as error:
        parse_budget(data, ["customer", "model"])
    assert error.value.key == key
