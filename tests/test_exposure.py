"""Secure by default: no anonymous spend or budget changes beyond loopback, no DNS rebinding on loopback."""

from __future__ import annotations

import http.client
import json
import os
import subprocess
import sys

from collector.config import default_config_path
from collector.config_builder import ConfigBuilder
from tests.conftest import CollectorProcess, on_ports
from tests.test_receiver_errors import good_request, post

READ, ADMIN, CHECK = "read-token-0123456789", "admin-token-0123456789", "check-token-0123456789"
PROTOBUF = {"Content-Type": "application/x-protobuf"}


def ask(port: int, path: str, method: str = "GET", token: str | None = None, host: str | None = None,
        body: dict | None = None) -> tuple[int, dict]:
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    if host:
        headers["Host"] = host
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request(method, path, body=json.dumps(body) if body is not None else None, headers=headers)
        reply = conn.getresponse()
        content = reply.read()
        return reply.status, json.loads(content) if content and reply.getheader("Content-Type", "").startswith(
            "application/json") else {}
    finally:
        conn.close()


def default_config_on(ports) -> str:
    """The embedded default config (what the Docker image runs), on this test's free ports."""
    text = default_config_path().read_text()
    for default, name in ((4317, "grpc"), (4318, "http"), (13133, "health"), (8888, "api")):
        assert f":{default}\n" in text
        text = text.replace(f":{default}\n", f":{ports[name]}\n")
    return text


def docker_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GENAI_COLLECTOR_")}
    return {**env, "GENAI_COLLECTOR_HOST": "0.0.0.0", **extra}


def test_the_docker_start_without_tokens_refuses_with_the_keys_to_set(ports, tmp_path):
    config = tmp_path / "config.yaml"
    config.write_text(default_config_on(ports))
    result = subprocess.run([sys.executable, "-m", "collector", "run", "--config", str(config)], cwd=tmp_path,
                            capture_output=True, text=True, timeout=60, env=docker_env())
    assert result.returncode == 1
    assert f"the API would listen on 0.0.0.0:{ports['api']}, beyond this machine, with no token" in result.stderr
    assert "GENAI_COLLECTOR_ADMIN_TOKEN" in result.stderr and "public: true" in result.stderr


def test_the_docker_start_with_tokens_from_the_environment_needs_them(ports, tmp_path):
    workdir = tmp_path / "run"
    workdir.mkdir()
    process = CollectorProcess(workdir, default_config_on(ports),
                               docker_env(GENAI_COLLECTOR_READ_TOKEN=READ, GENAI_COLLECTOR_ADMIN_TOKEN=ADMIN))
    process.start(ports["health"])
    try:
        assert ask(ports["api"], "/api/v1/costs")[0] == 401
        assert ask(ports["api"], "/api/v1/costs", token=READ)[0] == 200
        assert ask(ports["api"], "/api/v1/costs", token=ADMIN)[0] == 200
        assert "receiver accepts data from the network without auth" in process.logs()
    finally:
        process.stop()


def loopback_config(ports, tmp_path, **api_settings) -> ConfigBuilder:
    return (on_ports(ports)
            .processor("genai_budget", budgets=[{"id": "all", "limit": 10, "period": "daily"}])
            .exporter("duckdb", path=str(tmp_path / "costs.duckdb"))
            .cost_api(ports["api"], **api_settings)
            .pipeline("traces", processors=["genai_normalize", "genai_cost", "genai_budget"], exporters=["duckdb"]))


def test_loopback_listeners_answer_only_loopback_names(ports, collector, tmp_path):
    config = loopback_config(ports, tmp_path, allowed_hosts=["collector.local"])
    collector(config, ports["health"])
    for name in ("localhost", "127.0.0.1", "[::1]", "collector.local"):
        assert ask(ports["api"], "/api/v1/info", host=f"{name}:{ports['api']}")[0] == 200, name
    status, body = ask(ports["api"], "/api/v1/info", host=f"evil.example:{ports['api']}")
    assert status == 403 and body["error"]["code"] == "host_not_allowed"
    assert "allowed_hosts" in body["error"]["message"]
    assert ask(ports["health"], "/", host="evil.example")[0] == 403
    headers = {**PROTOBUF, "Host": f"evil.example:{ports['http']}"}
    assert post(ports["http"], good_request(), headers)[0] == 403  # spans posted by a web page: refused
    assert post(ports["http"], good_request(), {**PROTOBUF, "Host": f"localhost:{ports['http']}"})[0] == 200


def test_public_beyond_loopback_serves_reads_but_never_anonymous_changes(ports, collector, tmp_path):
    config = loopback_config(ports, tmp_path, public=True)
    config.sections["extensions"]["cost_api"]["endpoint"] = f"0.0.0.0:{ports['api']}"
    collector(config, ports["health"])
    assert ask(ports["api"], "/api/v1/costs")[0] == 200
    status, _ = ask(ports["api"], "/api/v1/budgets", "POST", body={"id": "b", "limit": 1, "period": "daily"})
    assert status == 401
    assert ask(ports["api"], "/api/v1/budgets/check?estimated_cost=0.01")[0] == 200  # a read
    assert ask(ports["api"], "/api/v1/budgets/reserve", "POST", body={"estimated_cost": "1"})[0] == 401  # a hold


def test_a_check_token_checks_budgets_and_reads_nothing_else(ports, collector, tmp_path):
    auth = {"read_tokens": [READ], "admin_tokens": [ADMIN], "check_tokens": [CHECK]}
    collector(loopback_config(ports, tmp_path, auth=auth), ports["health"])
    status, body = ask(ports["api"], "/api/v1/budgets/check?estimated_cost=0.01", token=CHECK)
    assert status == 200 and body["allowed"] is True
    status, body = ask(ports["api"], "/api/v1/costs", token=CHECK)
    assert status == 403 and "a check token may only call /api/v1/budgets/check" in body["error"]["message"]
    assert ask(ports["api"], "/api/v1/budgets", "POST", token=CHECK, body={"id": "b", "limit": 1})[0] == 403
    status, held = ask(ports["api"], "/api/v1/budgets/reserve", "POST", token=CHECK, body={"estimated_cost": "0.01"})
    assert status == 200 and held["allowed"] is True
    assert ask(ports["api"], f"/api/v1/budgets/reservations/{held['reservation']}", "DELETE", token=CHECK)[0] == 204
    assert ask(ports["api"], "/api/v1/budgets/check?estimated_cost=0.01")[0] == 401  # tokens on: none is no one


def test_doctor_shows_each_listener_and_warns_of_a_receiver_open_to_the_network(ports, tmp_path):
    config = tmp_path / "open.yaml"
    config.write_text(ConfigBuilder().otlp(grpc=ports["grpc"], http=ports["http"], host="0.0.0.0")
                      .health_check(ports["health"]).pipeline("traces", exporters=["debug"]).yaml())
    result = subprocess.run([sys.executable, "-m", "collector", "doctor", "--config", str(config)], cwd=tmp_path,
                            capture_output=True, text=True, timeout=60)
    assert f"0.0.0.0:{ports['http']}" in result.stdout and "network" in result.stdout
    assert "WARN  receiver otlp (http) accepts data from the network without auth" in result.stdout
    assert f"127.0.0.1:{ports['health']}" in result.stdout and "loopback" in result.stdout
