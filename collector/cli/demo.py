"""``genai-collector demo``: see it work in a minute, with no internet and no API keys.

Starts a collector on free ports with a throwaway ledger, a local fake LLM provider, and two real
instrumented apps (the official OpenTelemetry openai-v2 instrumentation, and OpenLLMetry's for
Anthropic) driving the real provider SDKs against it; then prints what the calls cost, the dashboard
address and how to point your own app at the collector. Ctrl-C stops and removes everything.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from collector.cli.api_client import ApiClient
from collector.cli.report import render
from collector.config_builder import ConfigBuilder
from collector.errors import CommandError
from collector.process import free_port, wait_healthy

_DEMO_MODULES = ("openai", "anthropic", "opentelemetry.instrumentation.openai_v2",
                 "opentelemetry.instrumentation.anthropic", "opentelemetry.exporter.otlp.proto.http")


def _config(ports: dict[str, int], db: Path) -> str:
    processors = ["genai_normalize", "genai_cost", "genai_attribution", "genai_budget", "batch"]
    return (ConfigBuilder().otlp(grpc=ports["grpc"], http=ports["http"])
            .processor("genai_attribution", customer=["resource.tenant.id"], feature=["resource.service.name"])
            .processor("genai_budget", budgets=[{"id": "demo-daily", "match": {}, "limit": 0.05, "period": "daily",
                                                 "hard": True}])
            .processor("batch", timeout="100ms")
            .exporter("duckdb", path=str(db), flush_interval="50ms")
            .health_check(ports["health"]).cost_api(ports["api"]).log_level("warn")
            .pipeline("traces", processors=processors, exporters=["duckdb"]).yaml())


def cmd_demo(args: argparse.Namespace) -> int:
    missing = []
    for module in _DEMO_MODULES:
        try:
            __import__(module)
        except ImportError:
            missing.append(module)
    if missing:
        raise CommandError(f"the demo drives real SDKs; install them: pip install 'genai-cost-collector[demo]' "
                           f"(missing: {', '.join(missing)})")
    from collector.demo.fake_provider import FakeProvider

    ports = {name: free_port() for name in ("grpc", "http", "health", "api")}
    with tempfile.TemporaryDirectory(prefix="genai-collector-demo-") as tmp:
        workdir = Path(tmp)
        config, log = workdir / "collector.yaml", workdir / "collector.log"
        config.write_text(_config(ports, workdir / "costs.duckdb"))
        provider = FakeProvider()
        with log.open("wb") as log_file:
            collector = subprocess.Popen([sys.executable, "-m", "collector", "run", "--config", str(config)],
                                         stdout=log_file, stderr=log_file)
        try:
            if not wait_healthy(ports["health"], collector):
                raise CommandError(f"the collector did not start:\n{log.read_text()[-2000:]}")
            print(f"collector running: OTLP 127.0.0.1:{ports['grpc']} (gRPC), 127.0.0.1:{ports['http']} (HTTP)")
            print(f"fake LLM provider: {provider.url} (OpenAI and Anthropic APIs)\n")
            for library, tenant, extra in (("openai", "acme", ["--everything"]), ("anthropic", "globex", [])):
                env = {**os.environ, "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{ports['http']}",
                       "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf", "OTEL_SERVICE_NAME": f"demo-{library}",
                       "OTEL_RESOURCE_ATTRIBUTES": f"tenant.id={tenant}"}
                print(f"running an app instrumented for {library} ({args.calls} calls)…")
                result = subprocess.run([sys.executable, "-m", "collector.demo.app", library, provider.url,
                                         str(args.calls), *extra], env=env, capture_output=True, text=True,
                                        timeout=120)
                if result.returncode != 0:
                    raise CommandError(f"the {library} app failed:\n{result.stderr[-2000:]}")
            api = ApiClient(f"http://127.0.0.1:{ports['api']}", timeout=5)
            report, seen, stable_since = {}, -1, time.monotonic()
            while time.monotonic() - stable_since < 1.0:  # until the ledger stops growing for a second
                report = api.get("/api/v1/costs", {"from": "1h", "group_by": "customer,model"})
                calls = sum(row["calls"] for row in report["series"])
                if calls != seen:
                    seen, stable_since = calls, time.monotonic()
                time.sleep(0.1)
            print(f"\nWhat the calls cost (genai-collector report --url {api.url} --group-by customer,model):\n")
            print(render(report, "table"))
            budget = api.get("/api/v1/budgets")["budgets"][0]
            print(f"budget {budget['id']}: {budget['spent']} of {budget['limit']} ({budget['status']})\n")
            print(f"dashboard:  {api.url}/")
            print("point your own app at this collector:")
            print(f"  export OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:{ports['http']}")
            print("  export OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf")
            print("  export OTEL_RESOURCE_ATTRIBUTES=tenant.id=<your customer>")
            if not args.exit:
                print("\nCtrl-C stops the demo and removes its files.")
                with contextlib.suppress(KeyboardInterrupt):
                    signal.pause()
        finally:
            collector.send_signal(signal.SIGTERM)
            collector.wait(30)
            provider.stop()
    print("demo stopped, files removed")
    return 0


def add_commands(commands: argparse._SubParsersAction) -> None:
    demo = commands.add_parser("demo", help="a collector, a fake LLM provider and instrumented apps, on this machine")
    demo.add_argument("--calls", type=int, default=3, help="calls per app (default 3)")
    demo.add_argument("--exit", action="store_true", help="stop right after printing (no waiting for Ctrl-C)")
    demo.set_defaults(handler=cmd_demo)
