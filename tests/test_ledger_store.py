"""The ledger store interface, the same tests on both backends: an embedded DuckDB file and a real PostgreSQL
server (``ledger_backend``): idempotent writes, reports, budget counters, alerts raised once, holds."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from collector.errors import LedgerError
from collector.storage.budget_tables import Window
from collector.storage.queries import CostQuery
from collector.storage.rows import CallColumns
from tests.conftest import sample_batch

DAY = dt.datetime(2026, 1, 1)


def samples(store, count: int = 12) -> CallColumns:
    columns = CallColumns(store.dimensions)
    for index in range(1, count + 1):
        columns.add(sample_batch(f"{index:02d}", "acme" if index % 2 else "globex"))
    return columns


def test_a_call_is_stored_once_across_retries_and_within_a_write(ledger_backend):
    store = ledger_backend()
    columns = samples(store)
    assert store.append(columns.table()) == list(range(12))
    assert store.append(columns.table()) == []  # the retry of the whole request
    twice = samples(store, 2)
    twice.add(sample_batch("03", "acme"))
    twice.add(sample_batch("03", "acme"))
    assert store.append(twice.table()) == []  # a replay mixed with calls already stored
    with store.queries() as queries:
        page = queries.calls(DAY, DAY + dt.timedelta(days=1), {}, 100, None)
    assert len(page["calls"]) == 12


def test_reports_agree_with_the_calls_on_every_backend(ledger_backend):
    store = ledger_backend()
    columns = samples(store)
    store.append(columns.table())
    store.roll_up()
    expected = sum(Decimal(c or 0) for c in columns.columns["cost_pico"]) / Decimal(10**12)
    with store.queries() as queries:
        report = queries.costs(CostQuery(DAY, DAY + dt.timedelta(days=1), ["customer"]))
        daily = queries.costs(CostQuery(DAY, DAY + dt.timedelta(days=1), [], "hour"))
        unpriced = queries.unpriced()
        costliest = queries.calls(DAY, DAY + dt.timedelta(days=1), {"customer": "acme"}, 3, None, order="cost")
    assert sum(Decimal(t["cost"]) for t in report["totals"]) == expected
    assert {row["customer"] for row in report["series"]} == {"acme", "globex"}
    assert sum(row["calls"] for row in report["series"]) == 12
    assert sum(Decimal(row["cost"]) for row in daily["series"]) == expected
    assert unpriced == {"models": [], "incomplete": []}
    assert len(costliest["calls"]) == 3 and all(c["customer"] == "acme" for c in costliest["calls"])
    assert [c["cost"] for c in costliest["calls"]] == sorted((c["cost"] for c in costliest["calls"]),
                                                              key=Decimal, reverse=True)


def test_new_dimensions_become_columns_and_old_ones_stay(ledger_backend):
    store = ledger_backend(("region",))
    assert "region" in store.dimensions
    store.close()
    reopened = ledger_backend(("tenant",))
    assert {"region", "tenant", "customer"} <= set(reopened.dimensions)


def test_budget_counters_move_only_in_committed_writes(ledger_backend):
    store = ledger_backend()
    start = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    with store.write() as txn:
        txn.budgets.version(lock="update")
        txn.budgets.put("acme", {"id": "acme"}, "api", {"id": "acme"})
        txn.budgets.add({("acme", start): 5, ("acme", start + dt.timedelta(days=1)): 7})
    with pytest.raises(LedgerError), store.write() as txn:
        txn.budgets.add({("acme", start): 1000})
        txn.budgets.con.execute("SELECT * FROM no_such_table")  # the write fails: nothing of it counts
    with store.budget_tables() as tables:
        assert tables.version() == 1
        assert tables.spend([Window("acme", start, start + dt.timedelta(days=1)), Window("other", start, None)]) \
            == {"acme": 5, "other": 0}
        assert tables.spend([Window("acme", start, None)]) == {"acme": 12}
        assert tables.definitions()["acme"].counted == {"id": "acme"}


def test_an_upsert_answers_the_counters_it_moved_and_the_spend_read_uses_them(ledger_backend):
    """The counters' new values come back from the upsert; a calendar window whose one counter moved is
    not read again, an open window (rolling, total) always is."""
    store = ledger_backend()
    day = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    with store.write() as txn:
        txn.budgets.add({("daily", day): 5, ("open", day): 5})
    with store.write() as txn:
        moved = txn.budgets.add({("daily", day): 7, ("open", day + dt.timedelta(minutes=1)): 7})
        assert moved == {("daily", day.replace(tzinfo=None)): 12,
                         ("open", (day + dt.timedelta(minutes=1)).replace(tzinfo=None)): 7}
        txn.budgets.con.execute("UPDATE budget_spend SET spent_pico = 1000 WHERE budget_id = 'daily'")
        windows = [Window("daily", day, day + dt.timedelta(days=1)), Window("open", day, None)]
        assert txn.budgets.spend(windows, moved) == {"daily": 12, "open": 12}  # daily's not read again
        assert txn.budgets.spend(windows) == {"daily": 1000, "open": 12}


def test_a_threshold_is_claimed_once(ledger_backend):
    store = ledger_backend()
    period = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    claims = []
    for _ in range(3):
        with store.write() as txn:
            claims.append(txn.budgets.claim_alert("acme", period, 0.5, dt.datetime.now(dt.UTC)))
    assert claims == [True, False, False]


def test_spend_of_calls_matches_globs_on_both_engines(ledger_backend):
    store = ledger_backend()
    columns = samples(store)
    store.append(columns.table())
    data = columns.columns
    whole = Window("w", dt.datetime(2025, 12, 31), dt.datetime(2026, 1, 2))
    expected = sum(cost or 0 for cost, customer in zip(data["cost_pico"], data["customer"], strict=True)
                   if customer == "acme")
    gpt = sum(cost or 0 for cost, model in zip(data["cost_pico"], data["model"], strict=True)
              if model and model.startswith("gpt-4o"))
    with store.budget_tables() as tables:
        assert sum(a for _, a in tables.spend_of_calls([("customer", "ac[m]e")], whole, False)) == expected
        assert sum(a for _, a in tables.spend_of_calls([("model", "gpt-4o*")], whole, True)) == gpt
        assert tables.spend_of_calls([("customer", "nobody?")], whole, False) == []


def test_holds_count_until_released_or_expired(ledger_backend):
    store = ledger_backend()
    now = dt.datetime(2026, 1, 1, 12, tzinfo=dt.UTC)
    with store.write() as txn:
        txn.budgets.hold("r1", {"acme": 10, "all": 10}, now + dt.timedelta(minutes=5))
        txn.budgets.hold("r2", {"acme": 3}, now + dt.timedelta(minutes=1))
    with store.budget_tables() as tables:
        assert tables.held(now) == {"acme": 13, "all": 10}
        assert tables.held(now + dt.timedelta(minutes=2)) == {"acme": 10, "all": 10}
    with store.write() as txn:
        assert txn.budgets.release(["r1", "unknown"], now + dt.timedelta(minutes=2)) == 2
    with store.budget_tables() as tables:
        assert tables.held(now) == {}


@pytest.mark.parametrize("customer", ['a,"b"\nc', "", "—ü\\N", "NULL"])
def test_text_comes_back_as_it_was_written(ledger_backend, customer):
    store = ledger_backend()
    columns = CallColumns(store.dimensions)
    columns.add(sample_batch("01", customer))
    store.append(columns.table())
    with store.queries() as queries:
        (call,) = queries.calls(DAY, DAY + dt.timedelta(days=1), {}, 10, None)["calls"]
    assert call["customer"] == customer and call["user"] is None


def test_a_failing_write_is_rolled_back_and_the_writer_carries_on(ledger_backend):
    """A listener that fails inside the write's transaction (a bug in a processor, say) rolls the write back:
    its requests are refused and retried, nothing of it is stored, and the next write goes through."""
    exporter = ledger_backend.exporter()
    store = exporter.store

    def failing(txn, columns, added):
        raise RuntimeError("a bug")

    exporter.in_transaction.append(failing)
    exporter._write([(sample_batch("01", "acme"), None, None)])
    assert exporter.last_error == "ledger write failed: a bug" and exporter.last_write is None
    exporter.in_transaction.remove(failing)
    exporter._write([(sample_batch("01", "acme"), None, None)])
    assert exporter.last_write is not None
    with store.queries() as queries:
        assert len(queries.calls(DAY, DAY + dt.timedelta(days=1), {}, 10, None)["calls"]) == 1
