"""``genai_metrics``: priced spans → OTLP metrics in the metrics pipelines, like an OpenTelemetry connector.

Every ``interval`` it emits cumulative ``gen_ai.client.cost`` (a monotonic sum, unit = the currency)
and the semconv histogram ``gen_ai.client.token.usage`` (``gen_ai.token.type`` input / output), with
``gen_ai.operation.name``, ``gen_ai.provider.name``, ``gen_ai.request.model``,
``gen_ai.response.model`` and the attribution dimensions as attributes. Put it before any sampling:
it sees every call, so the totals stay exact when traces are sampled later.
"""

from __future__ import annotations

import asyncio
import bisect
import time
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass

from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.metrics.v1 import metrics_pb2

from collector import __version__, attributes, log
from collector.batch import TelemetryBatch
from collector.component import BuildContext, Processor
from collector.schema import Duration
from collector.signals import Signal
from pricing_catalog.compiled import PICO

_LOG = log.get("processor.genai_metrics")
# gen_ai.client.token.usage explicit bucket boundaries from the GenAI semantic conventions
TOKEN_BUCKETS = (1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864)
_TEMPORALITY = metrics_pb2.AGGREGATION_TEMPORALITY_CUMULATIVE


class _Histogram:
    __slots__ = ("count", "counts", "total")

    def __init__(self) -> None:
        self.counts = [0] * (len(TOKEN_BUCKETS) + 1)
        self.count = 0
        self.total = 0

    def record(self, value: int) -> None:
        self.counts[bisect.bisect_left(TOKEN_BUCKETS, value)] += 1
        self.count += 1
        self.total += value


@dataclass(frozen=True)
class MetricsConfig:
    interval: Duration = 10.0
    dimensions: tuple[str, ...] = ("customer", "feature")  # attribution dimensions kept as metric attributes


class GenAIMetrics(Processor):
    signals = frozenset({Signal.TRACES})
    config_class = MetricsConfig
    reads_genai = True
    reads_message = False
    mutates_data = False  # it reads the priced calls; its metrics go to the metrics pipelines

    def __init__(self, config: MetricsConfig, context: BuildContext):
        self.component_id = context.component_id
        self.interval = config.interval
        self.kept = config.dimensions
        self.cost: dict[tuple, int] = defaultdict(int)  # pico-units per attribute set
        self.tokens: dict[tuple, _Histogram] = defaultdict(_Histogram)
        self.start_ns = time.time_ns()
        self.service = None
        self.task: asyncio.Task | None = None

    def bind_service(self, service) -> None:
        self.service = service

    def process(self, batch: TelemetryBatch) -> None:
        for base, amount, currency, input_tokens, output_tokens in self._priced(batch):
            if amount is not None:
                self.cost[(*base, currency)] += amount
            if input_tokens is not None:
                self.tokens[(*base, "input")].record(input_tokens)
            if output_tokens is not None:
                self.tokens[(*base, "output")].record(output_tokens)

    def _priced(self, batch: TelemetryBatch) -> Iterator[tuple]:
        """(operation, provider, request model, model, *kept dimensions), amount, currency, input and output
        tokens of each priced billable call; from the native stage's ledger rows where it made no calls."""
        names = ["operation", "provider", "request_model", "model", "cost_pico", "currency", "input_tokens",
                 "output_tokens", *self.kept]
        native = batch.native_result
        data = None if native is None else native.columns(names)
        if data is not None:
            for operation, provider, request_model, model, amount, currency, input_tokens, output_tokens, *kept in zip(
                    *(data[name] for name in names), strict=True):
                yield ((operation, provider, request_model or model, model, *kept), amount, currency, input_tokens,
                       output_tokens)
            return
        for call in batch.genai:
            cost = call.cost
            if not call.billable or cost is None:
                continue
            attribution = call.attribution or {}
            yield ((call.operation, call.provider, call.request_model or call.model, call.model,
                    *(attribution.get(d) for d in self.kept)), cost.amount_pico, cost.currency, call.input,
                   call.output)

    def _attributes(self, container, key: tuple) -> None:
        names = ("gen_ai.operation.name", "gen_ai.provider.name", "gen_ai.request.model", "gen_ai.response.model",
                 *(f"gen_ai.attribution.{d}" for d in self.kept))
        for name, value in zip(names, key, strict=False):
            if value is not None:
                attributes.add_to(container, name, value)

    def snapshot(self) -> ExportMetricsServiceRequest:
        """Cumulative metrics since the collector started."""
        now = time.time_ns()
        request = ExportMetricsServiceRequest()
        resource_metrics = request.resource_metrics.add()
        attributes.add_to(resource_metrics.resource.attributes, "service.name", "genai-cost-collector")
        scope = resource_metrics.scope_metrics.add()
        scope.scope.name, scope.scope.version = "genai-cost-collector", __version__
        by_currency: dict[str, list[tuple[tuple, int]]] = defaultdict(list)
        for key, pico in self.cost.items():
            by_currency[key[-1]].append((key[:-1], pico))
        for currency, points in sorted(by_currency.items()):
            metric = scope.metrics.add(name="gen_ai.client.cost", unit=currency,
                                       description="Cost of GenAI calls, priced by the collector")
            metric.sum.is_monotonic, metric.sum.aggregation_temporality = True, _TEMPORALITY
            for key, pico in points:
                point = metric.sum.data_points.add(start_time_unix_nano=self.start_ns, time_unix_nano=now,
                                                   as_double=pico / PICO)
                self._attributes(point.attributes, key)
        if self.tokens:
            metric = scope.metrics.add(name="gen_ai.client.token.usage", unit="{token}",
                                       description="Number of input and output tokens used")
            metric.histogram.aggregation_temporality = _TEMPORALITY
            for key, histogram in self.tokens.items():
                point = metric.histogram.data_points.add(
                    start_time_unix_nano=self.start_ns, time_unix_nano=now, count=histogram.count,
                    sum=float(histogram.total), bucket_counts=histogram.counts, explicit_bounds=TOKEN_BUCKETS)
                self._attributes(point.attributes, key[:-1])
                attributes.add_to(point.attributes, "gen_ai.token.type", key[-1])
        return request

    async def _emit(self) -> None:
        if self.cost or self.tokens:
            await self.service.emit(TelemetryBatch(Signal.METRICS, self.snapshot()))

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                await self._emit()
            except Exception:
                _LOG.exception("emitting GenAI metrics failed")

    async def start(self) -> None:
        if Signal.METRICS not in self.service.own_telemetry:
            _LOG.warning("genai_metrics has no metrics pipeline to feed", extra={"processor": self.component_id})
        self.task = asyncio.create_task(self._run())

    async def shutdown(self, timeout: float) -> None:
        if self.task is not None:
            self.task.cancel()
            await self._emit()  # the last totals
