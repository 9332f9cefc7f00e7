"""``otlp`` exporter: OTLP over gRPC (``Export`` of TraceService, MetricsService, LogsService)."""

from __future__ import annotations

from dataclasses import dataclass

import grpc
from google.rpc import error_details_pb2, status_pb2

from collector.batch import TelemetryBatch
from collector.component import BuildContext
from collector.config import parse_endpoint
from collector.exporters.network import NetworkExporterConfig, PermanentError, QueuedExporter, RetryableError
from collector.schema import Invalid
from collector.signals import Signal

# OTLP/gRPC: these codes are retryable; RESOURCE_EXHAUSTED only when the server sends RetryInfo.
_RETRYABLE = {grpc.StatusCode.CANCELLED, grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.ABORTED,
              grpc.StatusCode.OUT_OF_RANGE, grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DATA_LOSS}


def retry_delay(error: grpc.aio.AioRpcError) -> float | None:
    """The RetryInfo delay in a gRPC error's status details, if the server sent one."""
    for key, value in error.trailing_metadata() or ():
        if key == "grpc-status-details-bin":
            status = status_pb2.Status.FromString(value)
            for detail in status.details:
                if detail.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
                    info = error_details_pb2.RetryInfo()
                    detail.Unpack(info)
                    return info.retry_delay.ToTimedelta().total_seconds()
    return None


@dataclass(frozen=True)
class OtlpGrpcConfig(NetworkExporterConfig):
    """``endpoint`` is host:port (an ``http://`` prefix means plaintext, ``https://`` TLS)."""

    def check(self) -> None:
        try:
            parse_endpoint(self.endpoint)
        except ValueError as exc:
            raise Invalid("endpoint", str(exc)) from None


class OtlpGrpcExporter(QueuedExporter):
    config_class = OtlpGrpcConfig

    def __init__(self, config: OtlpGrpcConfig, context: BuildContext):
        super().__init__(config, context)
        self.channel: grpc.aio.Channel | None = None
        self.methods: dict[Signal, grpc.aio.UnaryUnaryMultiCallable] = {}
        self.metadata = tuple(self.headers.items())

    def _use_tls(self) -> bool:
        endpoint = self.config.endpoint
        if endpoint.startswith("https://"):
            return True
        return not endpoint.startswith("http://") and not self.config.tls.insecure

    async def connect(self) -> None:
        host, port = parse_endpoint(self.config.endpoint)
        target = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        compression = grpc.Compression.Gzip if self.config.compression == "gzip" else grpc.Compression.NoCompression
        options = [("grpc.max_send_message_length", -1), ("grpc.max_receive_message_length", -1)]
        if self._use_tls():
            tls = self.config.tls
            credentials = grpc.ssl_channel_credentials(
                root_certificates=tls.ca_file.read_bytes() if tls.ca_file else None,
                private_key=tls.key_file.read_bytes() if tls.key_file else None,
                certificate_chain=tls.cert_file.read_bytes() if tls.cert_file else None)
            self.channel = grpc.aio.secure_channel(target, credentials, options, compression)
        else:
            self.channel = grpc.aio.insecure_channel(target, options, compression)
        self.methods = {signal: self.channel.unary_unary(signal.grpc_method,
                                                         response_deserializer=signal.spec.response_type.FromString)
                        for signal in Signal}

    async def close(self) -> None:
        if self.channel is not None:
            await self.channel.close()

    async def send(self, batch: TelemetryBatch) -> None:
        try:
            response = await self.methods[batch.signal](batch.serialized(), metadata=self.metadata,
                                                        timeout=self.config.timeout)
        except grpc.aio.AioRpcError as error:
            code = error.code()
            delay = retry_delay(error)
            message = f"{code.name}: {error.details()}"
            if code in _RETRYABLE or (code is grpc.StatusCode.RESOURCE_EXHAUSTED and delay is not None):
                raise RetryableError(message, delay) from None
            raise PermanentError(message) from None
        self.check_partial_success(batch, response)
