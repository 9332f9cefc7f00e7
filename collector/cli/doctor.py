"""``genai-collector doctor``: the checklist users walk by hand, each line a pass, a warning or a failure with a fix.

With a running collector (``--url`` or found at the config's API address) it asks its health and
diagnostics endpoints; with a stopped one it reads the ledger file (``--db``).
"""

from __future__ import annotations

import argparse
import socket
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
from google.protobuf.internal import api_implementation

from collector import native
from collector.api.server import CostApi
from collector.cli.api_client import TOKEN_VARIABLE, ApiClient, ApiError, add_token_option
from collector.cli.common import load_service
from collector.config import ConfigError, default_config_path
from collector.errors import LedgerError
from collector.exporters.duckdb import DuckDBExporter
from collector.exporters.postgresql import PostgresExporter
from collector.http_server import is_loopback
from collector.receivers.otlp import OtlpReceiver
from collector.service import Service
from collector.signals import Signal
from collector.storage.ledger import Ledger
from collector.storage.postgresql import probe, where


class Report:
    def __init__(self) -> None:
        self.failures = 0

    def line(self, state: str, check: str, detail: str = "", fix: str = "") -> None:
        if state == "FAIL":
            self.failures += 1
        print(f"{state:<4}  {check}" + (f": {detail}" if detail else ""))
        if fix and state != "PASS":
            print(f"      fix: {fix}")


def _port_free(host: str, port: int) -> bool:
    """Whether ``run`` could listen there: binding it, as the collector will (a connect misses a socket bound
    but not listening, or one on another address of the same port)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as aiohttp and grpc bind
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


@dataclass(frozen=True)
class Listener:
    name: str
    host: str
    port: int
    auth: str  # who may use it: bearer tokens, tokens, public reads, none
    tls: bool

    @property
    def exposure(self) -> str:
        return "loopback" if is_loopback(self.host) else "network"


def listeners(service: Service) -> list[Listener]:
    """Every port the collector listens on, with who may use it."""
    found = []
    for receiver_id, receiver in service.receivers.items():
        if isinstance(receiver, OtlpReceiver):
            for server in receiver.servers:
                found.append(Listener(f"receiver {receiver_id} ({type(server).__name__[:-6].lower()})",
                                      server.host, server.port, "bearer tokens" if receiver.auth else "none",
                                      server.tls is not None))
    for extension_id, extension in service.extensions.items():
        if isinstance(extension, CostApi):
            auth = "tokens" + (", public reads" if extension.public else "") if extension.tokens else \
                "public reads" if extension.public else "none"
            found.append(Listener(f"extension {extension_id}", extension.host, extension.port, auth,
                                  extension.tls is not None))
        elif hasattr(extension, "port"):
            found.append(Listener(f"extension {extension_id}", extension.host, extension.port, "none (status only)",
                                  False))
    return found


def check_exposure(report: Report, found: list[Listener]) -> None:
    """One table of the listeners, and a warning for each receiver open to the network without auth."""
    print(f"      {'address':<22} {'exposure':<9} {'auth':<24} {'TLS':<4} listener")
    for listener in found:
        print(f"      {listener.host + ':' + str(listener.port):<22} {listener.exposure:<9} {listener.auth:<24} "
              f"{'on' if listener.tls else 'off':<4} {listener.name}")
    for listener in found:
        if listener.exposure == "network" and listener.auth == "none" and listener.name.startswith("receiver"):
            report.line("WARN", f"{listener.name} accepts data from the network without auth",
                        f"{listener.host}:{listener.port}",
                        "add auth.bearer_tokens to the receiver, or listen on 127.0.0.1 (behind a cluster network "
                        "policy this can be what you want)")


def check_receivers(report: Report, service: Service) -> None:
    for receiver_id, receiver in service.receivers.items():
        for server in getattr(receiver, "servers", []):
            host = server.host if server.host not in ("0.0.0.0", "::") else "127.0.0.1"
            name = type(server).__name__
            if server.tls is not None:
                report.line("WARN", f"receiver {receiver_id} ({name})", "TLS is on: not probed")
                continue
            headers = {"Content-Type": "application/x-protobuf"}
            if name == "GrpcServer":
                try:
                    with grpc.insecure_channel(f"{host}:{server.port}") as channel:
                        channel.unary_unary(Signal.TRACES.grpc_method)(b"", timeout=3)
                    report.line("PASS", f"receiver {receiver_id} answers OTLP/gRPC", f"{host}:{server.port}")
                except grpc.RpcError as error:
                    ok = error.code() == grpc.StatusCode.UNAUTHENTICATED
                    report.line("PASS" if ok else "FAIL", f"receiver {receiver_id} answers OTLP/gRPC",
                                error.code().name, "is the collector running? genai-collector run --config ...")
            else:
                request = urllib.request.Request(f"http://{host}:{server.port}/v1/traces", data=b"", headers=headers)
                try:
                    urllib.request.urlopen(request, timeout=3)
                    report.line("PASS", f"receiver {receiver_id} answers OTLP/HTTP", f"{host}:{server.port}")
                except urllib.error.HTTPError as error:
                    report.line("PASS" if error.code == 401 else "FAIL", f"receiver {receiver_id} answers OTLP/HTTP",
                                f"HTTP {error.code}")
                except OSError as error:
                    report.line("FAIL", f"receiver {receiver_id} answers OTLP/HTTP", str(error),
                                "is the collector running? genai-collector run --config ...")


def check_traffic(report: Report, diagnostics: dict[str, Any], telemetry: dict[str, Any] | None) -> None:
    if telemetry is not None:
        received = sum(v.get("traces", {}).get("received", 0) for k, v in telemetry.items()
                       if isinstance(v, dict) and isinstance(v.get("traces"), dict))
        report.line("PASS" if received else "WARN", "spans received since the collector started", str(received),
                    "point your app at the collector: OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:4318")
    ledger = diagnostics["ledger"]
    last = ledger["last_24h"]
    calls = sum(last["statuses"].values())
    report.line("PASS" if calls else "WARN", "GenAI calls in the last 24 hours", str(calls),
                "no GenAI spans: is the app instrumented (openai-v2, OpenLLMetry, OpenInference, OpenLIT…)? "
                "A span needs gen_ai.* / llm.* attributes; GET /api/v1/calls shows what was stored")
    if last["dialects"]:
        report.line("PASS", "dialects detected", ", ".join(f"{d} ({n})" for d, n in sorted(last["dialects"].items())))
    no_usage = last["statuses"].get("no_usage", 0)
    report.line("WARN" if no_usage else "PASS", "calls without token counts", str(no_usage),
                "streamed OpenAI calls need stream_options={'include_usage': True}; some instrumentations record "
                "no usage for some APIs")
    incomplete = last["statuses"].get("incomplete_usage", 0)
    report.line("WARN" if incomplete else "PASS", "calls priced from incomplete token counts", str(incomplete),
                "gen_ai.usage.cost.reason on those spans says what is missing (cached or reasoning tokens the "
                "instrumentation does not report): README, Verified clients, names the settings that give them")
    for model in last["unpriced"]:
        report.line("WARN", f"unpriced model {model['provider']}/{model['model']}", f"{model['calls']} calls",
                    f"genai-collector pricing lookup --provider {model['provider']} --model {model['model']}; "
                    "add it under custom_models (or an alias) in a price file")
    if not last["unpriced"]:
        report.line("PASS", "every model has a price")
    mismatches = last["reported_cost_mismatches"]
    report.line("WARN" if mismatches else "PASS", "reported vs computed cost", f"{mismatches} calls differ by >1%",
                "look at gen_ai.usage.cost.reported on those spans: cache or tier rules, or an outdated price list")
    report.line("PASS" if ledger["schema_version"] == ledger["schema_version_known"] else "FAIL", "ledger schema",
                f"version {ledger['schema_version']}", "upgrade genai-cost-collector")
    report.line("PASS", "ledger", f"{ledger['rows']} calls, last write {ledger['last_write']}")
    report.line("PASS" if ledger["rollups_consistent"] else "FAIL", "rollups consistent with the calls", "",
                "genai-collector rebuild-stats --db <file> (with the collector stopped)")


def check_budgets(report: Report, budgets: list[dict[str, Any]]) -> None:
    for budget in budgets:
        if budget["calls_last_30d"] == 0:
            report.line("WARN", f"budget {budget['id']} matches no traffic", f"match {budget['match']}",
                        "check the match values against gen_ai.attribution.* on your spans")
        elif budget["status"] == "exceeded":
            report.line("WARN", f"budget {budget['id']} exceeded", f"{budget['spent']} of {budget['limit']}")
        else:
            report.line("PASS", f"budget {budget['id']}", f"{budget['spent']} of {budget['limit']}")


def check_exporters(report: Report, exporters: dict[str, Any]) -> None:
    for exporter_id, state in exporters.items():
        if state.get("last_error") and not state.get("last_success"):
            report.line("FAIL", f"exporter {exporter_id}", f"never delivered; last error {state['last_error']}",
                        "is the backend up, and its endpoint / TLS / headers right?")
        elif state.get("last_error"):
            report.line("WARN", f"exporter {exporter_id}", f"last error {state['last_error']}, queue "
                        f"{state.get('queue')}, disk queue {state.get('disk_queue_bytes') or 0} bytes")
        else:
            report.line("PASS", f"exporter {exporter_id}", f"queue {state.get('queue') or 0}")


MAX_CLOCK_SKEW = 2.0  # seconds between this host and the database before doctor warns


def check_shared_ledgers(report: Report, service: Service) -> None:
    """Each postgresql ledger: reachable with its DSN, its schema, and this host's clock against the server's."""
    for exporter_id, exporter in service.exporters.items():
        if not isinstance(exporter, PostgresExporter):
            continue
        try:
            state = probe(exporter.dsn, exporter.connect_timeout)
        except LedgerError as error:
            report.line("FAIL", f"ledger {exporter_id} reachable", str(error),
                        "check the dsn (host, port, database, user, password, sslmode) and that this host may connect")
            continue
        report.line("PASS", f"ledger {exporter_id} reachable", f"{where(exporter.dsn)}, PostgreSQL "
                    f"{state['server_version'] // 10000}, {state['round_trip_ms']:.1f} ms round trip")
        version, known = state["schema_version"], state["schema_version_known"]
        if version == 0:
            report.line("WARN", f"ledger {exporter_id} schema", "not created yet", "the first collector to start "
                        "creates it (its role needs CREATE on the database)")
        else:
            report.line("PASS" if version == known else "FAIL", f"ledger {exporter_id} schema",
                        f"version {version} ({state['calls']} calls); this collector knows {known}",
                        "upgrade every replica to the same genai-cost-collector version")
        skew = state["clock_skew_s"]
        report.line("PASS" if abs(skew) <= MAX_CLOCK_SKEW else "WARN", f"ledger {exporter_id} clock",
                    f"this host is {skew:+.2f} s from the database server",
                    "run NTP (chrony, systemd-timesyncd) on every replica: replicas whose clocks differ disagree "
                    "on when a budget period ends")
    if service.workers > 1:
        report.line("PASS", "workers", f"{service.workers} processes share the receiver ports and the ledger")


def cmd_doctor(args: argparse.Namespace) -> int:
    report = Report()
    backend = api_implementation.Type()
    report.line("PASS" if backend == "upb" else "FAIL", "protobuf backend", backend,
                "pip install --upgrade protobuf (the pure-Python backend is ~100x slower)")
    report.line("PASS" if native.available() else "WARN", "hot path", native.HOT_PATH + (
        f" ({native.WHY_PYTHON})" if native.WHY_PYTHON else ""), native.BUILD_HINT)
    config_path = args.config or default_config_path()
    service = None
    try:
        service = load_service(config_path)
        report.line("PASS", "config valid", str(config_path))
    except ConfigError as error:
        report.line("FAIL", "config valid", str(error), "fix the file at the line shown; genai-collector validate")
    url = args.url
    if service is not None and url is None:
        api = next((e for e in service.extensions.values() if isinstance(e, CostApi)), None)
        if api is not None:
            url = f"http://{api.host if api.host not in ('0.0.0.0', '::') else '127.0.0.1'}:{api.port}"
    api = ApiClient(url, args.token) if url else None
    info: dict | None = None
    refused: ApiError | None = None  # the API runs, but would not answer
    try:
        info = api.answers("/api/v1/info") if api else None
    except ApiError as error:
        refused = error
    running = info is not None or refused is not None
    if service is not None:
        check_shared_ledgers(report, service)
        found = listeners(service)
        check_exposure(report, found)
        for listener in found:
            check = f"port {listener.host}:{listener.port} ({listener.name})"
            if _port_free(listener.host, listener.port):
                report.line("PASS", check, "free")
            elif running:
                report.line("PASS", check, "in use (by this collector)")
            else:
                report.line("FAIL", check, "in use by another process: run would fail with 'address already in use'",
                            "stop what holds the port (ss -ltnp shows it), or give the listener another endpoint")
        if running:
            check_receivers(report, service)
    if refused is not None:
        report.line("FAIL", "collector running", f"{url} answered {refused.status}: {refused}",
                    f"give doctor a read token: --token or ${TOKEN_VARIABLE}")
    elif running:
        report.line("PASS", "collector running", f"{url} (version {info['version']}, {info['hot_path']} hot path)")
        diagnostics = api.answers("/api/v1/diagnostics", timeout=30)
        if diagnostics is None:
            report.line("FAIL", "diagnostics", "the API did not answer /api/v1/diagnostics",
                        "run doctor where the API is reachable")
            return 1
        check_traffic(report, diagnostics, diagnostics.get("telemetry"))
        check_exporters(report, diagnostics["exporters"])
        check_budgets(report, diagnostics["budgets"])
    else:
        db = args.db or next((e.path for e in (service.exporters.values() if service else [])
                              if isinstance(e, DuckDBExporter)), None)
        report.line("WARN", "collector running", f"no API answered at {url}" if url else "no cost_api configured",
                    "start it: genai-collector run --config ...")
        if db is not None:
            try:
                ledger = Ledger.open(Path(db), read_only=True)
            except LedgerError as error:
                report.line("FAIL", "ledger file", str(error), "run the collector once, or pass --db")
            else:
                try:
                    check_traffic(report, ledger.diagnostics([]), None)
                finally:
                    ledger.close()
    print(f"\n{report.failures} problem(s) found" if report.failures else "\nno problems found")
    return 1 if report.failures else 0


def add_commands(commands: argparse._SubParsersAction) -> None:
    doctor = commands.add_parser("doctor", help="check config, ports, receivers, traffic, prices, exporters, ledger")
    doctor.add_argument("--config", type=Path, help="the collector's config (default: the embedded one)")
    doctor.add_argument("--url", help="a running collector's API (default: the config's cost_api endpoint)")
    doctor.add_argument("--db", type=Path, help="a stopped collector's ledger file")
    add_token_option(doctor)
    doctor.set_defaults(handler=cmd_doctor)
