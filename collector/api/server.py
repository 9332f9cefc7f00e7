"""``cost_api`` extension: the query API (and, later, the dashboard) over the collector's ledger."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from collector import __version__, native
from collector.api import openapi
from collector.api.budgets import BudgetRoutes
from collector.api.metrics import CostCounters, PrometheusView
from collector.api.routes import CostRoutes, error_response, json_response
from collector.auth import ServerTls, bearer, find_token
from collector.component import BuildContext, Extension
from collector.errors import LedgerError, RequestError
from collector.exporters.ledger_writer import LedgerExporter, ledger_of
from collector.http_server import is_loopback, serve
from collector.schema import Endpoint, Invalid, Parse
from collector.storage.queries import LedgerQueries
from collector.storage.schema import TOKEN_COLUMNS
from pricing_catalog.explain import explain
from processors.genai_cost import usage_of_row

_ADMIN_METHODS = ("POST", "PUT", "DELETE", "PATCH")
# what an app calls around an LLM call: check tokens suffice
APP_PATHS = frozenset({"/api/v1/budgets/check", "/api/v1/budgets/reserve"})
APP_PREFIXES = ("/api/v1/budgets/reservations/",)


def app_facing(path: str) -> bool:
    return path in APP_PATHS or path.startswith(APP_PREFIXES)


def access_control(tokens: dict[str, str], public: bool, open_to_all: bool):
    """Who may do what. Reads need a read or admin token unless ``public``; changes need an admin token;
    the app-facing endpoints (check, reserve, release) take any token (reserving always needs one), and a
    check token may call only those. ``open_to_all`` (no tokens, and the API on loopback): every request
    is served, as on a developer's machine. The page itself and its
    static files are always served (the page sends the token it was given in its URL fragment)."""
    @web.middleware
    async def middleware(request: web.Request, handler) -> web.StreamResponse:
        path = request.path
        if path == "/" or path.startswith("/static/") or open_to_all:
            return await handler(request)
        role = find_token(bearer({k.lower(): v for k, v in request.headers.items()}), tokens)
        app_call = app_facing(path)
        changes = request.method in _ADMIN_METHODS
        needs_admin = changes and not app_call
        if role == "check" and not app_call:
            return error_response(403, "forbidden", "a check token may only call "
                                  f"{', '.join(sorted(APP_PATHS))} and {APP_PREFIXES[0]}{{id}}")
        if role is None and (changes or not public):
            return error_response(401, "unauthenticated", "missing or unknown bearer token "
                                  "(Authorization: Bearer <token>)", {"WWW-Authenticate": "Bearer"})
        if needs_admin and role != "admin":
            return error_response(403, "forbidden", "this needs an admin token")
        return await handler(request)
    return middleware


@web.middleware
async def json_errors(request: web.Request, handler) -> web.StreamResponse:
    """The collector's errors (collector.errors) as ``{"error": {"code", "message"}}`` with their status."""
    try:
        return await handler(request)
    except RequestError as exc:
        return error_response(exc.http_status, exc.code, str(exc))
    except LedgerError as exc:
        return error_response(exc.http_status, exc.code, str(exc), {"Retry-After": "5"})
    except web.HTTPException as exc:
        if request.path.startswith("/api/"):
            return error_response(exc.status, "not_found" if exc.status == 404 else "http_error", exc.reason)
        raise


STATIC = Path(__file__).parent / "static"


def _tokens(value: Any) -> tuple[str, ...]:
    """A token list; an empty entry (an unset ``${env:...}``) is skipped, a short one refused."""
    if not isinstance(value, list) or not all(isinstance(t, str) for t in value):
        raise ValueError("expected a list of strings")
    for index, token in enumerate(value):
        if token and len(token) < 16:
            raise Invalid((index,), "a token needs at least 16 characters")
    return tuple(token for token in value if token)


Tokens = Annotated[tuple[str, ...], Parse(_tokens)]


@dataclass(frozen=True)
class ApiAuth:
    read_tokens: Tokens = ()
    admin_tokens: Tokens = ()
    check_tokens: Tokens = ()  # may call /api/v1/budgets/check only: give these to apps

    def roles(self) -> dict[str, str]:
        """token → read | admin | check."""
        return {**dict.fromkeys(self.check_tokens, "check"), **dict.fromkeys(self.read_tokens, "read"),
                **dict.fromkeys(self.admin_tokens, "admin")}


@dataclass(frozen=True)
class CostApiConfig:
    endpoint: Endpoint = ("127.0.0.1", 8888)
    trace_url_template: str = ""  # links trace ids to your trace UI: http://jaeger:16686/trace/{trace_id}
    auth: ApiAuth = ApiAuth()
    public: bool = False  # reads without a token
    tls: ServerTls | None = None
    allowed_hosts: tuple[str, ...] = ()  # Host names answered on loopback besides localhost, 127.0.0.1, [::1]
    ledger: str | None = None  # the ledger exporter's id; needed only when the config has two

    def check(self) -> None:
        if self.trace_url_template and "{trace_id}" not in self.trace_url_template:
            raise Invalid("trace_url_template", "must contain {trace_id}",
                          "e.g. http://127.0.0.1:16686/trace/{trace_id}")
        host, port = self.endpoint
        if not is_loopback(host) and not self.auth.read_tokens and not self.auth.admin_tokens and not self.public:
            raise Invalid("endpoint", f"the API would listen on {host}:{port}, beyond this machine, with no token: "
                          "anyone who reaches it could read every customer's spend and change budgets",
                          "set auth.admin_tokens and auth.read_tokens (the default config takes them from "
                          "GENAI_COLLECTOR_ADMIN_TOKEN and GENAI_COLLECTOR_READ_TOKEN), or public: true to serve "
                          "reads without a token (changes still need an admin token), or listen on 127.0.0.1")


class CostApi(Extension):
    config_class = CostApiConfig

    def __init__(self, config: CostApiConfig, context: BuildContext):
        self.component_id = context.component_id
        self.telemetry = context.telemetry
        self.shared_ports = context.shared_ports
        self.costs = CostCounters()
        self.host, self.port = config.endpoint
        self.trace_url_template = config.trace_url_template
        self.tokens = config.auth.roles()
        self.public = config.public
        self.tls = config.tls
        self.allowed_hosts = config.allowed_hosts
        self.ledger_id = config.ledger
        self.ledger: LedgerExporter | None = None
        self.budgets = None
        self.pricing = None  # the genai_cost processor, whose price snapshot the dashboard names
        self.runner: web.AppRunner | None = None

    def bind_service(self, service) -> None:
        self.ledger = ledger_of(service, f"extension {self.component_id}", self.ledger_id)
        self.service = service
        self.ledger.committed.append(self.costs.on_commit)
        from processors.genai_budget import GenAIBudget
        from processors.genai_cost import GenAICost
        self.budgets = next((p for p in service.processors if isinstance(p, GenAIBudget)), None)
        self.pricing = next((p for p in service.processors if isinstance(p, GenAICost)), None)

    def queries(self) -> contextlib.AbstractContextManager[LedgerQueries]:
        if self.ledger is None or self.ledger.store is None:
            raise LedgerError("the ledger is not open")
        return self.ledger.store.queries()

    def app(self) -> web.Application:
        open_to_all = not self.tokens and is_loopback(self.host)
        app = web.Application(middlewares=[json_errors, access_control(self.tokens, self.public, open_to_all)])
        CostRoutes(self.queries).add_to(app)
        if self.budgets is not None:
            BudgetRoutes(self.budgets).add_to(app)
        app.router.add_get("/api/v1/calls/{trace_id}/{span_id}/cost", self._explain)
        app.router.add_get("/api/v1/openapi.json", _openapi)
        app.router.add_get("/api/v1/info", self._info)
        app.router.add_get("/api/v1/diagnostics", self._diagnostics)
        app.router.add_get("/", _dashboard)
        app.router.add_static("/static/", STATIC)
        registry = CollectorRegistry(auto_describe=False)
        registry.register(PrometheusView(self.telemetry, self.costs, self._webhook_failures,
                                         self.budgets.statuses if self.budgets is not None else list))

        async def metrics(request: web.Request) -> web.Response:
            return web.Response(body=generate_latest(registry), headers={"Content-Type": CONTENT_TYPE_LATEST})

        app.router.add_get("/metrics", metrics)
        return app

    async def _info(self, request: web.Request) -> web.Response:
        catalog = self.pricing.catalog if self.pricing is not None else None
        return json_response({"version": __version__, "hot_path": native.HOT_PATH,
                              "dimensions": list(self.ledger.store.dimensions),
                              "ledger": self.ledger.store.backend,
                              "trace_url_template": self.trace_url_template,
                              "budgets": self.budgets is not None,
                              "price_snapshot": catalog.snapshot_id if catalog else None,
                              "currency": catalog.currency if catalog else None})

    async def _explain(self, request: web.Request) -> web.Response:
        """How a stored call's cost is made up, priced again by genai_cost's catalog at the call's start time,
        beside what the ledger holds (its cost, snapshot and reported cost)."""
        trace_id, span_id = request.match_info["trace_id"], request.match_info["span_id"]

        def collect() -> dict:
            with self.queries() as queries:
                call = queries.call(trace_id, span_id)
            body: dict[str, Any] = {"call": call, "trace_url": self.trace_url_template.format(trace_id=trace_id)
                                    if self.trace_url_template else None}
            if self.pricing is None:
                body["explanation"] = {"priced": False, "reason": "this collector has no genai_cost processor"}
                return body
            start = dt.datetime.fromisoformat(call["start_time"].removesuffix("Z")).replace(tzinfo=dt.UTC)
            tokens = {column: call[column] for column in TOKEN_COLUMNS}
            body["explanation"] = explanation = explain(
                self.pricing.catalog, call["provider"], call["model"] or "",
                int(start.timestamp() * 1e6) * 1000, call["tier"] or "standard", usage_of_row(tokens))
            body["matches_ledger"] = explanation.get("total") == call["cost"] \
                and explanation.get("snapshot") == call["snapshot"]
            return body
        return json_response(await asyncio.to_thread(collect))

    async def _diagnostics(self, request: web.Request) -> web.Response:
        """Everything ``genai-collector doctor`` checks on a running collector."""
        def collect() -> dict:
            return self.ledger.store.diagnostics(self.budgets.statuses() if self.budgets is not None else [])
        body = await asyncio.to_thread(collect)
        body["exporters"] = {
            exporter_id: {"last_success": getattr(exporter, "last_success", None) if not isinstance(
                exporter, LedgerExporter) else exporter.last_write,
                "last_error": getattr(exporter, "last_error", None),
                "queue": self.telemetry.snapshot().get(exporter_id, {}).get("queue_size"),
                "disk_queue_bytes": self.telemetry.snapshot().get(exporter_id, {}).get("disk_queue_bytes")}
            for exporter_id, exporter in self.service.exporters.items()}
        body["telemetry"] = self.telemetry.snapshot()
        return json_response(body)

    def _webhook_failures(self) -> int:
        webhook = self.budgets.webhook if self.budgets is not None else None
        return webhook.failures if webhook is not None else 0

    async def start(self) -> None:
        self.runner = await serve(self.app(), self.host, self.port, f"extension {self.component_id}",
                                  ssl_context=self.tls.ssl_context() if self.tls else None,
                                  allowed_hosts=self.allowed_hosts, reuse_port=self.shared_ports)

    async def shutdown(self, timeout: float) -> None:
        if self.runner is not None:
            await self.runner.cleanup()


async def _dashboard(request: web.Request) -> web.FileResponse:
    return web.FileResponse(STATIC / "index.html")


async def _openapi(request: web.Request) -> web.Response:
    return json_response(openapi.document())
