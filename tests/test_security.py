"""Receiver bearer tokens and tenants, TLS and mTLS, API read/admin tokens."""

from __future__ import annotations

import json
import ssl
import urllib.error
import urllib.request

import grpc
import pytest
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from collector.config_builder import ConfigBuilder
from collector.signals import Signal
from tests.test_ledger import GPT4O
from tests.test_receiver_errors import good_request, post
from tests.tls_certs import make_certificates

ACME = "acme-token-0123456789"
GLOBEX = "globex-token-0123456789"
READ, ADMIN = "read-token-0123456789", "admin-token-0123456789"


def secured_config(ports, tmp_path, tls: dict | None = None, public: bool = False,
                   api_tls: dict | None = None) -> ConfigBuilder:
    server_tls = {"tls": {"cert_file": str(tls["server_cert"]), "key_file": str(tls["server_key"]),
                          "client_ca_file": str(tls["ca"])}} if tls else {}
    tokens = [{"token": "${env:TOKEN_ACME}", "tenant": "acme"}, {"token": "${env:TOKEN_GLOBEX}", "tenant": "globex"}]
    api_settings = {"auth": {"read_tokens": ["${env:API_READ}"], "admin_tokens": ["${env:API_ADMIN}"]},
                    "public": public, **({"tls": api_tls} if api_tls else {})}
    return (ConfigBuilder().otlp(grpc=ports["grpc"], http=ports["http"], grpc_settings=server_tls,
                                 http_settings=server_tls, auth={"bearer_tokens": tokens})
            .processor("genai_attribution", customer=["span.customer.id"], trust_client_attribution=False)
            .exporter("duckdb", path=str(tmp_path / "s.duckdb"), flush_interval="20ms")
            .health_check(ports["health"]).cost_api(ports["api"], **api_settings)
            .pipeline("traces", processors=["genai_normalize", "genai_cost", "genai_attribution"],
                      exporters=["duckdb"]))


ENV = {"TOKEN_ACME": ACME, "TOKEN_GLOBEX": GLOBEX, "API_READ": READ, "API_ADMIN": ADMIN}


def api(ports, path: str, token: str | None = None, method: str = "GET", body: dict | None = None,
        context: ssl.SSLContext | None = None):
    request = urllib.request.Request(f"http://127.0.0.1:{ports['api']}{path}", method=method,
                                     data=json.dumps(body).encode() if body else None)
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=10) as reply:
            return reply.status, json.loads(reply.read() or b"{}")
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"{}")


def test_receivers_need_a_token_and_the_tenant_is_the_customer(ports, collector, tmp_path):
    collector(secured_config(ports, tmp_path), ports["health"], env=ENV)
    status, _, _, headers = post(ports["http"], good_request(), {"Content-Type": "application/x-protobuf"})
    assert status == 401 and headers["WWW-Authenticate"] == "Bearer"
    status, *_ = post(ports["http"], good_request(), {"Content-Type": "application/x-protobuf",
                                                      "Authorization": "Bearer wrong-token-0123456789"})
    assert status == 401
    with grpc.insecure_channel(f"127.0.0.1:{ports['grpc']}") as channel:
        with pytest.raises(grpc.RpcError) as error:
            channel.unary_unary(Signal.TRACES.grpc_method)(good_request(), timeout=5)
        assert error.value.code() == grpc.StatusCode.UNAUTHENTICATED

    # acme's token, with spans claiming to be globex's: booked to acme
    provider = TracerProvider(resource=Resource.create({"service.name": "shop"}))
    exporter = OTLPSpanExporter(endpoint=f"127.0.0.1:{ports['grpc']}", insecure=True,
                                headers={"authorization": f"Bearer {ACME}"})
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("tests.security")
    for _ in range(3):
        tracer.start_span("chat gpt-4o", attributes={**GPT4O, "customer.id": "globex"}).end()
    provider.shutdown()
    status, costs = api(ports, "/api/v1/costs?from=1d&group_by=customer", READ)
    assert status == 200
    assert [(r["customer"], r["calls"]) for r in costs["series"]] == [("acme", 3)]


def test_api_tokens_read_and_admin(ports, collector, tmp_path):
    collector(secured_config(ports, tmp_path), ports["health"], env=ENV)
    assert api(ports, "/api/v1/costs")[0] == 401
    assert api(ports, "/api/v1/unpriced", "not-a-token-0123456789")[0] == 401
    assert api(ports, "/api/v1/costs", READ)[0] == 200
    assert api(ports, "/api/v1/costs", ADMIN)[0] == 200
    with urllib.request.urlopen(f"http://127.0.0.1:{ports['api']}/", timeout=5) as page:
        assert page.status == 200  # the page shell; its data calls carry the token
    request = urllib.request.Request(f"http://127.0.0.1:{ports['api']}/metrics")
    with pytest.raises(urllib.error.HTTPError) as error:
        urllib.request.urlopen(request, timeout=5)
    assert error.value.code == 401


def test_public_api_reads_without_a_token(ports, collector, tmp_path):
    collector(secured_config(ports, tmp_path, public=True), ports["health"], env=ENV)
    assert api(ports, "/api/v1/costs")[0] == 200


def test_receivers_over_mtls(ports, collector, tmp_path):
    certs = make_certificates(tmp_path)
    collector(secured_config(ports, tmp_path, tls=certs), ports["health"], env=ENV)
    provider = TracerProvider()
    memory = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    provider.get_tracer("t").start_span("chat gpt-4o", attributes=GPT4O).end()
    spans = memory.get_finished_spans()

    credentials = grpc.ssl_channel_credentials(certs["ca"].read_bytes(), certs["client_key"].read_bytes(),
                                               certs["client_cert"].read_bytes())
    exporter = OTLPSpanExporter(endpoint=f"localhost:{ports['grpc']}", credentials=credentials,
                                headers={"authorization": f"Bearer {ACME}"}, timeout=5)
    assert exporter.export(spans) == SpanExportResult.SUCCESS
    without_client_cert = OTLPSpanExporter(endpoint=f"localhost:{ports['grpc']}", timeout=3,
                                           credentials=grpc.ssl_channel_credentials(certs["ca"].read_bytes()),
                                           headers={"authorization": f"Bearer {ACME}"})
    assert without_client_cert.export(spans) == SpanExportResult.FAILURE

    context = ssl.create_default_context(cafile=str(certs["ca"]))
    context.load_cert_chain(certs["client_cert"], certs["client_key"])
    request = urllib.request.Request(f"https://localhost:{ports['http']}/v1/traces", data=good_request(),
                                     headers={"Content-Type": "application/x-protobuf",
                                              "Authorization": f"Bearer {GLOBEX}"})
    with urllib.request.urlopen(request, context=context, timeout=5) as reply:
        assert reply.status == 200
    bare = ssl.create_default_context(cafile=str(certs["ca"]))
    with pytest.raises((ssl.SSLError, urllib.error.URLError, ConnectionError)):
        urllib.request.urlopen(request, context=bare, timeout=5)


def test_api_over_tls(ports, collector, tmp_path):
    certs = make_certificates(tmp_path)
    config = secured_config(ports, tmp_path, public=True,
                            api_tls={"cert_file": str(certs["server_cert"]), "key_file": str(certs["server_key"])})
    collector(config, ports["health"], env=ENV)
    context = ssl.create_default_context(cafile=str(certs["ca"]))
    with urllib.request.urlopen(f"https://localhost:{ports['api']}/api/v1/info", context=context, timeout=5) as reply:
        assert json.loads(reply.read())["version"]
    with pytest.raises((urllib.error.URLError, ConnectionError)):  # plain HTTP to the TLS port
        urllib.request.urlopen(f"http://127.0.0.1:{ports['api']}/api/v1/info", timeout=5)
