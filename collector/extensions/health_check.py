"""``health_check`` extension: ``GET /`` answers 200 while the pipelines run, 503 otherwise."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass

from aiohttp import web

from collector.component import BuildContext, Extension
from collector.http_server import serve
from collector.schema import Endpoint


@dataclass(frozen=True)
class HealthCheckConfig:
    endpoint: Endpoint = ("127.0.0.1", 13133)
    path: str = "/"
    allowed_hosts: tuple[str, ...] = ()  # Host names answered on loopback besides localhost, 127.0.0.1, [::1]


class HealthCheck(Extension):
    config_class = HealthCheckConfig

    def __init__(self, config: HealthCheckConfig, context: BuildContext):
        self.component_id = context.component_id
        self.telemetry = context.telemetry
        self.shared_ports = context.shared_ports
        self.host, self.port = config.endpoint
        self.path = config.path
        self.allowed_hosts = config.allowed_hosts
        self.service = None
        self.runner: web.AppRunner | None = None
        self.started_at = time.time()

    def bind_service(self, service: object) -> None:
        self.service = service

    async def _health(self, request: web.Request) -> web.Response:
        running = bool(self.service and self.service.running)
        body = {"status": "Server available" if running else "Server not available",
                "upSince": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.started_at)),
                "uptime": f"{time.time() - self.started_at:.0f}s",
                "components": self.telemetry.snapshot()}
        return web.Response(status=200 if running else 503, text=json.dumps(body), content_type="application/json")

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get(self.path, self._health)
        self.runner = await serve(app, self.host, self.port, f"extension {self.component_id}",
                                  allowed_hosts=self.allowed_hosts, reuse_port=self.shared_ports)

    async def shutdown(self, timeout: float) -> None:
        if self.runner is not None:
            await self.runner.cleanup()
