"""Example configs, docker-compose, Prometheus and Grafana provisioning: checked here, since Docker cannot run."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from collector.api.metrics import CostCounters, PrometheusView
from collector.telemetry import SelfTelemetry

CONFIG = Path(__file__).parent.parent / "config"
EXAMPLES = ["jaeger.yaml", "tempo.yaml", "grafana-cloud.yaml", "phoenix.yaml", "compose.yaml", "production.yaml"]


@pytest.mark.parametrize("name", EXAMPLES)
def test_example_configs_validate(name, tmp_path):
    config = CONFIG / "examples" / name
    env = {**os.environ}
    if name == "production.yaml":  # the secrets and certificates it expects from its environment
        from tests.tls_certs import make_certificates
        certs = make_certificates(tmp_path)
        env.update({"TOKEN_ACME": "a" * 20, "TOKEN_GLOBEX": "g" * 20, "API_READ_TOKEN": "r" * 20,
                    "API_ADMIN_TOKEN": "w" * 20, "TLS_CERT": str(certs["server_cert"]),
                    "TLS_KEY": str(certs["server_key"]), "ALERT_URL": "https://hooks.example/alert",
                    "GENAI_COLLECTOR_PG_DSN": "postgresql://collector@db.internal/costs?sslmode=verify-full"})
    result = subprocess.run([sys.executable, "-m", "collector", "validate", "--config", str(config)],
                            capture_output=True, text=True, timeout=60, env=env)
    assert result.returncode == 0, result.stderr
    assert "warning:" not in result.stdout, result.stdout


def test_grafana_cloud_sends_basic_auth_from_the_environment():
    text = (CONFIG / "examples" / "grafana-cloud.yaml").read_text()
    assert 'authorization: "Basic ${env:GRAFANA_CLOUD_OTLP_AUTH}"' in text


def test_docker_compose_is_complete():
    compose = yaml.safe_load((CONFIG / "docker-compose.yaml").read_text())
    services = compose["services"]
    assert set(services) == {"collector", "jaeger", "tempo", "prometheus", "grafana"}
    for name, service in services.items():
        if "image" in service:
            assert re.fullmatch(r"[\w./-]+:v?\d+\.\d+\.\d+", service["image"]), f"{name}: pin the image version"
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):
                assert (CONFIG / source).exists(), f"{name} mounts {source}, which does not exist"
    collector = services["collector"]
    assert (CONFIG / collector["build"]["context"] / collector["build"]["dockerfile"]).is_file()
    assert {"127.0.0.1:4317:4317", "127.0.0.1:4318:4318", "127.0.0.1:8888:8888"} <= set(collector["ports"])
    assert "ledger:/var/lib/genai-collector/data" in collector["volumes"]
    scrape = yaml.safe_load((CONFIG / "prometheus" / "prometheus.yml").read_text())
    assert scrape["scrape_configs"][0]["static_configs"][0]["targets"] == ["collector:8888"]
    datasources = yaml.safe_load((CONFIG / "grafana/provisioning/datasources/datasources.yaml").read_text())
    assert {d["uid"] for d in datasources["datasources"]} == {"prometheus", "tempo", "jaeger"}


def exposed_metric_names() -> set[str]:
    telemetry = SelfTelemetry()
    names = set()
    for family in PrometheusView(telemetry, CostCounters()).collect():
        names.add(family.name + ("_total" if family.type == "counter" else ""))
    return names


def test_grafana_dashboard_queries_metrics_the_collector_exposes():
    dashboard = json.loads((CONFIG / "grafana" / "genai-cost.json").read_text())
    titles = {panel["title"] for panel in dashboard["panels"]}
    assert {"Spend by model", "Spend by customer (top 10)", "Tokens by type", "Unpriced models",
            "Budget utilization"} <= titles
    exposed = exposed_metric_names()
    for panel in dashboard["panels"]:
        assert panel["datasource"]["uid"] == "prometheus"
        for target in panel["targets"]:
            used = set(re.findall(r"\b(gen_ai_\w+|genai_collector_\w+)", target["expr"]))
            assert used and used <= exposed, f"{panel['title']}: {used - exposed} not exposed"
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids))


DEPLOY = Path(__file__).parent.parent / "deploy"


@pytest.mark.parametrize("variant", ["kubernetes", "kubernetes-postgresql"])
def test_kubernetes_manifests_agree_with_each_other_and_their_config(variant, monkeypatch):
    from collector.config import parse_yaml
    from collector.service import build_service

    manifests = {path.name: list(yaml.safe_load_all(path.read_text())) for path in (DEPLOY / variant).glob("*.yaml")}
    deployment = manifests["deployment.yaml"][0]
    pod = deployment["spec"]["template"]["spec"]
    container = pod["containers"][0]
    secret = manifests["secret.example.yaml"][0]
    config_text = manifests["configmap.yaml"][0]["data"]["config.yaml"]
    env = {item["name"]: item["valueFrom"]["secretKeyRef"] for item in container["env"]}
    for name, ref in env.items():  # every variable comes from the Secret, under a key it has
        assert ref["name"] == secret["metadata"]["name"] and ref["key"] in secret["stringData"], name
        monkeypatch.setenv(name, secret["stringData"][ref["key"]])
    assert set(re.findall(r"\$\{env:([A-Za-z_]+)", config_text)) <= set(env)
    service = build_service(parse_yaml(config_text, "configmap.yaml"))  # validates with the Secret's values

    ports = {port["name"]: port["containerPort"] for port in container["ports"]}
    listened = {server.port for receiver in service.receivers.values() for server in receiver.servers}
    listened |= {extension.port for extension in service.extensions.values()}
    assert set(ports.values()) == listened
    assert container["readinessProbe"]["httpGet"]["port"] == "health"
    assert ports["health"] == service.extensions["health_check"].port
    for document in manifests["service.yaml"]:
        for port in document["spec"]["ports"]:
            assert ports[port["targetPort"]] == port["port"]
    mounts = {mount["name"]: mount["mountPath"] for mount in container["volumeMounts"]}
    assert container["args"][-1] == f"{mounts['config']}/config.yaml"

    if variant == "kubernetes":
        assert deployment["spec"]["replicas"] == 1 and service.workers == 1  # a DuckDB ledger has one writer
        assert str(service.exporters["duckdb"].path.parent) == mounts["ledger"]
        claims = {v["name"]: v.get("persistentVolumeClaim", {}).get("claimName") for v in pod["volumes"]}
        assert claims["ledger"] == manifests["pvc.yaml"][0]["metadata"]["name"]
        return
    assert deployment["spec"]["replicas"] > 1 and service.workers > 1
    assert service.exporters["postgresql"].dsn == secret["stringData"]["postgresql-dsn"]
    requested = float(container["resources"]["requests"]["cpu"])
    assert requested >= service.workers  # a core per worker
    headless = next(d for d in manifests["service.yaml"] if d["spec"].get("clusterIP") == "None")
    gateway = next(d for d in manifests["gateway.yaml"] if d["kind"] == "ConfigMap")
    balancer = yaml.safe_load(gateway["data"]["config.yaml"])["exporters"]["loadbalancing"]
    assert balancer["routing_key"] == "traceID"
    host = balancer["resolver"]["dns"]["hostname"]
    assert host.split(".")[0] == headless["metadata"]["name"]
    assert balancer["resolver"]["dns"]["port"] == ports["otlp-grpc"]
