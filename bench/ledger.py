"""``python -m bench.ledger``: ledger append throughput and report latency over a large ledger.

1. append: GenAI calls from the dialect samples, through normalize → cost → attribution, written in
   transactions of ``--rows`` calls (Arrow table, dedupe, rollups): calls/s and µs per call for
   building the rows and for the DuckDB transaction.
2. report: ``--calls`` synthetic calls generated inside DuckDB over 90 days, rollups built, then a
   30-day day-granularity report grouped by model and by customer, timed.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import tempfile
import time
from pathlib import Path

from bench.workload import build_requests
from collector.batch import TelemetryBatch
from collector.component import BuildContext
from collector.pipeline import Fanout, ProcessorRun
from collector.signals import Signal
from collector.storage.ledger import Ledger
from collector.storage.queries import CostQuery, LedgerQueries
from collector.storage.rows import CallColumns
from collector.telemetry import SelfTelemetry
from pricing_catalog.catalog import PriceCatalog
from processors.genai_attribution import AttributionConfig, GenAIAttribution
from processors.genai_cost import CostConfig, GenAICost
from processors.genai_index import indexer_for
from processors.genai_normalize import GenAINormalize


def processed_batches(requests: int) -> list[TelemetryBatch]:
    normalize = GenAINormalize()
    cost = GenAICost(CostConfig(), BuildContext("genai_cost", SelfTelemetry(), Path(".")), PriceCatalog())
    attribution = GenAIAttribution(AttributionConfig(customer=("resource.service.name",)))
    run = ProcessorRun([normalize, cost, attribution], Fanout([]), indexer_for([normalize, cost, attribution]))
    batches = []
    for wire in build_requests(requests):
        batch = TelemetryBatch.from_wire(Signal.TRACES, wire)
        run.run(batch)
        batches.append(batch)
    return batches


def bench_append(directory: Path, rows_per_transaction: int, rounds: int) -> dict:
    ledger = Ledger.open(directory / "append.duckdb")
    batches = processed_batches(max(1, rows_per_transaction // 358))  # ~358 billable calls per 512 spans
    build = write = 0.0
    written = 0
    for round_ in range(rounds):
        for batch in batches:  # a new trace id per round: new calls, not duplicates
            for call in batch.genai:
                call.span.trace_id = round_.to_bytes(2, "big") + call.span.trace_id[2:]
        started = time.perf_counter()
        columns = CallColumns(ledger.dimensions)
        for batch in batches:
            columns.add(batch)
        table = columns.table()
        built = time.perf_counter()
        written += len(ledger.append(table))
        build += built - started
        write += time.perf_counter() - built
    ledger.close()
    return {"calls": written, "calls_per_s": written / (build + write), "rows_us_per_call": 1e6 * build / written,
            "transaction_us_per_call": 1e6 * write / written}


SYNTHETIC_SPAN_DAYS = 90


def load_synthetic_calls(ledger: Ledger, calls: int, start: dt.datetime) -> None:
    """``calls`` synthetic calls spread evenly over the 90 days from ``start`` (20 models, 200 customers,
    10 services), generated inside DuckDB and rolled up."""
    span_us = SYNTHETIC_SPAN_DAYS * 86_400_000_000
    ledger.con.execute(f"""
        INSERT INTO llm_calls (start_time, trace_id, span_id, service, provider, model, operation, tier, currency,
                               status, input_tokens, output_tokens, cost, customer, "user", feature, team)
        SELECT $1::TIMESTAMP + to_microseconds((i::HUGEINT * {span_us} // {calls})::BIGINT),
               md5(i::VARCHAR), lpad(i::VARCHAR, 16, '0'), 'svc-' || (i % 10), 'openai', 'model-' || (i % 20),
               'chat', 'standard', 'USD', 'priced', 1000, 100, 0.0035, 'customer-' || (i % 200),
               'user-' || (i % 1000), 'feature-' || (i % 15), 'team-' || (i % 5)
        FROM range({calls}) t(i)""", [start])
    ledger.roll_up()


def bench_report(directory: Path, calls: int) -> dict:
    ledger = Ledger.open(directory / "report.duckdb")
    started = time.perf_counter()
    load_synthetic_calls(ledger, calls, dt.datetime(2026, 1, 1))
    load = time.perf_counter() - started
    queries = LedgerQueries(ledger.con, ledger.dimensions)
    timings = {}
    for group in ("model", "customer"):
        query = CostQuery(dt.datetime(2026, 2, 1), dt.datetime(2026, 3, 3), [group], "day")
        queries.costs(query)  # warm
        started = time.perf_counter()
        report = queries.costs(query)
        timings[f"day_report_by_{group}_ms"] = 1000 * (time.perf_counter() - started)
        timings[f"rows_{group}"] = len(report["series"])
    ledger.close()
    return {"calls": calls, "load_s": load, **timings}


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.ledger", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=20_000, help="calls per append transaction")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--calls", type=int, default=10_000_000, help="ledger size for the report benchmark")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-ledger-") as tmp:
        results = {"append": bench_append(Path(tmp), args.rows, args.rounds),
                   "report": bench_report(Path(tmp), args.calls)}
    append, report = results["append"], results["report"]
    print(f"append   {append['calls_per_s']:>10,.0f} calls/s  rows {append['rows_us_per_call']:.1f} µs/call  "
          f"transaction {append['transaction_us_per_call']:.1f} µs/call  ({append['calls']:,} calls)")
    print(f"report   {report['calls']:,} calls: day report by model {report['day_report_by_model_ms']:.0f} ms, "
          f"by customer {report['day_report_by_customer_ms']:.0f} ms (load {report['load_s']:.0f} s)")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
