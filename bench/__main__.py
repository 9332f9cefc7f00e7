"""``python -m bench [scenario ...] [--seconds S] [--ledger-calls N] [--json FILE]``: throughput and CPU per span.

Scenarios: ``floor`` and ``floor-native`` (in-process, no server: the upb round trip the Python path
makes of every request, and the native core's check and count) and collector
scenarios driven over loopback by ``bench.loadgen`` in its own process, with
``bench.sink`` as the downstream backend. Collector CPU time is read from the
collector's processes only (user + system; with workers, the supervisor and every worker) over the
timed window; the PostgreSQL server's is reported apart. ``--ledger-calls`` starts the
scenarios that write the ledger on a file already holding that many calls (the last 90 days).
The ``postgresql`` scenarios use ``--postgresql DSN``, or a server of their own (tests/postgres_server.py).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

from bench.ledger import SYNTHETIC_SPAN_DAYS, load_synthetic_calls
from bench.workload import build_requests, variant_price_file
from collector import native
from collector.config_builder import ConfigBuilder
from collector.process import free_port, wait_healthy
from collector.signals import Signal
from collector.storage.ledger import Ledger

GENAI = ["genai_normalize", "genai_cost"]
FULL = [*GENAI, "genai_attribution", "genai_budget", "batch"]
FULL_NO_LEDGER = [*GENAI, "genai_attribution", "batch"]  # genai_budget counts ledger commits: it needs duckdb


def _scenario(transport: str, processors: list[str], exporters: list[str], workers: int = 1) -> dict:
    return {"transport": transport, "pipeline": {"processors": processors, "exporters": exporters},
            "workers": workers}


SCENARIOS: dict[str, dict] = {
    "passthrough": _scenario("grpc", [], ["otlp/sink"]),
    "genai": _scenario("grpc", GENAI, ["otlp/sink"]),
    "genai-2w": _scenario("grpc", GENAI, ["otlp/sink"], workers=2),
    "full": _scenario("grpc", FULL, ["duckdb", "otlp/sink"]),
    "full-no-ledger": _scenario("grpc", FULL_NO_LEDGER, ["otlp/sink"]),
    "full-http": _scenario("http", FULL, ["duckdb", "otlp/sink"]),
    "full-json": _scenario("json", FULL, ["duckdb", "otlp/sink"]),
    "full-postgresql": _scenario("grpc", FULL, ["postgresql", "otlp/sink"]),
    "full-postgresql-2w": _scenario("grpc", FULL, ["postgresql", "otlp/sink"], workers=2),
}


def _upb_round_trip(body: bytes) -> None:
    Signal.TRACES.spec.request_type.FromString(body).SerializeToString()


def _native_scan(body: bytes) -> None:
    if native.TRACE_WIRE is None:
        raise SystemExit(f"floor-native needs the native core: {native.WHY_PYTHON}")
    native.TRACE_WIRE.scan(body)


# in-process floors: what every request costs before any processor runs
FLOORS = {"floor": _upb_round_trip,  # the Python path: parse and re-serialise
          "floor-native": _native_scan}  # the native path: check and count, the bytes forwarded as they are


def floor(name: str, seconds: float) -> dict:
    """Run a floor over pre-built requests in this process."""
    work = FLOORS[name]
    bodies = build_requests(32)
    spans = 0
    cpu_start, started = time.process_time(), time.monotonic()
    while time.monotonic() - started < seconds:
        for body in bodies:
            work(body)
            spans += 512
    cpu = time.process_time() - cpu_start
    return {"spans_per_s": spans / (time.monotonic() - started), "cpu_us_per_span": 1e6 * cpu / spans}


def collector_config(scenario: dict, grpc_port: int, http_port: int, sink_port: int, health_port: int,
                     workdir: Path, price_file: Path | None = None, dsn: str | None = None) -> str:
    budgets = [{"id": "customer-0-monthly", "match": {"customer": "customer-0"}, "limit": 1000000, "period": "monthly"},
               {"id": "all-daily", "limit": 1000000, "period": "daily", "thresholds": [0.5, 0.8, 1.0]}]
    config = ConfigBuilder()
    if dsn is not None:
        config.exporter("postgresql", dsn=dsn)
    return (config
            .otlp(grpc=grpc_port, http=http_port, grpc_settings={"max_recv_msg_size_mib": 64})
            .exporter("otlp/sink", endpoint=f"127.0.0.1:{sink_port}", tls={"insecure": True}, compression="none",
                      sending_queue={"queue_size": 64, "num_consumers": 4})
            .exporter("duckdb", path=str(workdir / "costs.duckdb"))
            .processor("genai_cost", **({"price_files": [str(price_file)]} if price_file else {}))
            .processor("genai_attribution", customer=["resource.tenant.id"])
            .processor("genai_budget", budgets=budgets)
            .processor("batch", send_batch_size=512, timeout="200ms")  # as the default config
            .health_check(health_port).log_level("warn")
            .pipeline("traces", processors=scenario["pipeline"]["processors"],
                      exporters=scenario["pipeline"]["exporters"])
            .yaml())


def preload_ledger(path: Path, calls: int) -> float:
    """Fill the ledger file the collector will open with ``calls`` calls of the last 90 days; seconds taken."""
    started = time.monotonic()
    ledger = Ledger.open(path)
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    load_synthetic_calls(ledger, calls, now - dt.timedelta(days=SYNTHETIC_SPAN_DAYS))
    ledger.close()
    return time.monotonic() - started


def collector_cpu(collector: psutil.Process) -> float:
    """CPU seconds (user + system) of the collector and its workers."""
    return sum(sum(p.cpu_times()[:2]) for p in [collector, *collector.children(recursive=True)])


def collector_rss(collector: psutil.Process) -> int:
    return sum(p.memory_info().rss for p in [collector, *collector.children(recursive=True)])


class PostgresForBench:
    """The database of the postgresql scenarios: ``--postgresql``'s, or a throwaway server started once."""

    def __init__(self, dsn: str | None):
        self.dsn = dsn
        self.server = None

    def new_database(self) -> str:
        if self.dsn is not None:
            return self.dsn
        if self.server is None:
            from tests.postgres_server import PostgresServer, binaries
            bin_dir = binaries()
            if bin_dir is None:
                raise SystemExit("the postgresql scenarios need PostgreSQL: install it, or pass --postgresql DSN")
            self.server = PostgresServer(bin_dir).start()
        return self.server.new_database()

    def cpu(self) -> float:
        """CPU seconds of the throwaway server's processes (0 for an outside server)."""
        if self.server is None:
            return 0.0
        postmaster = psutil.Process(int((self.server.data / "postmaster.pid").read_text().split()[0]))
        return sum(sum(p.cpu_times()[:2]) for p in [postmaster, *postmaster.children()])

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()


def run_collector_scenario(name: str, args: argparse.Namespace, postgres: PostgresForBench) -> dict:
    scenario = SCENARIOS[name]
    dsn = postgres.new_database() if "postgresql" in scenario["pipeline"]["exporters"] else None
    ports = {k: free_port() for k in ("grpc", "http", "sink", "health")}
    with tempfile.TemporaryDirectory(prefix=f"bench-{name}-") as tmp:
        workdir = Path(tmp)
        config = workdir / "collector.yaml"
        price_file = workdir / "variants.yaml" if args.models > 1 else None
        if price_file:
            price_file.write_text(variant_price_file(args.models))
        config.write_text(collector_config(scenario, ports["grpc"], ports["http"], ports["sink"], ports["health"],
                                           workdir, price_file, dsn))
        preloaded = args.ledger_calls if "duckdb" in scenario["pipeline"]["exporters"] else 0
        if preloaded:
            print(f"{name}: loading {preloaded:,} calls into the ledger "
                  f"({preload_ledger(workdir / 'costs.duckdb', preloaded):.0f} s)", flush=True)
        sink = subprocess.Popen([sys.executable, "-m", "bench.sink", str(ports["sink"])], stdout=subprocess.PIPE,
                                text=True)
        sink.stdout.readline()
        collector = subprocess.Popen([sys.executable, "-m", "collector", "run", "--config", str(config),
                                      "--workers", str(scenario["workers"])])
        try:
            if not wait_healthy(ports["health"], collector):
                raise SystemExit(f"the collector did not start (exit code {collector.poll()})")
            proc = psutil.Process(collector.pid)
            peak_rss = [0]
            sampling = threading.Event()

            def sample_rss() -> None:
                while not sampling.is_set():
                    peak_rss[0] = max(peak_rss[0], collector_rss(proc))
                    time.sleep(0.1)

            threading.Thread(target=sample_rss, daemon=True).start()
            port = ports["grpc"] if scenario["transport"] == "grpc" else ports["http"]
            loadgen = subprocess.Popen(
                [sys.executable, "-m", "bench.loadgen", "--transport", scenario["transport"], "--port", str(port),
                 "--seconds", str(args.seconds), "--concurrency", str(args.concurrency),
                 "--connections", str(args.concurrency),
                 "--models", str(args.models)], stdout=subprocess.PIPE, text=True)
            assert loadgen.stdout.readline().strip() == "measuring"
            cpu_start, database_start = collector_cpu(proc), postgres.cpu()
            summary = json.loads(loadgen.stdout.readline())
            cpu, database_cpu = collector_cpu(proc) - cpu_start, postgres.cpu() - database_start
            sampling.set()
            loadgen.wait()
        finally:
            collector.terminate()
            collector.wait(60)
            sink.terminate()
            received = json.loads(sink.stdout.readline() or "{}")
    spans = summary["spans"]
    return {
        "spans_per_s": spans / summary["elapsed_s"],
        "cpu_us_per_span": 1e6 * cpu / spans if spans else None,
        "database_cpu_us_per_span": 1e6 * database_cpu / spans if spans and dsn else None,
        "workers": scenario["workers"],
        "p50_ms": summary["p50_ms"], "p99_ms": summary["p99_ms"], "errors": summary["errors"],
        "peak_rss_mb": peak_rss[0] / 2**20, "sink_requests": received.get("requests"), "ledger_calls": preloaded,
        "collector_exit": collector.returncode,
    }


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("scenarios", nargs="*", default=[*FLOORS, *SCENARIOS],
                        help=f"{', '.join(FLOORS)}, {', '.join(SCENARIOS)} (default: all)")
    parser.add_argument("--seconds", type=float, default=10.0, help="timed window per scenario")
    parser.add_argument("--concurrency", type=int, default=8, help="requests in flight")
    parser.add_argument("--models", type=int, default=1,
                        help="distinct model names and customers, e.g. 1, 4, 16 (cache and rollup pressure)")
    parser.add_argument("--ledger-calls", type=int, default=0,
                        help="calls already in the ledger when a scenario with the duckdb exporter starts")
    parser.add_argument("--postgresql", metavar="DSN",
                        help="the database of the postgresql scenarios (default: a throwaway local server)")
    parser.add_argument("--json", type=Path, help="also write results to this file")
    args = parser.parse_args()
    results = {}
    postgres = PostgresForBench(args.postgresql)
    try:
        for name in args.scenarios:
            results[name] = floor(name, args.seconds) if name in FLOORS else \
                run_collector_scenario(name, args, postgres)
            row = results[name]
            database = row.get("database_cpu_us_per_span")
            print(f"{name:<18} {row['spans_per_s']:>10,.0f} spans/s  {row['cpu_us_per_span']:6.2f} CPU µs/span"
                  + (f"  p50 {row['p50_ms']:.1f} ms  p99 {row['p99_ms']:.1f} ms  RSS {row['peak_rss_mb']:.0f} MB"
                     f"  errors {row['errors']}" if "p50_ms" in row else "")
                  + (f"  (+{database:.2f} µs/span in PostgreSQL)" if database is not None else ""), flush=True)
    finally:
        postgres.stop()
    ratios = {}
    if "full" in results and "passthrough" in results:
        ratios["full / passthrough"] = results["full"]["spans_per_s"] / results["passthrough"]["spans_per_s"]
    if "full" in results and "floor" in results:
        ratios["full / floor"] = results["full"]["spans_per_s"] / results["floor"]["spans_per_s"]
    if "full-postgresql" in results and "full" in results:
        ratios["full-postgresql / full"] = results["full-postgresql"]["spans_per_s"] / results["full"]["spans_per_s"]
    if "full-postgresql-2w" in results and "full-postgresql" in results:
        ratios["2 workers / 1 worker"] = (results["full-postgresql-2w"]["spans_per_s"]
                                          / results["full-postgresql"]["spans_per_s"])
    if "full" in results and "full-no-ledger" in results:
        ratios["full / full-no-ledger"] = results["full"]["spans_per_s"] / results["full-no-ledger"]["spans_per_s"]
    for name, value in ratios.items():
        print(f"{name:<24} {value:.2f}")
    if args.json:
        args.json.write_text(json.dumps({"scenarios": results, "ratios": ratios,
                                         "models_and_customers": args.models, "ledger_calls": args.ledger_calls},
                                        indent=2))


if __name__ == "__main__":
    main()
