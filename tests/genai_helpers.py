"""Running the GenAI processors in-process on OTLP/JSON samples."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from collector.attributes import plain_value
from collector.batch import TelemetryBatch
from collector.component import BuildContext, Processor
from collector.pipeline import Fanout, ProcessorRun
from collector.receivers import otlp_json
from collector.signals import Signal
from collector.telemetry import SelfTelemetry
from pricing_catalog.catalog import PriceCatalog
from processors.genai_cost import CostConfig, GenAICost
from processors.genai_index import indexer_for
from processors.genai_normalize import GenAINormalize

SAMPLES = Path(__file__).parent / "fixtures" / "dialects"
HOT_PATH = "python"  # the path batches are made for: set per test by the ``hot_path`` fixture (tests/conftest.py)


def as_batch(request: ExportTraceServiceRequest) -> TelemetryBatch:
    """The request as a receiver hands it to the pipeline on the hot path under test: decoded for the Python
    path, as bytes the native core vouched for on the native path."""
    if HOT_PATH == "python":
        return TelemetryBatch(Signal.TRACES, request)
    batch = TelemetryBatch.from_wire(Signal.TRACES, request.SerializeToString())
    assert not batch.decoded, "the native core left the request to upb"
    return batch


def context(name: str = "genai_cost") -> BuildContext:
    return BuildContext(name, SelfTelemetry(), Path("."))


def load_sample(name: str) -> TelemetryBatch:
    path = next(SAMPLES.glob(f"{name}*.json"))
    return as_batch(otlp_json.decode(Signal.TRACES, path.read_bytes()))


def run(batch: TelemetryBatch, normalize: GenAINormalize | None = None, cost: GenAICost | None = None,
        catalog: PriceCatalog | None = None, also: Sequence[Processor] = ()) -> TelemetryBatch:
    """One pass of the batch through a pipeline of genai_normalize, genai_cost and ``also``."""
    processors = [normalize or GenAINormalize(), cost or GenAICost(CostConfig(), context(), catalog or PriceCatalog()),
                  *also]
    batch.genai = None  # a new pass reads the spans afresh
    ProcessorRun(processors, Fanout([]), indexer_for(processors)).run(batch)
    return batch


def span_attributes(batch: TelemetryBatch) -> dict[str, dict]:
    """span name → {attribute: value} of every span in the batch."""
    return {span.name: {kv.key: plain_value(kv.value) for kv in span.attributes}
            for rs in batch.message.resource_spans for ss in rs.scope_spans for span in ss.spans}
