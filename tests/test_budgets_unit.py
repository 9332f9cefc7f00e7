"""Budget periods, rollover in a non-UTC zone with a clock passed in, thresholds, definitions."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from collector.batch import TelemetryBatch
from collector.errors import BudgetError
from collector.storage.budget_tables import Window
from pricing_catalog.compiled import to_pico
from processors.budgets import BudgetBook, parse_budget, period_bounds

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


def test_calls_count_in_the_period_they_started_in_and_a_rolling_window_by_minute():
    book = BudgetBook(BERLIN, clock=lambda: at("2026-03-10T22:30:00+00:00"))
    daily = parse_budget({"id": "d", "match": {"customer": "acme"}, "limit": 1, "period": "daily"}, ["customer"])
    rolling = parse_budget({"id": "r", "limit": 10, "period": "rolling 1h"}, [])
    book.budgets = {"d": daily, "r": rolling}

    def usec(text: str) -> int:
        return int(at(text).timestamp() * 1e6)
    calls = [(usec("2026-03-10T22:59:59+00:00"), 5, ("acme",)),  # 23:59:59 in Berlin
             (usec("2026-03-10T23:00:00+00:00"), 7, ("acme",)),  # midnight: the next day
             (usec("2026-03-10T23:00:30+00:00"), 0, ("acme",)),  # free calls add nothing
             (usec("2026-03-10T23:00:30+00:00"), 11, ("globex",))]
    assert book.increments(["customer"], calls) == {
        ("d", at("2026-03-09T23:00:00+00:00")): 5, ("d", at("2026-03-10T23:00:00+00:00")): 7,
        ("r", at("2026-03-10T22:59:00+00:00")): 5, ("r", at("2026-03-10T23:00:00+00:00")): 18}
    assert book.window(daily, book.clock()) == Window("d", at("2026-03-09T23:00:00+00:00"),
                                                      at("2026-03-10T23:00:00+00:00"))
    assert book.window(rolling, at("2026-03-10T22:30:40+00:00")) == Window("r", at("2026-03-10T21:30:00+00:00"), None)


def test_a_threshold_is_crossed_by_the_change_that_reaches_it():
    book = BudgetBook(UTC)
    budget = parse_budget({"id": "b", "limit": 1, "thresholds": [0.5, 0.8, 1.0]}, [])
    dollar = to_pico(1)
    assert [a.threshold for a in book.crossed(budget, 0, dollar // 2, at("2026-03-01T00:00:00+00:00"))] == [0.5]
    assert [a.threshold for a in book.crossed(budget, dollar // 2, dollar, at("2026-03-01T00:00:00+00:00"))] \
        == [0.8, 1.0]
    assert book.crossed(budget, dollar, 2 * dollar, at("2026-03-01T00:00:00+00:00")) == []


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


NOW = dt.datetime(2026, 1, 1, 12, tzinfo=dt.UTC)  # the test batches' spans start on 2026-01-01
CALL = {"gen_ai.provider.name": "openai", "gen_ai.request.model": "gpt-4o-mini", "customer.id": "acme",
        "gen_ai.usage.input_tokens": 1200, "gen_ai.usage.output_tokens": 300}  # 0.00018 + 0.00018


def replica(ledger_backend, *budgets):
    """A genai_budget processor on a ledger exporter of its own over the test's ledger: on PostgreSQL, what
    one collector replica has."""
    from collector.storage.schema import STANDARD_DIMENSIONS
    from processors.budgets import MATCH_KEYS_FIXED
    from processors.genai_budget import BudgetConfig, GenAIBudget
    from tests.genai_helpers import context
    processor = GenAIBudget(BudgetConfig(budgets=budgets), context("genai_budget"), clock=lambda: NOW)
    processor.listen_to(ledger_backend.exporter())
    processor.match_keys = (*MATCH_KEYS_FIXED, *STANDARD_DIMENSIONS)  # what bind_service finds in a service
    processor._sync_config()
    return processor


def priced(*calls: dict, budget=None) -> TelemetryBatch:
    """The calls through normalize, cost, attribution and, given one, a genai_budget processor."""
    from processors.genai_attribution import AttributionConfig, GenAIAttribution
    from tests.genai_helpers import run
    from tests.test_genai_processors import batch_of
    attribution = GenAIAttribution(AttributionConfig(customer=("span.customer.id",)))
    return run(batch_of(*calls), also=[attribution, *([budget] if budget else [])])


ACME_DAILY = parse_budget({"id": "acme-daily", "match": {"customer": "acme"}, "limit": "0.0009", "period": "daily"},
                          None)


def test_each_span_carries_the_running_total_of_its_budget(ledger_backend):
    """Issue 16's regression: three gpt-4o-mini calls of 0.00036 in one batch against a daily budget of 0.0009
    for the customer. Each span's spend is the running total (committed calls plus the earlier calls of the
    batch), so the call that crosses the limit says exceeded."""
    from tests.genai_helpers import span_attributes
    budget = replica(ledger_backend, ACME_DAILY)
    spans = span_attributes(priced(CALL, CALL, CALL, budget=budget))
    assert [spans[f"span{i}"]["gen_ai.usage.cost.amount"] for i in range(3)] == [0.00036] * 3
    assert [spans[f"span{i}"]["gen_ai.budget.spent"] for i in range(3)] == pytest.approx([0.00036, 0.00072, 0.00108])
    assert [spans[f"span{i}"]["gen_ai.budget.remaining"] for i in range(3)] == pytest.approx(
        [0.00054, 0.00018, -0.00018])
    assert [spans[f"span{i}"]["gen_ai.budget.status"] for i in range(3)] == ["ok", "warning", "exceeded"]
    assert budget.status("acme-daily").spent_pico == 0  # only the ledger's commits move the budget


@pytest.mark.parametrize("ledger_backend", ["duckdb"], indirect=True)
def test_a_file_ledger_is_not_read_back_after_each_write_the_processor_counted(ledger_backend):
    """One DuckDB file, one writing process: the statuses move on by what each write counted (the event loop
    does not query the ledger per batch); a write the processor did not count (another store on the file)
    has them read again."""
    budget = replica(ledger_backend, ACME_DAILY)
    reads = []
    tables = budget.store.budget_tables
    budget.store.budget_tables = lambda: reads.append(1) or tables()
    budget.exporter._write([(priced(CALL, budget=budget), None, None)])
    budget.exporter._write([(priced({**CALL, "_id": b"second!!"}, budget=budget), None, None)])
    assert budget.status("acme-daily").spent_pico == to_pico(Decimal("0.00072"))
    assert len(reads) == 1  # the first batch's
    other = replica(ledger_backend, ACME_DAILY)
    other.exporter._write([(priced({**CALL, "_id": b"third!!!"}), None, None)])
    assert budget.status("acme-daily").spent_pico == to_pico(Decimal("0.00108")) and len(reads) == 2


def test_spend_and_alerts_come_from_the_shared_ledger(ledger_backend):
    """Two processors over one ledger (two replicas on PostgreSQL): what one commits, the other's spans and
    statuses show; a replay of the same calls through the other counts nothing and alerts nothing."""
    first, second = replica(ledger_backend, ACME_DAILY), replica(ledger_backend, ACME_DAILY)
    from tests.genai_helpers import span_attributes
    first.exporter._write([(priced(CALL, {**CALL, "_id": b"second!!"}, budget=first), None, None)])
    assert second.status("acme-daily").spent_pico == to_pico(Decimal("0.00072"))
    replayed = priced(CALL, {**CALL, "_id": b"second!!"}, budget=second)
    second.exporter._write([(replayed, None, None)])
    third = priced({**CALL, "_id": b"third!!!"}, budget=second)
    assert span_attributes(third)["span0"]["gen_ai.budget.spent"] == pytest.approx(0.00108)
    second.exporter._write([(third, None, None)])
    assert first.status("acme-daily").spent_pico == second.status("acme-daily").spent_pico \
        == to_pico(Decimal("0.00108"))
    with first.store.reading() as con:
        fired = sorted(t for (t,) in con.execute("SELECT threshold FROM budget_alerts").fetchall())
    assert fired == [0.5, 0.8, 1.0]  # 0.5 and 0.8 by the first write, 1.0 by the third call's: each once


@pytest.mark.parametrize("ledger_backend", ["postgresql"], indirect=True)  # a DuckDB file has one writer
def test_budgets_made_through_one_replica_count_on_every_replica(ledger_backend):
    first, second = replica(ledger_backend), replica(ledger_backend)
    first.exporter._write([(priced(CALL), None, None)])  # before the budget exists
    first.save({"id": "acme", "match": {"customer": "acme"}, "limit": 1, "period": "daily"})
    assert [s.budget.id for s in second.statuses()] == ["acme"]
    assert second.status("acme").spent_pico == to_pico(Decimal("0.00036"))  # counted from the ledger
    second.exporter._write([(priced({**CALL, "_id": b"another!"}), None, None)])
    assert first.status("acme").spent_pico == to_pico(Decimal("0.00072"))
    second.delete("acme")
    assert first.statuses() == []
