"""Declared capabilities: where the pipeline copies and re-encodes a batch, and the GenAI index it owns."""

from __future__ import annotations

import asyncio

from collector.batch import TelemetryBatch
from collector.config import parse_yaml
from collector.pipeline import PipelineSet
from collector.service import build_service
from collector.signals import Signal
from tests.genai_helpers import load_sample

PIPELINES = """
receivers: {otlp: {protocols: {grpc: {endpoint: 127.0.0.1:4317}}}}
processors:
  memory_limiter: {limit_mib: 100000}
  genai_normalize: {custom_mappings: {acme.tokens.in: gen_ai.usage.input_tokens}}
  genai_cost: {}
  genai_attribution: {customer: [span.acme.customer]}
exporters: {debug: {}, debug/second: {}, debug/third: {}}
service:
  pipelines:
    traces: {receivers: [otlp], processors: [memory_limiter], exporters: [debug]}
    traces/priced: {receivers: [otlp], processors: [genai_normalize, genai_cost, genai_attribution],
                    exporters: [debug/second]}
    traces/raw: {receivers: [otlp], exporters: [debug/third]}
"""


class Recorder:
    """A pipeline head that keeps what it was given."""

    def __init__(self, mutates_data: bool):
        self.mutates_data = mutates_data
        self.seen: list[TelemetryBatch] = []

    async def consume(self, batch: TelemetryBatch) -> None:
        self.seen.append(batch)


def received(sample: str = "01") -> TelemetryBatch:
    return TelemetryBatch.from_wire(Signal.TRACES, load_sample(sample).message.SerializeToString())


def test_read_only_pipelines_share_the_original_and_mutating_ones_get_copies():
    read_only, mutating, other_read_only = Recorder(False), Recorder(True), Recorder(False)
    batch = received()
    asyncio.run(PipelineSet([read_only, mutating, other_read_only]).consume(batch))
    assert read_only.seen[0] is batch and other_read_only.seen[0] is batch
    assert mutating.seen[0] is not batch and mutating.seen[0].message == batch.message


def test_the_last_mutating_pipeline_takes_the_original_when_none_shares_it():
    first, last = Recorder(True), Recorder(True)
    batch = received()
    pipelines = PipelineSet([first, last])
    asyncio.run(pipelines.consume(batch))
    assert first.seen[0] is not batch and last.seen[0] is batch
    assert pipelines.mutates_data


def test_a_pipeline_that_changes_nothing_forwards_the_received_bytes():
    service = build_service(parse_yaml(PIPELINES, "pipelines.yaml"))
    sent = {}
    for exporter_id, exporter in service.exporters.items():
        exporter.submit = lambda batch, exporter_id=exporter_id: sent.setdefault(exporter_id, batch)
    batch = received()
    wire = batch.serialized()
    asyncio.run(service.receivers["otlp"].consumers[Signal.TRACES].consume(batch))
    assert sent["debug"] is batch and sent["debug"].serialized() is wire  # memory_limiter does not mutate
    assert sent["debug/third"] is batch
    priced = sent["debug/second"]
    assert priced is not batch and priced.serialized() != wire
    assert all(call.cost is not None for call in priced.genai if call.billable)
    assert batch.genai is None  # the index of the pricing pipeline stayed on its copy


def test_each_pipeline_reads_the_keys_its_own_processors_declare():
    service = build_service(parse_yaml(PIPELINES, "pipelines.yaml"))
    batch = received()
    span = batch.message.resource_spans[0].scope_spans[0].spans[0]
    span.attributes.add(key="acme.customer").value.string_value = "acme"
    batch = TelemetryBatch.from_wire(Signal.TRACES, batch.message.SerializeToString())
    sent = {}
    service.exporters["debug/second"].submit = lambda b: sent.setdefault("priced", b)
    asyncio.run(service.receivers["otlp"].consumers[Signal.TRACES].consume(batch))
    assert [call.attribution for call in sent["priced"].genai if call.billable] == [{"customer": "acme"}]
