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


def test_each_span_carries_the_running_total_of_its_budget():
    """Issue 16's regression: three gpt-4o-mini calls of 0.00036 in one batch against a daily budget of 0.0009
    for the customer. Each span's spend is the running total (committed calls plus the earlier calls of the
    batch), so the call that crosses the limit says exceeded."""
    from processors.genai_attribution import AttributionConfig, GenAIAttribution
    from processors.genai_budget import BudgetConfig, GenAIBudget
    from tests.genai_helpers import context, run, span_attributes
    from tests.test_genai_processors import batch_of

    daily = parse_budget({"id": "acme-daily", "match": {"customer": "acme"}, "limit": "0.0009", "period": "daily"},
                         None)
    budget = GenAIBudget(BudgetConfig(budgets=(daily,)), context("genai_budget"))
    budget.book.set_budget(daily)  # nothing committed yet
    attribution = GenAIAttribution(AttributionConfig(customer=("span.customer.id",)))
    call = {"gen_ai.provider.name": "openai", "gen_ai.request.model": "gpt-4o-mini", "customer.id": "acme",
            "gen_ai.usage.input_tokens": 1200, "gen_ai.usage.output_tokens": 300}  # 0.00018 + 0.00018
    spans = span_attributes(run(batch_of(call, call, call), also=[attribution, budget]))
    assert [spans[f"span{i}"]["gen_ai.usage.cost.amount"] for i in range(3)] == [0.00036] * 3
    assert [spans[f"span{i}"]["gen_ai.budget.spent"] for i in range(3)] == pytest.approx([0.00036, 0.00072, 0.00108])
    assert [spans[f"span{i}"]["gen_ai.budget.remaining"] for i in range(3)] == pytest.approx(
        [0.00054, 0.00018, -0.00018])
    assert [spans[f"span{i}"]["gen_ai.budget.status"] for i in range(3)] == ["ok", "warning", "exceeded"]
    assert budget.book.status("acme-daily").spent_pico == 0  # only the ledger's commits move the budget
