"""Day-2 regressions (issue 21): documented settings and commands on ledgers shaped like real ones."""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import hmac
import io
import json
import logging
import socket
import time
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pytest
import yaml
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue

from collector.batch import TelemetryBatch
from collector.component import Refused
from collector.config_builder import ConfigBuilder
from collector.exporters.debug import DebugConfig, DebugExporter
from collector.exporters.duckdb import DuckDBConfig, DuckDBExporter
from collector.signals import Signal
from collector.storage.ledger import Ledger
from collector.storage.rows import CallColumns
from pricing_catalog.catalog import PriceCatalog
from pricing_catalog.compiled import to_double
from processors.genai_redact import GenAIRedact, RedactConfig
from processors.memory_limiter import MemoryLimiter, MemoryLimiterConfig
from tests.conftest import on_ports, run_cli, sample_batch
from tests.genai_helpers import context, load_sample, run, span_attributes
from tests.test_genai_processors import OPENAI_CALL, batch_of


def test_debug_detailed_logs_every_span_with_its_attributes(caplog):
    exporter = DebugExporter(DebugConfig(verbosity="detailed"), context("debug"))
    batch = load_sample("01")
    with caplog.at_level(logging.INFO, logger="genai_collector.exporter.debug"):
        exporter.submit(batch)
    spans = [r for r in caplog.records if r.getMessage() == "span"]
    assert len(spans) == batch.item_count and spans[0].span_name and spans[0].attributes
    assert exporter.telemetry.snapshot()["debug"][Signal.TRACES.spec.name]["exported"] == batch.item_count


cli = run_cli


def test_rebuild_stats_takes_a_start_without_an_end(ledger_file):
    result = cli("rebuild-stats", "--db", str(ledger_file), "--from", "2026-01-01")
    assert result.returncode == 0, result.stderr
    assert "rebuilt rollups of 1 day(s)" in result.stdout and "consistent with the calls" in result.stdout


def test_a_bad_argument_is_one_line_and_exit_2(ledger_file):
    result = cli("prune", "--db", str(ledger_file), "--older-than", "bogus")
    assert result.returncode == 2
    assert result.stderr == "error: --older-than: 'bogus' is not a time (use 2026-01-31, 2026-01-31T12:00:00Z, " \
                            "now or 7d)\n"
    result = cli("report", "--db", str(ledger_file), "--filter", "customer")
    assert result.returncode == 2 and result.stderr.count("\n") == 1 and "use dimension=value" in result.stderr


def test_refusing_data_says_retry_later_once(ports, collector):
    limiter = MemoryLimiter(MemoryLimiterConfig(limit_mib=64, spike_limit_mib=0), context("memory_limiter"),
                            measure=lambda: 2**40)
    with pytest.raises(Refused) as refused:
        limiter.process(load_sample("01"))
    assert "retry later" not in str(refused.value)  # the receivers add it to what they answer


READ, ADMIN = "read-token-0123456789", "admin-token-0123456789"


def test_the_cli_sends_a_token_to_a_secured_api(ports, collector, tmp_path):
    config = (on_ports(ports).exporter("duckdb", path=str(tmp_path / "live.duckdb"))
              .processor("genai_budget", budgets=[{"id": "all", "limit": 10, "period": "daily"}])
              .cost_api(ports["api"], auth={"read_tokens": [READ], "admin_tokens": [ADMIN]})
              .pipeline("traces", processors=["genai_normalize", "genai_cost", "genai_budget"], exporters=["duckdb"]))
    collector(config, ports["health"])
    url = f"http://127.0.0.1:{ports['api']}"
    config_file = tmp_path / "config.yaml"
    config_file.write_text(config.yaml())

    denied = cli("report", "--url", url)
    assert denied.returncode == 1 and "--token or $GENAI_COLLECTOR_TOKEN" in denied.stderr
    assert cli("report", "--url", url, "--token", READ).returncode == 0
    assert cli("report", "--url", url, env={"GENAI_COLLECTOR_TOKEN": READ}).returncode == 0
    budgets = cli("budgets", "status", "--url", url, "--token", READ)
    assert budgets.returncode == 0 and budgets.stdout.startswith("all ")

    doctor = cli("doctor", "--config", str(config_file), cwd=tmp_path)
    assert "FAIL  collector running" in doctor.stdout and "give doctor a read token" in doctor.stdout
    assert "in use (by this collector)" in doctor.stdout and "ledger file" not in doctor.stdout
    doctor = cli("doctor", "--config", str(config_file), "--token", READ, cwd=tmp_path)
    assert doctor.returncode == 0, doctor.stdout
    assert "PASS  collector running" in doctor.stdout


def test_doctor_fails_a_port_another_process_holds(ports, tmp_path):
    config = tmp_path / "config.yaml"
    config.write_text(on_ports(ports).pipeline("traces", exporters=["debug"]).yaml())
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", ports["http"]))  # bound, not even listening: run would still fail
        doctor = cli("doctor", "--config", str(config), cwd=tmp_path)
    assert f"FAIL  port 127.0.0.1:{ports['http']} (receiver otlp (http)): in use by another process" in doctor.stdout
    assert f"PASS  port 127.0.0.1:{ports['grpc']} (receiver otlp (grpc)): free" in doctor.stdout


@pytest.fixture
def aged_ledger(tmp_path) -> Path:
    """A ledger of two calls, one 100 days old and one from now, rolled up, as a collector leaves it."""
    path = tmp_path / "aged.duckdb"
    now_ns = time.time_ns()
    columns = None
    with Ledger.open(path) as ledger:
        columns = CallColumns(ledger.dimensions)
        for name, age_days in (("01", 100), ("02", 0)):
            batch = sample_batch(name, "acme")
            for call in batch.genai:
                call.span.start_time_unix_nano = now_ns - age_days * 86_400 * 10**9
            columns.add(batch)
        ledger.append(columns.table())
        ledger.roll_up()
    return path


def apply_retention(path: Path) -> None:
    """What the running collector does every hour with the default retention (calls 90d, daily forever)."""
    exporter = DuckDBExporter(DuckDBConfig(str(path)), context("duckdb"))
    with Ledger.open(path) as exporter.store:
        exporter._apply_retention()


@pytest.mark.parametrize("prune", ["retention", "prune-command"])
def test_an_aged_ledger_stays_consistent_and_doctor_finds_nothing_to_fix(aged_ledger, tmp_path, prune):
    if prune == "retention":
        apply_retention(aged_ledger)
    else:
        assert cli("prune", "--db", str(aged_ledger), "--older-than", "90d").returncode == 0
    with Ledger.open(aged_ledger, read_only=True) as ledger:
        state = ledger.consistency()
        assert state["calls"] == 1 and state["consistent"], state
        daily_calls = ledger.con.execute("SELECT sum(calls) FROM cost_daily").fetchone()[0]
    assert daily_calls == 2  # the pruned call's day is still in the daily rollups
    doctor = cli("doctor", "--db", str(aged_ledger), cwd=tmp_path)
    assert "PASS  rollups consistent with the calls" in doctor.stdout, doctor.stdout
    rebuilt = cli("rebuild-stats", "--db", str(aged_ledger))
    assert rebuilt.returncode == 0 and "rollups consistent with the calls" in rebuilt.stdout
    with Ledger.open(aged_ledger, read_only=True) as ledger:
        assert ledger.con.execute("SELECT sum(calls) FROM cost_daily").fetchone()[0] == 2


@pytest.fixture
def two_currency_ledger(tmp_path) -> Path:
    """The twelve dialect samples (2026-01-01), acme's booked in USD and globex's in EUR."""
    path = tmp_path / "two.duckdb"
    with Ledger.open(path) as ledger:
        columns = CallColumns(ledger.dimensions)
        for index in range(1, 13):
            columns.add(sample_batch(f"{index:02d}", "acme" if index % 2 else "globex"))
        table = columns.table()
        currency = ["EUR" if customer == "globex" else "USD" for customer in table.column("customer").to_pylist()]
        table = table.set_column(table.schema.get_field_index("currency"), "currency", pa.array(currency))
        ledger.append(table)
        ledger.roll_up()
    return path


def test_money_of_two_currencies_is_never_summed(two_currency_ledger):
    days = ["--from", "2026-01-01", "--to", "2026-01-02"]
    report = json.loads(cli("report", "--db", str(two_currency_ledger), *days, "--group-by", "provider",
                            "--format", "json").stdout)
    totals = {t["currency"]: Decimal(t["cost"]) for t in report["totals"]}
    assert set(totals) == {"USD", "EUR"}
    for currency, total in totals.items():
        assert sum(Decimal(r["cost"]) for r in report["series"] if r["currency"] == currency) == total
    providers_in_both = {r["provider"] for r in report["series"] if r["currency"] == "USD"} & \
        {r["provider"] for r in report["series"] if r["currency"] == "EUR"}
    assert providers_in_both  # the same provider has a row per currency, not one row adding both
    rows = list(csv.DictReader(io.StringIO(cli("report", "--db", str(two_currency_ledger), *days, "--group-by",
                                               "provider", "--format", "csv").stdout)))
    assert all(row["currency"] in ("USD", "EUR") for row in rows) and len(rows) == len(report["series"])
    table = cli("report", "--db", str(two_currency_ledger), *days, "--group-by", "provider").stdout
    header, *lines = table.splitlines()
    assert header.split()[-1] == "currency"
    assert {line.split()[-1] for line in lines} == {"USD", "EUR"}
    assert sum(line.startswith("TOTAL") for line in lines) == 2


def test_reprice_uses_the_collectors_price_files_and_currency(tmp_path):
    book = tmp_path / "prices.yaml"
    book.write_text((Path(__file__).parent.parent / "config" / "examples" / "prices.yaml").read_text())
    catalog = PriceCatalog.from_files([book])
    assert catalog.currency == "EUR"
    ledger_path = tmp_path / "eur.duckdb"
    with Ledger.open(ledger_path) as ledger:
        columns = CallColumns(ledger.dimensions)
        for index in range(1, 13):
            columns.add(run(load_sample(f"{index:02d}"), catalog=catalog))
        ledger.append(columns.table())
        ledger.roll_up()
    days = ["--db", str(ledger_path), "--from", "2026-01-01", "--to", "2026-01-02", "--dry-run"]
    usd = cli("reprice", *days)
    assert usd.returncode == 1
    assert "calls in range are in EUR, the prices in USD: pass the collector's config (--config)" in usd.stderr
    config = tmp_path / "collector.yaml"
    config.write_text(ConfigBuilder().otlp(grpc=4317).processor("genai_cost", price_files=["prices.yaml"])
                      .pipeline("traces", processors=["genai_cost"], exporters=["debug"]).yaml())
    same = cli("reprice", *days, "--config", str(config))
    assert same.returncode == 0, same.stderr
    header, *_, total, dry = same.stdout.splitlines()
    assert "old (EUR)" in header and "new (EUR)" in header
    assert total.split()[3] == "+0.0000000000" and "12 calls from 2026-01-01T00:00:00Z" in total and "EUR" in total
    assert dry == "dry run: nothing changed"


def test_hash_mode_hashes_the_text_so_you_can_match_it_from_your_side():
    batch = batch_of({**OPENAI_CALL, "gen_ai.prompt.0.content": "hello"})
    GenAIRedact(RedactConfig(mode="hash")).process(batch)
    assert span_attributes(batch)["span0"]["gen_ai.prompt.0.content"] == \
        "sha256:" + hashlib.sha256(b"hello").hexdigest()  # 2cf24d…, as sha256sum prints it
    batch = batch_of({**OPENAI_CALL, "gen_ai.prompt.0.content": "hello"})
    GenAIRedact(RedactConfig(mode="hash", salt="pepper")).process(batch)
    assert span_attributes(batch)["span0"]["gen_ai.prompt.0.content"] == \
        "hmac-sha256:" + hmac.new(b"pepper", b"hello", hashlib.sha256).hexdigest()


def log_batch() -> TelemetryBatch:
    request = ExportLogsServiceRequest()
    records = request.resource_logs.add().scope_logs.add().log_records
    event = records.add(event_name="gen_ai.user.message")
    event.body.kvlist_value.values.add(key="content").value.string_value = "my card is 4111 1111 1111 1111"
    older = records.add()  # an SDK that names the event in an attribute
    older.attributes.add(key="event.name").value.string_value = "gen_ai.choice"
    older.body.string_value = "the answer"
    details = records.add(event_name="gen_ai.client.inference.operation.details")
    details.attributes.add(key="gen_ai.input.messages").value.string_value = '[{"role": "user"}]'
    details.attributes.add(key="gen_ai.request.model").value.string_value = "gpt-4o"
    plain = records.add(body=AnyValue(string_value="request served"))
    plain.attributes.add(key="http.route").value.string_value = "/chat"
    return TelemetryBatch(Signal.LOGS, request)


@pytest.mark.parametrize("mode", ["remove", "hash"])
def test_genai_events_sent_as_log_records_are_redacted(mode):
    batch = log_batch()
    GenAIRedact(RedactConfig(mode=mode)).process(batch)
    event, older, details, plain = batch.message.resource_logs[0].scope_logs[0].log_records
    if mode == "remove":
        assert not event.HasField("body") and not older.HasField("body")
        assert [kv.key for kv in details.attributes] == ["gen_ai.request.model"]
    else:
        assert event.body.string_value == "sha256:" + hashlib.sha256(
            b'{"content":"my card is 4111 1111 1111 1111"}').hexdigest()
        assert older.body.string_value == "sha256:" + hashlib.sha256(b"the answer").hexdigest()
        assert details.attributes[0].value.string_value.startswith("sha256:")
    assert plain.body.string_value == "request served" and plain.attributes[0].value.string_value == "/chat"


def test_production_example_redacts_logs_too():
    production = yaml.safe_load((Path(__file__).parent.parent / "config" / "examples" / "production.yaml").read_text())
    assert "genai_redact" in production["service"]["pipelines"]["logs"]["processors"]


@pytest.mark.parametrize(("day", "tier"), [("2026-10-11", "standard"), ("2026-10-12", "flex")])
def test_the_span_names_the_tier_whose_price_applied(day, tier):
    """genai-prices has flex prices for gpt-5 from 2026-10-12: a flex call before is charged the standard
    price, and its span says so instead of claiming flex."""
    start_ns = int(dt.datetime.fromisoformat(f"{day}T12:00:00+00:00").timestamp()) * 10**9
    batch = batch_of({"gen_ai.provider.name": "openai", "gen_ai.request.model": "gpt-5",
                      "openai.response.service_tier": "flex", "gen_ai.usage.input_tokens": 1_000_000,
                      "gen_ai.usage.output_tokens": 0})
    batch.message.resource_spans[0].scope_spans[0].spans[0].start_time_unix_nano = start_ns
    attrs = span_attributes(run(batch))["span0"]
    assert attrs["gen_ai.usage.cost.tier"] == tier
    standard = PriceCatalog().lookup("openai", "gpt-5", start_ns, "standard").price({"input_tokens": 1_000_000})
    assert (attrs["gen_ai.usage.cost.amount"] == to_double(standard.total)) == (tier == "standard")
