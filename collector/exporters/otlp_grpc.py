"""``otlp`` exporter: OTLP over gRPC (``Export`` of TraceService, MetricsService, LogsService)."""

from __future__ import annotations

import grpc
from google.rpc import error_details_pb2, status_pb2

from collector.batch import TelemetryBatch
from collector.component import BuildContext
from collector.config import Section, parse_endpoint
from collector.exporters.network import ConnectionSettings, PermanentError, QueuedExporter, RetryableError
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


class OtlpGrpcExporter(QueuedExporter):
    """Config: ``endpoint`` (host:port), ``headers``, ``tls``, ``compression``, ``timeout``,
    ``sending_queue``, ``retry_on_failure``."""

    def __init__(self, context: BuildContext, connection: ConnectionSettings, **queue_settings):
        super().__init__(context, **queue_settings)
        self.connection = connection
        self.channel: grpc.aio.Channel | None = None
        self.methods: dict[Signal, grpc.aio.UnaryUnaryMultiCallable] = {}
        self.metadata = tuple(connection.headers.items())

    @classmethod
    def from_config(cls, section: Section, context: BuildContext) -> OtlpGrpcExporter:
        connection = ConnectionSettings.from_section(section, context)
        try:
            parse_endpoint(connection.endpoint)
        except ValueError as exc:
            raise section.error("endpoint", str(exc)) from None
        return cls(context, connection, **cls.read_queue_settings(section, context))

    def _use_tls(self) -> bool:
        endpoint = self.connection.endpoint
        if endpoint.startswith("https://"):
            return True
        return not endpoint.startswith("http://") and not self.connection.tls.insecure

    async def connect(self) -> None:
        host, port = parse_endpoint(self.connection.endpoint)
        target = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        compression = grpc.Compression.Gzip if self.connection.compression == "gzip" else grpc.Compression.NoCompression
        options = [("grpc.max_send_message_length", -1), ("grpc.max_receive_message_length", -1)]
        if self._use_tls():
            tls = self.connection.tls
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
                                                        timeout=self.connection.timeout)
        except grpc.aio.AioRpcError as error:
            code = error.code()
            delay = retry_delay(error)
            message = f"{code.name}: {error.details()}"
            if code in _RETRYABLE or (code is grpc.StatusCode.RESOURCE_EXHAUSTED and delay is not None):
                raise RetryableError(message, delay) from None
            raise PermanentError(message) from None
        self.check_partial_success(batch, response)
