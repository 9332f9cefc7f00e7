"""Scale-out on a real PostgreSQL server: replicas (collector processes) and workers sharing one ledger and
exact budgets. Each replica is a real collector subprocess; clients speak OTLP/HTTP JSON."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from decimal import Decimal
from pathlib import Path

import pytest

from collector.config_builder import ConfigBuilder
from collector.storage.postgresql import PostgresLedger
from tests.conftest import free_port, run_cli
from tests.otlp_client import GPT4O_COST, get, post, request_body
from tests.test_budgets import SECRET, WebhookReceiver, wait_until

COST = Decimal(GPT4O_COST)
CLIENT = Path(__file__).parent / "otlp_client.py"


def replica_config(dsn: str, ports: dict[str, int], budgets: list[dict], hook_url: str | None = None,
                   sink_port: int | None = None) -> ConfigBuilder:
    alerts = {"webhook": {"url": hook_url, "secret": SECRET, "initial_interval": "50ms"}} if hook_url else {}
    config = (ConfigBuilder().otlp(http=ports["http"]).health_check(ports["health"]).cost_api(ports["api"])
              .processor("genai_attribution", customer=["resource.tenant.id"])
              .processor("genai_budget", budgets=budgets, alerts=alerts)
              .exporter("postgresql", dsn=dsn, flush_interval="10ms"))
    exporters = ["postgresql"]
    if sink_port is not None:
        config.exporter("otlp/backend", endpoint=f"127.0.0.1:{sink_port}", tls={"insecure": True})
        exporters.append("otlp/backend")
    return config.pipeline("traces", processors=["genai_normalize", "genai_cost", "genai_attribution",
                                                 "genai_budget"], exporters=exporters)


def new_ports() -> dict[str, int]:
    return {"http": free_port(), "health": free_port(), "api": free_port()}


def url(ports: dict[str, int], kind: str) -> str:
    return f"http://127.0.0.1:{ports[kind]}"


def send(ports: dict[str, int], span_id: int, tenant: str = "acme", **attributes) -> int:
    return post(f"{url(ports, 'http')}/v1/traces", request_body(span_id, tenant, **attributes))[0]


def ledger_calls(ports: dict[str, int]) -> list[dict]:
    status, page = get(f"{url(ports, 'api')}/api/v1/calls?limit=1000&from=1d")
    assert status == 200, page
    return page["calls"]


def test_two_replicas_share_one_ledger_and_exact_budgets(postgres, collector, sink):
    """A client alternating between two replicas: each call is stored once (one request sent to both, too),
    each span's spend is the running total across replicas, the crossing span says exceeded, and each
    threshold raises one webhook across both."""
    dsn = postgres.new_database()
    webhook = WebhookReceiver()
    sink_port = free_port()
    sink.start_grpc(sink_port)
    budgets = [{"id": "acme-daily", "match": {"customer": "acme"}, "limit": str(COST * 5 - COST / 2),
                "period": "daily", "thresholds": [0.5, 1.0]}]  # the fifth call crosses the limit
    a, b = new_ports(), new_ports()
    try:
        for ports in (a, b):
            collector(replica_config(dsn, ports, budgets, webhook.url, sink_port), ports["health"])
        for span_id in range(1, 7):
            assert send(a if span_id % 2 else b, span_id) == 200
        assert send(a, 7) == send(b, 7) == 200  # one request, sent to both replicas
        assert sorted(int(c["span_id"], 16) for c in ledger_calls(b)) == list(range(1, 8))
        for ports in (a, b):
            _, budget = get(f"{url(ports, 'api')}/api/v1/budgets/acme-daily")
            assert Decimal(budget["spent"]) == COST * 7 and budget["status"] == "exceeded"
        assert wait_until(lambda: len(sink.spans()) >= 8)
        spent = {}
        for span in sink.spans():
            attributes = {kv.key: kv.value for kv in span.attributes}
            spent.setdefault(int(span.span_id.hex(), 16), (attributes["gen_ai.budget.spent"].double_value,
                                                          attributes["gen_ai.budget.status"].string_value))
        assert [spent[i] for i in range(1, 6)] == [
            (pytest.approx(float(COST * i)), "exceeded" if i == 5 else "warning" if i >= 3 else "ok")
            for i in range(1, 6)]
        assert wait_until(lambda: len(webhook.alerts) >= 2)
        time.sleep(0.5)
        assert sorted(alert["threshold"] for alert in webhook.alerts) == [0.5, 1.0]
        assert webhook.bad_signatures == 0
    finally:
        webhook.stop()


def test_kill_9_of_a_replica_under_load_loses_no_acknowledged_call(postgres, collector):
    dsn = postgres.new_database()
    a, b = new_ports(), new_ports()
    replicas = [collector(replica_config(dsn, ports, []), ports["health"]) for ports in (a, b)]
    acknowledged: list[int] = []
    stop = threading.Event()

    def client(ports: dict[str, int], first: int) -> None:
        span_id = first
        while not stop.is_set():
            try:
                if send(ports, span_id) == 200:
                    acknowledged.append(span_id)
            except OSError:  # the replica is gone: nothing acknowledged
                time.sleep(0.01)
            span_id += 1

    clients = [threading.Thread(target=client, args=(ports, first)) for ports, first in ((a, 1), (b, 1_000_000))]
    for thread in clients:
        thread.start()
    time.sleep(1.0)
    replicas[0].proc.send_signal(signal.SIGKILL)
    time.sleep(0.5)
    stop.set()
    for thread in clients:
        thread.join()
    stored = {int(c["span_id"], 16) for c in ledger_calls(b)}
    assert any(i < 1_000_000 for i in acknowledged) and any(i >= 1_000_000 for i in acknowledged)
    assert set(acknowledged) <= stored


def test_eight_processes_on_one_budget_stay_within_the_bound(postgres, collector):
    """Eight apps spend concurrently on one hard budget through two replicas. With reservations the budget
    is never passed; with checks only, by at most the calls in flight (one per app)."""
    dsn = postgres.new_database()
    limit = COST * 20
    budgets = [{"id": customer, "match": {"customer": customer}, "limit": str(limit), "period": "daily",
                "hard": True} for customer in ("reserving", "checking")]
    a, b = new_ports(), new_ports()
    for ports in (a, b):
        collector(replica_config(dsn, ports, budgets), ports["health"])
    for first, customer, mode in ((10_000, "reserving", "reserve"), (500_000, "checking", "check")):
        apps = [subprocess.Popen([sys.executable, str(CLIENT), "spend", url(ports, "api"), url(ports, "http"),
                                  customer, mode, str(first + index * 10_000)], stdout=subprocess.PIPE, text=True,
                                 env={**os.environ, "PYTHONPATH": str(CLIENT.parent.parent)})
                for index, ports in enumerate([a, b] * 4)]
        sent = sum(int(app.communicate(timeout=120)[0]) for app in apps)
        _, budget = get(f"{url(a, 'api')}/api/v1/budgets/{customer}")
        assert Decimal(budget["spent"]) == COST * sent
        if mode == "reserve":
            assert sent == 20 and Decimal(budget["reserved"]) == 0  # every hold released by its call
        else:
            assert 20 <= sent <= 20 + 8


def test_workers_share_the_ports_and_a_dead_worker_is_restarted(postgres, collector):
    dsn = postgres.new_database()
    ports = new_ports()
    process = collector(replica_config(dsn, ports, []), ports["health"], args=("--workers", "2"))
    for span_id in range(1, 41):
        assert send(ports, span_id) == 200
    workers = subprocess.run(["pgrep", "-P", str(process.proc.pid)], capture_output=True, text=True).stdout.split()
    assert len(workers) == 2
    os.kill(int(workers[0]), signal.SIGKILL)
    assert wait_until(lambda: "worker exited: restarting" in process.logs(), timeout=10)
    assert wait_until(lambda: len(subprocess.run(["pgrep", "-P", str(process.proc.pid)], capture_output=True,
                                                 text=True).stdout.split()) == 2, timeout=10)
    for span_id in range(41, 81):  # served all along: the other worker holds the port meanwhile
        assert send(ports, span_id) == 200
    assert len(ledger_calls(ports)) == 80
    served = {json.loads(line).get("worker") for line in process.logs().splitlines()
              if line.startswith("{") and "ledger open" in line}
    assert served == {0, 1}
    assert process.stop() == 0
    assert subprocess.run(["pgrep", "-P", str(process.proc.pid)], capture_output=True).returncode == 1


def test_workers_that_cannot_start_stop_the_collector_with_the_reason(postgres, tmp_path):
    ports = new_ports()
    config = tmp_path / "collector.yaml"
    config.write_text(replica_config(postgres.new_database(), ports, []).yaml())
    with socket.socket() as taken:  # a plain listener, without SO_REUSEPORT: the workers cannot share it
        taken.bind(("127.0.0.1", ports["http"]))
        taken.listen()
        run = subprocess.run([sys.executable, "-m", "collector", "run", "--config", str(config), "--workers", "2"],
                             capture_output=True, text=True, timeout=60)
    assert run.returncode == 1
    assert f"cannot listen on 127.0.0.1:{ports['http']}: address already in use" in run.stderr
    assert "worker failed to start: stopping" in run.stderr


def doctor(config: Path) -> tuple[int, str]:
    """``genai-collector doctor`` in this process: its exit code and what it printed."""
    result = run_cli("doctor", "--config", str(config))
    return result.returncode, result.stdout


def test_doctor_checks_the_shared_ledger_and_the_worker_count(postgres, tmp_path):
    dsn = postgres.new_database()
    config = tmp_path / "collector.yaml"
    config.write_text(replica_config(dsn, new_ports(), []).yaml().replace("service:", "service:\n  workers: 2", 1))
    _, report = doctor(config)
    assert "WARN  ledger postgresql schema: not created yet" in report
    assert f"PASS  ledger postgresql reachable: 127.0.0.1:{postgres.port}/" in report
    assert "PASS  ledger postgresql clock: this host is " in report
    assert "PASS  workers: 2 processes share the receiver ports and the ledger" in report
    PostgresLedger.open(dsn).close()  # what the first replica to start does
    _, report = doctor(config)
    assert "PASS  ledger postgresql schema: version 1 (0 calls); this collector knows 1" in report
    config.write_text(replica_config(f"postgresql://postgres@127.0.0.1:{free_port()}/nowhere", new_ports(), [])
                      .yaml())
    code, report = doctor(config)
    assert code == 1 and "FAIL  ledger postgresql reachable: cannot reach PostgreSQL at 127.0.0.1:" in report
    assert "fix: check the dsn (host, port, database, user, password, sslmode)" in report
