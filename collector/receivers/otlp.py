"""``otlp`` receiver: OTLP over gRPC and HTTP, each optional (``protocols.grpc``, ``protocols.http``)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Annotated

from google.protobuf.message import Message

from collector import log
from collector.auth import BearerAuth, ServerTls, request_headers
from collector.batch import TelemetryBatch
from collector.component import BuildContext, Consumer, Receiver, Refused
from collector.http_server import is_loopback
from collector.receivers.limits import Limits
from collector.schema import AtLeast, Endpoint, Invalid, Size
from collector.signals import Signal

_LOG = log.get("receiver.otlp")


@dataclass(frozen=True)
class GrpcProtocol:
    endpoint: Endpoint = ("127.0.0.1", 4317)
    max_recv_msg_size_mib: Annotated[int, AtLeast(1)] = 4
    tls: ServerTls | None = None


@dataclass(frozen=True)
class HttpProtocol:
    endpoint: Endpoint = ("127.0.0.1", 4318)
    max_request_body_size: Size = 20 * 1024 * 1024  # decompressed
    tls: ServerTls | None = None
    allowed_hosts: tuple[str, ...] = ()  # Host names answered on loopback besides localhost, 127.0.0.1, [::1]


@dataclass(frozen=True)
class Protocols:
    grpc: GrpcProtocol | None = None
    http: HttpProtocol | None = None


@dataclass(frozen=True)
class OtlpReceiverConfig:
    protocols: Protocols = Protocols()
    auth: BearerAuth = field(default_factory=BearerAuth)
    limits: Limits = field(default_factory=Limits)

    def check(self) -> None:
        if self.protocols.grpc is None and self.protocols.http is None:
            raise Invalid("protocols", "enable at least one protocol",
                          "add protocols: {grpc: {endpoint: 127.0.0.1:4317}, http: {endpoint: 127.0.0.1:4318}}")


class OtlpReceiver(Receiver):
    config_class = OtlpReceiverConfig

    def __init__(self, config: OtlpReceiverConfig, context: BuildContext):
        from collector.receivers.otlp_grpc import GrpcServer
        from collector.receivers.otlp_http import HttpServer

        self.component_id = context.component_id
        self.limits = config.limits
        self.auth = config.auth if config.auth.enabled else None
        self.telemetry = context.telemetry
        self.shared_ports = context.shared_ports
        self.consumers: dict[Signal, Consumer] = {}
        self.servers: list = []
        if config.protocols.grpc is not None:
            self.servers.append(GrpcServer(self, config.protocols.grpc))
        if config.protocols.http is not None:
            self.servers.append(HttpServer(self, config.protocols.http))

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
        exposed = [f"{server.host}:{server.port}" for server in self.servers if not is_loopback(server.host)]
        if exposed and self.auth is None:
            _LOG.warning("receiver accepts data from the network without auth", extra={
                "receiver": self.component_id, "endpoints": exposed,
                "fix": "add auth.bearer_tokens (clients then send Authorization: Bearer <token>), or listen on "
                       "127.0.0.1; behind a cluster network policy this can be what you want"})
        for server in self.servers:
            await server.start()

    async def shutdown(self, timeout: float) -> None:
        for server in self.servers:
            await server.stop(timeout)
