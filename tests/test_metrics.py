"""/metrics scraped by a real Prometheus server, and genai_metrics feeding OTLP metrics to a backend."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import urllib.parse
import urllib.request

import pytest

from collector.signals import Signal
from tests.test_ledger import GPT4O_COST, emit, ledger_config, tracer

PROMETHEUS = shutil.which("prometheus")


def metrics_text(ports) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{ports['api']}/metrics", timeout=10) as reply:
        assert reply.headers["Content-Type"].startswith("text/plain")
        return reply.read().decode()


def test_metrics_endpoint_exposes_costs_and_own_counters(ports, collector, tmp_path):
    collector(ledger_config(ports, tmp_path / "m.duckdb"), ports["health"])
    provider, _ = tracer(ports)
    emit(provider, 4)
    provider.shutdown()
    text = metrics_text(ports)
    assert ('gen_ai_client_cost_total{currency="USD",customer="acme",feature="search",model="gpt-4o",'
            'provider="openai"} 0.014') in text
    assert 'gen_ai_client_token_usage_total{customer="acme",feature="search",model="gpt-4o",provider="openai",' \
           'token_type="input"} 4000.0' in text
    assert 'genai_collector_accepted_items_total{component="otlp",signal="traces"} 4.0' in text
    assert 'genai_collector_exported_items_total{component="duckdb",signal="traces"} 4.0' in text


@pytest.mark.skipif(PROMETHEUS is None, reason="needs Debian's prometheus (.ci/run installs it)")
def test_prometheus_scrapes_the_cost_series(ports, collector, tmp_path):
    collector(ledger_config(ports, tmp_path / "p.duckdb"), ports["health"])
    provider, _ = tracer(ports)
    emit(provider, 6)
    provider.shutdown()
    config = tmp_path / "prometheus.yml"
    config.write_text(f"""
global: {{scrape_interval: 1s, evaluation_interval: 1s}}
scrape_configs:
  - job_name: genai-collector
    static_configs: [{{targets: ["127.0.0.1:{ports['api']}"]}}]
""")
    server = subprocess.Popen([PROMETHEUS, f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                               f"--web.listen-address=127.0.0.1:{ports['prometheus']}"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        query = urllib.parse.quote('sum(gen_ai_client_cost_total{customer="acme"})')
        deadline, value = time.monotonic() + 40, None
        while time.monotonic() < deadline and value is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{ports['prometheus']}/api/v1/query?query={query}",
                                            timeout=5) as reply:
                    result = json.loads(reply.read())["data"]["result"]
                    value = result[0]["value"][1] if result else None
            except OSError:
                pass
            time.sleep(0.5)
        assert value is not None, "Prometheus never scraped the series"
        assert float(value) == pytest.approx(float(GPT4O_COST * 6))
    finally:
        server.terminate()
        server.wait(10)


def test_genai_metrics_feed_the_metrics_pipeline(ports, collector, sink, tmp_path):
    sink.start_grpc(ports["sink"])
    config = (ledger_config(ports, tmp_path / "g.duckdb")
              .processor("genai_metrics", interval="200ms")
              .exporter("otlp/backend", endpoint=f"127.0.0.1:{ports['sink']}", tls={"insecure": True})
              .pipeline("traces", processors=["genai_normalize", "genai_cost", "genai_attribution", "genai_metrics",
                                              "batch"], exporters=["duckdb"])
              .pipeline("metrics", exporters=["otlp/backend"]))
    process = collector(config, ports["health"])
    provider, _ = tracer(ports)
    emit(provider, 5)
    provider.shutdown()
    assert process.stop() == 0  # the last totals are emitted on shutdown
    metrics = {m.name: m for r in sink.requests[Signal.METRICS] for rm in r.resource_metrics
               for sm in rm.scope_metrics for m in sm.metrics}
    cost = metrics["gen_ai.client.cost"]
    assert cost.unit == "USD" and cost.sum.is_monotonic
    latest = [r for r in sink.requests[Signal.METRICS]][-1].resource_metrics[0].scope_metrics[0].metrics
    final_cost = next(m for m in latest if m.name == "gen_ai.client.cost").sum.data_points[0]
    assert final_cost.as_double == pytest.approx(float(GPT4O_COST * 5))
    labels = {kv.key: kv.value.string_value for kv in final_cost.attributes}
    assert labels["gen_ai.provider.name"] == "openai" and labels["gen_ai.attribution.customer"] == "acme"
    usage = next(m for m in latest if m.name == "gen_ai.client.token.usage").histogram.data_points
    by_type = {next(kv.value.string_value for kv in p.attributes if kv.key == "gen_ai.token.type"): p for p in usage}
    assert (by_type["input"].count, by_type["input"].sum) == (5, 5000)
    assert list(by_type["input"].explicit_bounds)[:3] == [1, 4, 16]
