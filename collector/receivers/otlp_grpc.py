"""OTLP/gRPC server: ``Export`` of TraceService, MetricsService and LogsService."""

from __future__ import annotations

import grpc
from google.protobuf import duration_pb2
from google.protobuf.message import DecodeError
from google.rpc import code_pb2, error_details_pb2, status_pb2

from collector.batch import TelemetryBatch
from collector.component import Refused
from collector.errors import StartupError
from collector.receivers.limits import TooManyItems
from collector.receivers.otlp import GrpcProtocol, OtlpReceiver
from collector.signals import Signal


def retry_info_metadata(code: int, message: str, retry_after: float) -> tuple[tuple[str, bytes], ...]:
    """Trailing metadata carrying a google.rpc.Status with RetryInfo, as OTLP asks for."""
    info = error_details_pb2.RetryInfo(retry_delay=duration_pb2.Duration(seconds=int(retry_after),
                                       nanos=int((retry_after % 1) * 1e9)))
    status = status_pb2.Status(code=code, message=message)
    status.details.add().Pack(info)
    return (("grpc-status-details-bin", status.SerializeToString()),)


class GrpcServer:
    def __init__(self, receiver: OtlpReceiver, config: GrpcProtocol):
        self.receiver = receiver
        self.tls = config.tls
        self.host, self.port = config.endpoint
        self.max_message_bytes = config.max_recv_msg_size_mib * 1024 * 1024
        self.server: grpc.aio.Server | None = None

    def _handler(self, signal: Signal):
        receiver = self.receiver

        async def export(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
            headers = receiver.authenticate({k: v for k, v in context.invocation_metadata() or ()
                                             if isinstance(v, str)})
            if headers is None:
                await context.abort(grpc.StatusCode.UNAUTHENTICATED,
                                    "missing or unknown bearer token (metadata authorization: Bearer <token>)")
            try:
                batch = await TelemetryBatch.received(signal, request, headers)
            except DecodeError as exc:
                receiver.note_malformed(signal, "grpc", str(exc), headers)
                await context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"malformed {signal.spec.name} request: {exc}")
            try:
                response = await receiver.deliver(batch)
            except TooManyItems as exc:
                await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
            except Refused as exc:
                message = f"{exc}; retry later"
                status, code = (grpc.StatusCode.RESOURCE_EXHAUSTED, code_pb2.RESOURCE_EXHAUSTED) if exc.exhausted \
                    else (grpc.StatusCode.UNAVAILABLE, code_pb2.UNAVAILABLE)
                await context.abort(status, message, retry_info_metadata(code, message, exc.retry_after))
            return response.SerializeToString()

        return grpc.unary_unary_rpc_method_handler(export)

    async def start(self) -> None:
        self.server = grpc.aio.server(options=[("grpc.max_receive_message_length", self.max_message_bytes),
                                               ("grpc.so_reuseport", int(self.receiver.shared_ports))])
        handlers = {
            signal.spec.grpc_service: grpc.method_handlers_generic_handler(
                signal.spec.grpc_service, {"Export": self._handler(signal)})
            for signal in self.receiver.consumers
        }
        self.server.add_generic_rpc_handlers(tuple(handlers.values()))
        target = f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"
        try:
            if self.tls is None:
                bound = self.server.add_insecure_port(target)
            else:
                credentials = grpc.ssl_server_credentials(
                    [(self.tls.key_file.read_bytes(), self.tls.cert_file.read_bytes())],
                    root_certificates=self.tls.client_ca_file.read_bytes() if self.tls.client_ca_file else None,
                    require_client_auth=self.tls.client_ca_file is not None)
                bound = self.server.add_secure_port(target, credentials)
        except RuntimeError:
            bound = 0
        if not bound:
            raise StartupError(f"receiver {self.receiver.component_id} (grpc): cannot listen on {target}: "
                               "address already in use or not available")
        await self.server.start()

    async def stop(self, timeout: float) -> None:
        if self.server is not None:
            await self.server.stop(grace=min(timeout, 5.0))
