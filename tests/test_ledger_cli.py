"""report / rebuild-stats / prune / reprice / export on real ledger files (and a running collector)."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
from decimal import Decimal

import pyarrow.parquet as pq
import pytest

from bench.ledger import load_synthetic_calls
from collector.storage import schema
from collector.storage.ledger import Ledger
from collector.storage.queries import CostQuery, LedgerQueries
from collector.storage.rows import CallColumns
from tests.conftest import run_cli, sample_batch
from tests.test_dialects import CASES
from tests.test_ledger import emit, ledger_config, tracer

cli = run_cli


def test_report_formats_parse(ledger_file):
    table = cli("report", "--db", str(ledger_file), "--from", "2026-01-01", "--to", "2026-01-02",
                "--group-by", "customer")
    assert table.returncode == 0, table.stderr
    assert "acme" in table.stdout and "globex" in table.stdout and "TOTAL" in table.stdout
    as_json = json.loads(cli("report", "--db", str(ledger_file), "--from", "2026-01-01", "--to", "2026-01-02",
                             "--group-by", "customer", "--format", "json").stdout)
    total = Decimal(as_json["totals"][0]["cost"])
    assert sum(Decimal(r["cost"]) for r in as_json["series"]) == total
    assert total == sum(case[9] for case in CASES)  # the twelve exact sample prices of tests/test_dialects.py
    rows = list(csv.DictReader(io.StringIO(cli("report", "--db", str(ledger_file), "--from", "2026-01-01", "--to",
                                               "2026-01-02", "--group-by", "model", "--granularity", "day",
                                               "--format", "csv").stdout)))
    assert {r["bucket"] for r in rows} == {"2026-01-01T00:00:00Z"}
    assert sum(int(r["calls"]) for r in rows) == 12


def test_report_errors_are_clear(ledger_file, tmp_path):
    bad = cli("report", "--db", str(ledger_file), "--group-by", "colour")
    assert bad.returncode == 2 and "group_by: unknown dimension 'colour'" in bad.stderr  # a bad argument
    missing = cli("report", "--db", str(tmp_path / "none.duckdb"))
    assert missing.returncode == 1 and "no such ledger file" in missing.stderr


def test_report_on_a_running_collector_goes_through_its_api(ports, collector, tmp_path):
    db = tmp_path / "live.duckdb"
    collector(ledger_config(ports, db), ports["health"])
    provider, _ = tracer(ports)
    emit(provider, 4)
    provider.shutdown()
    locked = cli("report", "--db", str(db))
    assert locked.returncode == 1 and "in use by a running collector" in locked.stderr and "--url" in locked.stderr
    live = cli("report", "--url", f"http://127.0.0.1:{ports['api']}", "--from", "1d", "--format", "json")
    assert json.loads(live.stdout)["totals"][0]["calls"] == 4


def test_rebuild_stats_restores_rollups(ledger_file):
    ledger = Ledger.open(ledger_file)
    ledger.con.execute("DELETE FROM cost_daily")
    assert not ledger.consistency()["consistent"]
    ledger.close()
    result = cli("rebuild-stats", "--db", str(ledger_file), "--progress")
    assert result.returncode == 0 and "consistent with the calls" in result.stdout
    assert "[" in result.stderr and "1/1" in result.stderr  # the progress bar


def test_reprice_dry_run_then_apply(ledger_file, tmp_path):
    prices = tmp_path / "discount.yaml"
    prices.write_text("adjustments: [{provider: anthropic, percent: -10}]\n")
    args = ["reprice", "--db", str(ledger_file), "--from", "2026-01-01", "--to", "2026-01-02",
            "--price-file", str(prices)]
    dry = cli(*args, "--dry-run")
    assert dry.returncode == 0 and "dry run: nothing changed" in dry.stdout
    assert "anthropic/claude-sonnet-4-5-20250929" in dry.stdout
    ledger = Ledger.open(ledger_file, read_only=True)
    before = ledger.consistency()["cost"]
    ledger.close()
    applied = cli(*args)
    assert applied.returncode == 0 and "12 call(s) repriced" in applied.stdout
    ledger = Ledger.open(ledger_file, read_only=True)
    state = ledger.consistency()
    anthropic = ledger.con.execute("SELECT sum(cost) FROM llm_calls WHERE provider = 'anthropic'").fetchone()[0]
    snapshots = {s for (s,) in ledger.con.execute("SELECT DISTINCT snapshot FROM llm_calls").fetchall()}
    ledger.close()
    assert state["consistent"] and state["cost"] < before
    assert anthropic == Decimal("0.0117") * 3 * Decimal("0.9")  # three Anthropic-API calls, 10% off
    assert len(snapshots) == 1 and snapshots.pop().startswith("genai-prices 0.2.3+overrides:")


def test_export_csv_and_parquet(ledger_file, tmp_path):
    for file_format in ("csv", "parquet"):
        out = tmp_path / f"calls.{file_format}"
        result = cli("export", "--db", str(ledger_file), "--from", "2025-12-01", "--format", file_format,
                     "--out", str(out))
        assert result.returncode == 0 and "12 call(s) written" in result.stdout
    assert len(list(csv.DictReader(out.with_suffix(".csv").open()))) == 12
    assert pq.read_table(out).num_rows == 12


def test_prune(ledger_file):
    result = cli("prune", "--db", str(ledger_file), "--older-than", "2026-01-02", "--rollups")
    assert result.returncode == 0 and "llm_calls: 12 row(s) deleted" in result.stdout


def test_retention_policy_prunes_old_calls_and_hourly_rollups(ledger_file):
    from collector.exporters.duckdb import DuckDBConfig, DuckDBExporter, RetentionConfig
    from tests.genai_helpers import context
    exporter = DuckDBExporter(DuckDBConfig(str(ledger_file), retention=RetentionConfig(86_400.0, 86_400.0, None)),
                              context("duckdb"))
    exporter.store = Ledger.open(ledger_file)  # the samples are from 2026-01-01: older than a day
    exporter._apply_retention()
    counts = [exporter.store.con.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
              for t in ("llm_calls", "cost_hourly", "cost_daily")]
    exporter.store.close()
    assert counts[0] == 0 and counts[1] == 0 and counts[2] > 0  # daily rollups are kept forever


def rollup_rows(ledger: Ledger, table: str = "cost_daily") -> int:
    return ledger.con.execute(f"SELECT count(*) FROM {table}").fetchone()[0]


def test_calls_past_the_watermark_count_until_a_roll_up_moves_them_into_the_rollups(ledger_file):
    ledger = Ledger.open(ledger_file)
    keys = rollup_rows(ledger)
    day = CostQuery(dt.datetime(2026, 1, 1), dt.datetime(2026, 1, 2), ["customer", "model"])
    for round_, customer in enumerate(("acme", "acme", "globex")):  # sample 01 again in new traces
        columns = CallColumns(ledger.dimensions)
        batch = sample_batch("01", customer)
        for call in batch.genai:
            call.span.trace_id = bytes([round_]) * 16
        columns.add(batch)
        assert len(ledger.append(columns.table())) == 1
    before = ledger.consistency()
    report = LedgerQueries(ledger.con, ledger.dimensions).costs(day)
    assert before["consistent"] and before["calls"] == 15 and rollup_rows(ledger) == keys  # not rolled up yet
    assert ledger.roll_up() == 3
    assert ledger.consistency() == before
    assert LedgerQueries(ledger.con, ledger.dimensions).costs(day) == report
    assert rollup_rows(ledger) == ledger.con.execute(  # one row per bucket and key
        "SELECT count(*) FROM (SELECT DISTINCT * EXCLUDE (calls, unpriced_calls, input_tokens, output_tokens, "
        "cache_read_tokens, cache_write_tokens, reasoning_tokens, cost) FROM cost_daily)").fetchone()[0]
    assert ledger.roll_up() == 0  # nothing written since
    ledger.close()


def test_the_benchmark_ledger_spreads_its_calls_over_90_days_and_rolls_them_up(tmp_path):
    ledger = Ledger.open(tmp_path / "synthetic.duckdb")
    load_synthetic_calls(ledger, 9000, dt.datetime(2026, 1, 1))
    assert ledger.con.execute("SELECT count(*), count(DISTINCT start_time::DATE), min(start_time), "
                              "max(start_time) < '2026-04-01' FROM llm_calls").fetchone() == \
        (9000, 90, dt.datetime(2026, 1, 1), True)
    state = ledger.consistency()
    assert state["consistent"] and state["rollup_calls"] == 9000 and ledger.roll_up() == 0  # all rolled up
    ledger.close()


def test_a_retried_call_is_not_added_twice_and_its_batch_keeps_the_new_ones(ledger_file):
    ledger = Ledger.open(ledger_file)
    columns = CallColumns(ledger.dimensions)
    columns.add(sample_batch("01", "acme"))  # already in the ledger
    fresh = sample_batch("02", "acme")
    for call in fresh.genai:
        call.span.trace_id = b"n" * 16
    columns.add(fresh)
    columns.add(fresh)  # twice in one write
    assert ledger.append(columns.table()) == [1]
    assert ledger.consistency()["calls"] == 13
    ledger.close()


@pytest.mark.parametrize("version", [1, 2, 3])
def test_an_older_ledger_is_migrated_and_keeps_its_rollups(ledger_file, version):
    ledger = Ledger.open(ledger_file)
    totals = ledger.consistency()
    keys = ", ".join(["bucket", *(f'"{k}"' for k in ledger.rollup_keys())])
    ledger.con.execute("DELETE FROM schema_version")
    ledger.con.execute("INSERT INTO schema_version VALUES (?, now())", [version])
    for table in ("budgets", "budget_registry", "budget_spend", "budget_holds"):  # before 4: budgets of the API only
        ledger.con.execute(f"DROP TABLE {table}")
    ledger.con.execute("CREATE TABLE budgets (id VARCHAR PRIMARY KEY, spec JSON NOT NULL, "
                       "updated_at TIMESTAMP NOT NULL)")
    ledger.con.execute("""INSERT INTO budgets VALUES ('old', '{"id": "old", "limit": "5"}', now())""")
    if version < 3:
        ledger.con.execute("DROP TABLE rollup_watermark")  # before 3, the rollups held every call
    for table in ("cost_hourly", "cost_daily") if version == 1 else ():  # one row per bucket and key, keyed
        ledger.con.execute(f"CREATE TABLE {table}_v1 AS SELECT * FROM {table}")
        ledger.con.execute(f"DROP TABLE {table}")
        ledger.con.execute(schema.rollup_ddl(table, ledger.dimensions)[:-1] + f", PRIMARY KEY ({keys}))")
        ledger.con.execute(f"INSERT INTO {table} SELECT * FROM {table}_v1")
        ledger.con.execute(f"DROP TABLE {table}_v1")
    ledger.close()
    old = Ledger.open(ledger_file, read_only=True)  # a reader does not migrate, and reads the old layout
    assert old.check_version() == version and old.consistency() == totals
    old.close()
    ledger = Ledger.open(ledger_file)
    assert ledger.check_version() == 4
    assert ledger.consistency() == totals
    with ledger.budget_tables() as tables:  # kept; its counters are computed when genai_budget starts
        assert {k: (v.source, v.counted) for k, v in tables.definitions().items()} == {"old": ("api", None)}
    columns = CallColumns(ledger.dimensions)
    batch = sample_batch("01", "acme")
    for call in batch.genai:
        call.span.trace_id = b"x" * 16
    columns.add(batch)
    assert len(ledger.append(columns.table())) == 1  # the same bucket and key again: no key conflict
    assert ledger.roll_up() == 1  # only the new call: the migrated ones were rolled up already
    assert ledger.consistency()["consistent"]
    ledger.close()


def test_a_day_series_over_a_range_read_from_hourly_rollups_has_one_row_per_day_and_group(ledger_file):
    ledger = Ledger.open(ledger_file)
    columns = CallColumns(ledger.dimensions)
    batch = sample_batch("01", "acme")
    for call in batch.genai:
        call.span.trace_id = b"h" * 16
        call.span.start_time_unix_nano += 3600 * 10**9  # the next hour of the same day
    columns.add(batch)
    ledger.append(columns.table())
    query = CostQuery(dt.datetime(2025, 12, 31, 12), dt.datetime(2026, 1, 2, 12), ["customer"], "day")
    report = LedgerQueries(ledger.con, ledger.dimensions).costs(query)
    assert report["source"] == "cost_hourly"  # the range does not start on a day
    assert sorted(row["customer"] for row in report["series"]) == ["acme", "globex"]
    assert sum(row["calls"] for row in report["series"]) == 13
    ledger.close()
