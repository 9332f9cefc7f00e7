"""``otlp`` receiver: OTLP over gRPC and HTTP, each optional (``protocols.grpc``, ``protocols.http``)."""

from __future__ import annotations

from collections.abc import Mapping

from google.protobuf.message import Message

from collector import log
from collector.auth import BearerAuth, request_headers
from collector.batch import TelemetryBatch
from collector.component import BuildContext, Consumer, Receiver, Refused
from collector.config import Section
from collector.receivers.limits import Limits
from collector.signals import Signal

DEFAULT_GRPC_ENDPOINT = "127.0.0.1:4317"
DEFAULT_HTTP_ENDPOINT = "127.0.0.1:4318"
_LOG = log.get("receiver.otlp")


class OtlpReceiver(Receiver):
    def __init__(self, context: BuildContext, auth: BearerAuth | None = None, limits: Limits | None = None):
        self.component_id = context.component_id
        self.limits = limits or Limits()
        self.context = context
        self.auth = auth
        self.telemetry = context.telemetry
        self.consumers: dict[Signal, Consumer] = {}
        self.servers: list = []

    @classmethod
    def from_config(cls, section: Section, context: BuildContext) -> OtlpReceiver:
        from collector.receivers.otlp_grpc import GrpcServer
        from collector.receivers.otlp_http import HttpServer

        receiver = cls(context, BearerAuth.from_section(section.section("auth")),
                       Limits.from_section(section.section("limits")))
        protocols = section.section("protocols")
        if not protocols.keys():
            raise protocols.error(None, "enable at least one protocol",
                                  "add protocols: {grpc: {endpoint: 127.0.0.1:4317}, http: {endpoint: 127.0.0.1:4318}}")
        if protocols.has("grpc"):
            receiver.servers.append(GrpcServer.from_config(protocols.section("grpc"), receiver))
        if protocols.has("http"):
            receiver.servers.append(HttpServer.from_config(protocols.section("http"), receiver))
        protocols.finish()
        return receiver

    def authenticate(self, raw_headers: Mapping[str, str]) -> dict[str, str] | None:
        """The headers a batch carries, or None when auth is on and the request has no valid token."""
        lowered = {k.lower(): v for k, v in raw_headers.items()}
        if self.auth is None:
            return request_headers(lowered, None)
        tenant = self.auth.tenant(lowered)
        if tenant is None:
            self.telemetry.add(self.component_id, "all", "unauthenticated", 1)
            return None
        return request_headers(lowered, tenant)

    def attach(self, signal: Signal, consumer: Consumer) -> None:
        self.consumers[signal] = consumer

    async def deliver(self, batch: TelemetryBatch) -> Message:
        """Hand a decoded batch to its pipeline; returns the Export response once accepted (with
        ``partial_success`` for spans over the limits). Raises Refused, or TooManyItems for a request
        over max_spans_per_request."""
        signal = batch.signal.spec.name
        items = batch.item_count
        self.telemetry.add(self.component_id, signal, "received", items)
        response = batch.signal.spec.response_type()
        dropped, reason = self.limits.apply(batch)
        if dropped:
            self.telemetry.add(self.component_id, signal, "rejected", dropped)
            response.partial_success.rejected_spans = dropped
            response.partial_success.error_message = reason
            items -= dropped
        try:
            await self.consumers[batch.signal].consume(batch)
        except Refused as exc:
            self.telemetry.add(self.component_id, signal, "refused", items)
            _LOG.warning("refused data", extra={"receiver": self.component_id, "signal": signal,
                                                "items": items, "reason": str(exc)})
            raise
        self.telemetry.add(self.component_id, signal, "accepted", items)
        return response

    def note_malformed(self, signal: Signal, transport: str, reason: str, headers: Mapping[str, str]) -> None:
        self.telemetry.add(self.component_id, signal.spec.name, "malformed", 1)
        _LOG.info("malformed request", extra={"receiver": self.component_id, "transport": transport,
                                              "signal": signal.spec.name, "reason": reason,
                                              "user_agent": headers.get("user-agent", "")})

    async def start(self) -> None:
        for server in self.servers:
            await server.start()

    async def shutdown(self, timeout: float) -> None:
        for server in self.servers:
            await server.stop(timeout)
