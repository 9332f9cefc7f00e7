"""The three OTLP signals and the protobuf types, gRPC methods and HTTP paths of each."""

from __future__ import annotations

import enum
from dataclasses import dataclass

from google.protobuf.message import Message
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2


@dataclass(frozen=True)
class SignalSpec:
    name: str
    request_type: type[Message]
    response_type: type[Message]
    grpc_service: str
    http_path: str
    item_name: str


class Signal(enum.Enum):
    TRACES = SignalSpec(
        "traces",
        trace_service_pb2.ExportTraceServiceRequest,
        trace_service_pb2.ExportTraceServiceResponse,
        "opentelemetry.proto.collector.trace.v1.TraceService",
        "/v1/traces",
        "spans",
    )
    METRICS = SignalSpec(
        "metrics",
        metrics_service_pb2.ExportMetricsServiceRequest,
        metrics_service_pb2.ExportMetricsServiceResponse,
        "opentelemetry.proto.collector.metrics.v1.MetricsService",
        "/v1/metrics",
        "data points",
    )
    LOGS = SignalSpec(
        "logs",
        logs_service_pb2.ExportLogsServiceRequest,
        logs_service_pb2.ExportLogsServiceResponse,
        "opentelemetry.proto.collector.logs.v1.LogsService",
        "/v1/logs",
        "log records",
    )

    @property
    def spec(self) -> SignalSpec:
        return self.value

    @property
    def grpc_method(self) -> str:
        return f"/{self.value.grpc_service}/Export"

    @classmethod
    def from_name(cls, name: str) -> Signal:
        for signal in cls:
            if signal.value.name == name:
                return signal
        raise KeyError(name)


_METRIC_DATA_FIELDS = ("gauge", "sum", "histogram", "exponential_histogram", "summary")


def count_items(signal: Signal, request: Message) -> int:
    """Number of spans, metric data points or log records in an export request."""
    if signal is Signal.TRACES:
        return sum(len(ss.spans) for rs in request.resource_spans for ss in rs.scope_spans)
    if signal is Signal.LOGS:
        return sum(len(sl.log_records) for rl in request.resource_logs for sl in rl.scope_logs)
    total = 0
    for rm in request.resource_metrics:
        for sm in rm.scope_metrics:
            for metric in sm.metrics:
                kind = metric.WhichOneof("data")
                if kind in _METRIC_DATA_FIELDS:
                    total += len(getattr(metric, kind).data_points)
    return total


def top_level(signal: Signal, request: Message):
    """The repeated top-level field of a request (resource_spans, resource_metrics, resource_logs)."""
    if signal is Signal.TRACES:
        return request.resource_spans
    if signal is Signal.METRICS:
        return request.resource_metrics
    return request.resource_logs
