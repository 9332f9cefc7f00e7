"""Budgets end to end: concurrent senders, exactly-once alerts (webhook, OTLP log), restart, check, API."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import threading
import time
import urllib.error
import urllib.request
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from zoneinfo import ZoneInfo

import pytest
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

from collector.config_builder import ConfigBuilder
from collector.signals import Signal
from tests.conftest import on_ports
from tests.test_ledger import GPT4O, GPT4O_COST

SECRET = "s3cret-hook"


class WebhookReceiver:
    """A real HTTP endpoint that checks the signature of every alert it receives."""

    def __init__(self, status: int = 200):
        self.alerts: list[dict] = []
        self.bad_signatures = 0
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                expected = hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
                if not hmac.compare_digest(expected, self.headers.get("X-Signature-SHA256", "")):
                    receiver.bad_signatures += 1
                receiver.alerts.append(json.loads(body))
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def webhook():
    receiver = WebhookReceiver()
    yield receiver
    receiver.stop()


def budget_config(ports, db, hook_url: str, attempts: int = 5) -> ConfigBuilder:
    budgets = [{"id": "acme-daily", "match": {"customer": "acme"}, "limit": 0.035, "period": "daily",
                "thresholds": [0.5, 0.8, 1.0], "hard": True},
               {"id": "gpt4o-monthly", "match": {"model": "gpt-4o*"}, "limit": 100, "period": "monthly"}]
    webhook = {"url": hook_url, "secret": "${env:ALERT_SECRET}", "attempts": attempts, "initial_interval": "50ms"}
    return (on_ports(ports, http=False)
            .processor("genai_attribution", customer=["resource.tenant.id"])
            .processor("genai_budget", timezone="Europe/Berlin", budgets=budgets, alerts={"webhook": webhook})
            .exporter("duckdb", path=str(db), flush_interval="20ms")
            .exporter("otlp/backend", endpoint=f"127.0.0.1:{ports['sink']}", tls={"insecure": True})
            .cost_api(ports["api"])
            .pipeline("traces", processors=["genai_normalize", "genai_cost", "genai_attribution", "genai_budget"],
                      exporters=["duckdb", "otlp/backend"])
            .pipeline("logs", exporters=["otlp/backend"]))


def send_concurrently(ports, threads: int, spans_each: int, tenant: str = "acme") -> None:
    barrier = threading.Barrier(threads)

    def worker() -> None:
        provider = TracerProvider(resource=Resource.create({"service.name": "shop", "tenant.id": tenant}))
        provider.add_span_processor(SimpleSpanProcessor(
            OTLPSpanExporter(endpoint=f"127.0.0.1:{ports['grpc']}", insecure=True)))
        tracer = provider.get_tracer("tests.budgets")
        barrier.wait()
        for _ in range(spans_each):
            tracer.start_span("chat gpt-4o", attributes=GPT4O).end()
        provider.shutdown()

    workers = [threading.Thread(target=worker) for _ in range(threads)]
    for thread in workers:
        thread.start()
    for thread in workers:
        thread.join()


def request(ports, method: str, path: str, body: dict | None = None) -> tuple[int, dict]:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(f"http://127.0.0.1:{ports['api']}{path}", data=data, method=method,
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=10) as reply:
            raw = reply.read()
            return reply.status, json.loads(raw) if raw else {}
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"{}")


def wait_until(predicate, timeout: float = 15.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


def test_concurrent_crossing_alerts_once_and_spend_is_exact(ports, collector, sink, webhook, tmp_path):
    sink.start_grpc(ports["sink"])
    db = tmp_path / "costs.duckdb"
    process = collector(budget_config(ports, db, webhook.url), ports["health"], env={"ALERT_SECRET": SECRET})
    send_concurrently(ports, threads=8, spans_each=5)  # 40 calls × $0.0035 = $0.14 on a $0.035 budget

    status, budget = request(ports, "GET", "/api/v1/budgets/acme-daily")
    assert status == 200
    assert Decimal(budget["spent"]) == GPT4O_COST * 40 and budget["status"] == "exceeded"
    assert wait_until(lambda: len(webhook.alerts) >= 3)
    time.sleep(0.5)
    assert sorted(a["threshold"] for a in webhook.alerts if a["budget"] == "acme-daily") == [0.5, 0.8, 1.0]
    assert webhook.bad_signatures == 0
    assert wait_until(lambda: sink.count(Signal.LOGS) >= 3)
    records = [lr for r in sink.requests[Signal.LOGS] for rl in r.resource_logs for sl in rl.scope_logs
               for lr in sl.log_records]
    assert sorted(r.event_name for r in records) == ["gen_ai.budget.threshold_crossed"] * 3
    spans = sink.spans()
    attrs = {kv.key: kv.value for kv in spans[-1].attributes}
    assert attrs["gen_ai.budget.id"].string_value == "acme-daily"  # the tightest of the two
    assert [v.string_value for v in attrs["gen_ai.budget.ids"].array_value.values] == ["acme-daily",
                                                                                       "gpt4o-monthly"]

    # the pre-call check: acme's hard budget is spent; globex has no hard budget
    status, refusal = request(ports, "GET", "/api/v1/budgets/check?customer=acme&model=gpt-4o&estimated_cost=0.01")
    assert status == 402 and refusal["allowed"] is False and refusal["budget"] == "acme-daily"
    resets_at = dt.datetime.fromisoformat(refusal["resets_at"])
    assert dt.timedelta(0) < resets_at - dt.datetime.now(dt.UTC) <= dt.timedelta(hours=25)  # next Berlin midnight
    assert resets_at.astimezone(ZoneInfo("Europe/Berlin")).hour == 0
    status, allowed = request(ports, "GET", "/api/v1/budgets/check?customer=globex&model=gpt-4o")
    assert status == 200 and allowed["allowed"] is True
    assert [b["id"] for b in allowed["budgets"]] == ["gpt4o-monthly"]

    # restart mid-period: the same spend, no alert raised again
    assert process.stop() == 0
    process.start(ports["health"])
    _, again = request(ports, "GET", "/api/v1/budgets/acme-daily")
    assert Decimal(again["spent"]) == GPT4O_COST * 40
    send_concurrently(ports, threads=1, spans_each=1)
    time.sleep(1.0)
    assert len([a for a in webhook.alerts if a["budget"] == "acme-daily"]) == 3


def test_budget_api_validation_and_read_only_config_budgets(ports, collector, webhook, tmp_path):
    collector(budget_config(ports, tmp_path / "c.duckdb", webhook.url), ports["health"],
              env={"ALERT_SECRET": SECRET})
    status, created = request(ports, "POST", "/api/v1/budgets",
                              {"id": "team-growth", "match": {"customer": "globex"}, "limit": 20, "period": "weekly"})
    assert status == 201 and created["source"] == "api" and created["spent"] == "0"
    assert request(ports, "POST", "/api/v1/budgets", {"id": "team-growth", "limit": 1})[0] == 409
    status, error = request(ports, "POST", "/api/v1/budgets", {"id": "x", "limit": -3})
    assert status == 400 and error["error"]["message"] == "limit: must be a positive amount in the cost currency"
    status, error = request(ports, "POST", "/api/v1/budgets", {"id": "y", "limit": 3, "match": {"colour": "red"}})
    assert status == 400 and error["error"]["message"].startswith("match.colour: not a dimension")
    status, error = request(ports, "PUT", "/api/v1/budgets/acme-daily", {"limit": 1000})
    assert status == 403 and "config file" in error["error"]["message"]
    status, changed = request(ports, "PUT", "/api/v1/budgets/team-growth", {"limit": 25, "period": "weekly"})
    assert status == 200 and changed["limit"] == "25"
    assert request(ports, "DELETE", "/api/v1/budgets/team-growth")[0] == 204
    assert request(ports, "GET", "/api/v1/budgets/team-growth")[0] == 404
    status, error = request(ports, "GET", "/api/v1/budgets/check?colour=red")
    assert status == 400 and error["error"]["message"].startswith("colour: unknown parameter")
    for path in ("/api/v1/budgets", "/api/v1/budgets/reserve"):
        broken = urllib.request.Request(f"http://127.0.0.1:{ports['api']}{path}", data=b"{not json", method="POST")
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(broken, timeout=10)
        assert refused.value.code == 400 and json.loads(refused.value.read())["error"]["code"] == "bad_json"

    # reservations on the embedded ledger: held, shown, refused past the hard limit, released
    status, held = request(ports, "POST", "/api/v1/budgets/reserve",
                           {"customer": "acme", "model": "gpt-4o", "estimated_cost": "0.03", "ttl": "5m"})
    assert status == 200 and held["allowed"] is True and len(held["reservation"]) == 32
    assert request(ports, "GET", "/api/v1/budgets/acme-daily")[1]["reserved"] == "0.03"
    status, refused = request(ports, "POST", "/api/v1/budgets/reserve", {"customer": "acme", "estimated_cost": "0.01"})
    assert status == 402 and refused["budget"] == "acme-daily" and refused["reserved"] == "0.03"
    assert request(ports, "GET", "/api/v1/budgets/check?customer=acme&estimated_cost=0.01")[0] == 402
    assert request(ports, "DELETE", f"/api/v1/budgets/reservations/{held['reservation']}")[0] == 204
    assert request(ports, "DELETE", f"/api/v1/budgets/reservations/{held['reservation']}")[0] == 404
    assert request(ports, "GET", "/api/v1/budgets/check?customer=acme&estimated_cost=0.01")[0] == 200
    for body, message in (({"customer": "acme", "estimated_cost": "lots"}, "estimated_cost: 'lots' is not an amount"),
                          ({"estimated_cost": "1", "ttl": "2d"}, "ttl: between 1s and 24h"),
                          ({"estimated_cost": "1", "colour": "red"}, "colour: unknown parameter")):
        status, error = request(ports, "POST", "/api/v1/budgets/reserve", body)
        assert status == 400 and error["error"]["message"].startswith(message), error


def test_failing_webhook_does_not_block_the_pipeline(ports, collector, sink, tmp_path):
    failing = WebhookReceiver(status=500)
    sink.start_grpc(ports["sink"])
    try:
        process = collector(budget_config(ports, tmp_path / "f.duckdb", failing.url, attempts=3), ports["health"],
                            env={"ALERT_SECRET": SECRET})
        started = time.monotonic()
        send_concurrently(ports, threads=2, spans_each=10)
        assert time.monotonic() - started < 10
        assert sink.wait_for(Signal.TRACES, 20) == 20
        assert wait_until(lambda: "alert webhook gave up" in process.logs())
        assert len(failing.alerts) == 3 * 3  # three thresholds, three attempts each
    finally:
        failing.stop()


def test_budgets_status_cli_from_the_api_and_from_the_file(ports, collector, sink, webhook, tmp_path):
    import subprocess
    import sys
    sink.start_grpc(ports["sink"])
    db = tmp_path / "s.duckdb"
    process = collector(budget_config(ports, db, webhook.url), ports["health"], env={"ALERT_SECRET": SECRET})
    send_concurrently(ports, threads=1, spans_each=8)  # 8 × $0.0035 = $0.028: 80% of acme-daily
    live = subprocess.run([sys.executable, "-m", "collector", "budgets", "status", "--url",
                           f"http://127.0.0.1:{ports['api']}"], capture_output=True, text=True, timeout=60)
    assert live.returncode == 0, live.stderr
    line = next(x for x in live.stdout.splitlines() if x.startswith("acme-daily"))
    assert "0.028 / 0.035" in line and "[################....]" in line and "80.0%" in line and "warning" in line
    assert process.stop() == 0
    stopped = subprocess.run([sys.executable, "-m", "collector", "budgets", "status", "--db", str(db), "--config",
                              str(process.config)], capture_output=True, text=True, timeout=60)
    assert stopped.returncode == 0, stopped.stderr
    assert next(x for x in stopped.stdout.splitlines() if x.startswith("acme-daily")) == line
