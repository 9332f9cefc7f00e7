"""The native hot path against the Python reference: same forwarded data, same GenAI calls, same ledger rows.

Every test here runs both paths in one process: a decoded batch takes the Python path, a batch the native
core vouched for (``TelemetryBatch.from_wire``) takes the native one.
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

from bench.workload import build_requests
from collector import native
from collector.attributes import set_value
from collector.batch import TelemetryBatch
from collector.component import Processor
from collector.receivers import otlp_json
from collector.receivers.limits import Limits
from collector.signals import Signal, count_items, top_level
from pricing_catalog.catalog import PriceCatalog
from processors import dialects
from processors.genai_cost import CostConfig, GenAICost
from processors.genai_index import WireIndex, indexer_for
from processors.genai_normalize import GenAINormalize
from processors.genai_redact import GenAIRedact, RedactConfig
from tests.genai_helpers import SAMPLES, context
from tests.hot_paths import assert_same, both_paths, pipeline
from tests.wire_mutations import mutate_wire

pytestmark = pytest.mark.skipif(not native.available(), reason=f"the native core is not loaded: {native.WHY_PYTHON}")
SAMPLE_WIRE = [otlp_json.decode(Signal.TRACES, p.read_bytes()).SerializeToString() for p in sorted(SAMPLES.glob("*"))]
ALL_SAMPLES = b"".join(SAMPLE_WIRE)  # concatenated requests are one request with every resource


@pytest.mark.parametrize(("keep_original", "redact"), [(True, False), (False, False), (True, True)])
def test_every_dialect_sample_is_processed_alike(keep_original, redact):
    reference, candidate = both_paths(ALL_SAMPLES, keep_original, redact)
    assert not candidate.decoded, "the native path decoded the request"
    assert len(reference.genai) == 14 and sum(c.cost is not None for c in reference.genai) == 12
    assert_same(reference, candidate)


def test_bench_requests_are_processed_alike():
    for wire in build_requests(3, spans_per_request=300, start_ns=1767225600 * 10**9):
        reference, candidate = both_paths(wire)
        assert not candidate.decoded
        assert_same(reference, candidate)


def test_ledger_rows_are_made_while_the_stage_reads_the_next_request():
    """The ledger's writer thread makes one request's rows while the event loop has the stage read the next
    ones: neither waits for, nor trips over, the other (the rows need nothing of the stage once it priced
    the request)."""
    from collector.storage.rows import CallColumns
    bodies = build_requests(6, spans_per_request=256, start_ns=1767225600 * 10**9)
    run = pipeline()
    first = TelemetryBatch.from_wire(Signal.TRACES, bodies[0])
    run.run(first)
    columns = CallColumns(("customer", "user"))
    failures: list[BaseException] = []
    reading = threading.Event()

    def write_rows() -> None:
        reading.wait()
        try:
            for _ in range(200):
                first.native_result._make_ledger(columns)
        except BaseException as exc:
            failures.append(exc)

    writer = threading.Thread(target=write_rows)
    writer.start()
    reading.set()
    for body in bodies[1:] * 4:
        run.run(TelemetryBatch.from_wire(Signal.TRACES, body))
    writer.join()
    assert failures == []
    assert sum(batch.num_rows for batch in first.native_result._make_ledger(columns)) > 100


def test_redaction_keeps_the_native_path_only_where_it_can_work_on_bytes():
    normalize, cost = GenAINormalize(), GenAICost(CostConfig(), context(), PriceCatalog())
    remove, hashing = GenAIRedact(RedactConfig(mode="remove")), GenAIRedact(RedactConfig(mode="hash"))
    assert isinstance(indexer_for([remove, normalize, cost]), WireIndex)
    assert not isinstance(indexer_for([normalize, remove, cost]), WireIndex)  # it would edit indexed bytes
    assert not isinstance(indexer_for([hashing, normalize, cost]), WireIndex)
    request = ExportTraceServiceRequest.FromString(SAMPLE_WIRE[0])
    request.resource_spans[0].scope_spans[0].spans[0].attributes.add(key="gen_ai.prompt").value.string_value = "hi"
    batch = TelemetryBatch.from_wire(Signal.TRACES, request.SerializeToString())
    remove.process(batch)
    assert not batch.decoded and "gen_ai.prompt" not in {kv.key for kv in batch.message.resource_spans[0]
                                                         .scope_spans[0].spans[0].attributes}


def test_values_of_every_kind_read_alike():
    """Arrays, key-value lists, bytes, booleans, doubles, numeric strings and unset values where the dialect
    table expects a model name or a token count."""
    request = ExportTraceServiceRequest()
    span = request.resource_spans.add().scope_spans.add().spans.add(name="chat", span_id=b"12345678")
    odd = {"gen_ai.system": "openai", "gen_ai.usage.output_tokens": "12", "gen_ai.usage.reasoning_tokens": 1.5,
           "gen_ai.usage.cache_read_input_tokens": True, "gen_ai.response.id": b"raw", "customer.id": None}
    for key, value in odd.items():
        target = span.attributes.add(key=key).value
        if value is not None:
            setattr(target, {str: "string_value", float: "double_value", bool: "bool_value",
                             bytes: "bytes_value"}[type(value)], value)
    span.attributes.add(key="gen_ai.request.model").value.array_value.values.add(string_value="gpt-4o")
    kv = span.attributes.add(key="gen_ai.usage.input_tokens").value.kvlist_value.values.add(key="n")
    kv.value.int_value = 5
    reference, candidate = both_paths(request.SerializeToString())
    assert not candidate.decoded and candidate.genai[0].usage_error
    assert_same(reference, candidate)


def test_a_request_no_processor_changes_is_forwarded_as_received_without_decoding():
    wire = build_requests(1, spans_per_request=50)[0]
    batch = TelemetryBatch.from_wire(Signal.TRACES, wire)
    assert batch.item_count == 50 and batch.resource_count == 1 and batch.serialized() is wire and not batch.decoded
    assert Limits().apply(batch) == (0, "") and not batch.decoded
    copy = batch.copy()
    assert copy.serialized() is wire and copy.item_count == 50 and not copy.decoded


def test_limits_drop_the_same_spans_on_both_paths():
    request = ExportTraceServiceRequest.FromString(SAMPLE_WIRE[0])
    span = request.resource_spans[0].scope_spans[0].spans[0]
    span.attributes.add(key="huge").value.string_value = "x" * 2000
    wire = request.SerializeToString()
    limits = Limits(max_attribute_value_bytes=1000)
    reference = TelemetryBatch(Signal.TRACES, ExportTraceServiceRequest.FromString(wire))
    candidate = TelemetryBatch.from_wire(Signal.TRACES, wire)
    assert limits.apply(candidate) == limits.apply(reference) != (0, "")
    assert candidate.serialized() == reference.serialized()
    assert Limits(max_attributes_per_span=2).apply(TelemetryBatch.from_wire(Signal.TRACES, wire))[0] >= 1


def test_batches_merged_as_bytes_equal_batches_merged_as_messages():
    wires = build_requests(3, spans_per_request=20)
    merged = TelemetryBatch.concatenate(Signal.TRACES, [TelemetryBatch.from_wire(Signal.TRACES, w) for w in wires])
    decoded = [TelemetryBatch(Signal.TRACES, ExportTraceServiceRequest.FromString(w)) for w in wires]
    reference = TelemetryBatch.concatenate(Signal.TRACES, decoded)
    assert not merged.decoded and merged.item_count == reference.item_count == 60
    assert merged.resource_count == reference.resource_count == 3
    assert merged.message == reference.message


def test_requests_the_native_core_does_not_vouch_for_are_left_to_upb():
    request = ExportTraceServiceRequest.FromString(SAMPLE_WIRE[0])
    wire = request.SerializeToString()
    group = b"\x0b\x0c"  # an empty group (field 1) in the request: upb keeps it, the native core does not read groups
    assert native.TRACE_WIRE.scan(wire + group) is None
    batch = TelemetryBatch.from_wire(Signal.TRACES, wire + group)
    assert batch.decoded and batch.item_count == count_items(Signal.TRACES, request)
    with pytest.raises(DecodeError):
        TelemetryBatch.from_wire(Signal.TRACES, wire[:-3])


def metrics_and_logs_requests() -> list[tuple[Signal, bytes]]:
    """A metrics request with every kind of data (histograms carry packed repeated scalars) and a logs
    request, each over two resources."""
    metrics = ExportMetricsServiceRequest()
    for service in ("a", "b"):
        resource_metrics = metrics.resource_metrics.add()
        resource_metrics.resource.attributes.add(key="service.name").value.string_value = service
        scope = resource_metrics.scope_metrics.add()
        scope.metrics.add(name="g").gauge.data_points.add(as_double=1.5, attributes=[KeyValue(key="k")])
        scope.metrics.add(name="s").sum.data_points.add(as_int=3)
        histogram = scope.metrics.add(name="h").histogram.data_points.add(count=3)
        histogram.bucket_counts.extend([1, 2, 0])
        histogram.explicit_bounds.extend([0.5, 1.0])
        exponential = scope.metrics.add(name="e").exponential_histogram.data_points.add(scale=2)
        exponential.positive.bucket_counts.extend([4, 5])
        scope.metrics.add(name="q").summary.data_points.add(count=2)
        scope.metrics.add(name="empty")
    logs = ExportLogsServiceRequest()
    for service in ("a", "b"):
        resource_logs = logs.resource_logs.add()
        resource_logs.resource.attributes.add(key="service.name").value.string_value = service
        scope = resource_logs.scope_logs.add()
        for text in ("one", "two", "three"):
            scope.log_records.add(severity_text="INFO").body.string_value = text
    return [(Signal.METRICS, metrics.SerializeToString()), (Signal.LOGS, logs.SerializeToString())]


def test_metrics_and_logs_are_counted_and_forwarded_without_decoding():
    for signal, wire in metrics_and_logs_requests():
        batch = TelemetryBatch.from_wire(signal, wire)
        expected = signal.spec.request_type.FromString(wire)
        assert not batch.decoded and batch.item_count == count_items(signal, expected) > 0
        assert batch.resource_count == 2 and batch.serialized() is wire and not batch.decoded
        merged = TelemetryBatch.concatenate(signal, [batch, TelemetryBatch.from_wire(signal, wire)])
        assert not merged.decoded and merged.item_count == 2 * batch.item_count
        assert merged.message == TelemetryBatch.concatenate(signal, [TelemetryBatch(signal, expected)] * 2).message


@pytest.mark.fuzz
def test_fuzz_metrics_and_logs_counts_against_upb():
    rng = random.Random(1201)
    seeds = metrics_and_logs_requests()
    vouched = 0
    for _ in range(3000):
        signal, seed = rng.choice(seeds)
        wire = mutate_wire(rng, bytearray(seed))
        stats = native.REQUEST_WIRES[signal].scan(wire)
        try:
            expected = signal.spec.request_type.FromString(wire)
        except DecodeError:
            assert stats is None, f"the native core vouched for a {signal.spec.name} request upb rejects"
            continue
        if stats is not None:
            vouched += 1
            assert (stats.items, stats.resources) == (count_items(signal, expected), len(top_level(signal, expected)))
    assert vouched > 100


def test_the_hot_path_is_reported_and_can_be_forced_to_python():
    assert native.describe() == {"hot_path": "native"}
    code = "from collector import native; print(native.describe())"
    forced = subprocess.run([sys.executable, "-c", code], env={**os.environ, "GENAI_COLLECTOR_NATIVE": "0"},
                            capture_output=True, text=True, check=True)
    assert forced.stdout.strip() == "{'hot_path': 'python', 'reason': 'GENAI_COLLECTOR_NATIVE=0'}"


SCOPES = ["opentelemetry.instrumentation.openai_v2", "opentelemetry.instrumentation.openai",
          "openinference.instrumentation.openai", "ai", "litellm", "langfuse-sdk", "openlit.otel.tracing",
          "gcp.vertex.agent", "my.app"]
CONTENT = {"gen_ai.prompt.0.content", "gen_ai.input.messages", "input.value", "input.value.kept",
           "llm.input_messages.0.message.content"}
ATTRIBUTED = {"customer.id", "user.id", "project", "gen_ai.budget.reservation"}  # span keys tests/hot_paths.py reads
VOCABULARY = sorted(dialects.KNOWN_KEYS | CONTENT | ATTRIBUTED | {"gen_ai.system", "http.method",
                                                                  "telemetry.sdk.name"})
MODELS = ["gpt-4o", "gpt-4o-mini-2024-07-18", "claude-sonnet-4-5", "gemini-2.5-flash", "no-such-model", ""]


def random_value(rng: random.Random, key: str, target: AnyValue) -> None:
    """A value of a kind and content the key might carry, or not."""
    choice = rng.random()
    if choice < 0.3:
        target.int_value = rng.choice([0, 1, 12, 1000, 5_000_000, -3, 10**13])
    elif choice < 0.6:
        target.string_value = rng.choice([*MODELS, "openai", "anthropic", "chat", "LLM", "agent", "12", "x", "flex",
                                          "chatcmpl-1", "resp_2", '{"id": "chatcmpl-9"}', "https://api.groq.com/v1"])
    elif choice < 0.75:
        target.double_value = rng.choice([0.0, 0.0012, 3.5, float("inf"), 1e300])
    elif choice < 0.85:
        target.bool_value = rng.random() < 0.5
    elif choice < 0.9:
        target.array_value.values.add(string_value=rng.choice(MODELS))
    elif choice < 0.95:
        target.kvlist_value.values.add(key="n").value.int_value = 3
    else:
        target.bytes_value = b"\x00raw"


# What the native stage reads itself: dialects without a Python rule, values of the kinds their keys carry.
STAGE_SCOPES = ["opentelemetry.instrumentation.openai_v2", "opentelemetry.instrumentation.openai", "my.app", "",
                "opentelemetry.instrumentation.botocore", "pydantic-ai"]
_TOKEN_KEYS = frozenset(key for field in dialects.TOKEN_FIELDS for key in dialects.SOURCES[field])
_MODEL_KEYS = frozenset(dialects.SOURCES["request_model"] + dialects.SOURCES["response_model"])
_COST_KEYS = frozenset(dialects.SOURCES["reported_cost"]) - {"gen_ai.usage.cost"}  # that one: a span priced before
STAGE_VOCABULARY = sorted({key for field, keys in dialects.SOURCES.items() for key in keys}
                          - {"openinference.span.kind", "langfuse.observation.type", "gen_ai.usage.cost"}
                          | {"traceloop.span.kind", "gen_ai.aggregated_usage.input_tokens", "my.model", "http.method"}
                          | ATTRIBUTED
                          ) + [dialects.REQUEST_MODEL, dialects.RESPONSE_MODEL, dialects.INPUT_TOKENS,  # often,
                               dialects.OUTPUT_TOKENS, "gen_ai.usage.prompt_tokens", "gen_ai.system"] * 4  # twice too


def stage_value(rng: random.Random, key: str, target: AnyValue) -> None:
    """A value of the kind the key carries, mostly, and sometimes of another the stage reads too."""
    choice = rng.random()
    if key in _TOKEN_KEYS:
        if choice < 0.8:
            target.int_value = rng.choice([0, 1, 12, 1000, 250_000, 5_000_000])
        elif choice < 0.9:
            target.int_value = rng.choice([-3, 10**13])
        elif choice < 0.95:
            target.double_value = rng.choice([3.0, 7.9, -0.5])
        else:
            target.bool_value = True
    elif key in _COST_KEYS:
        target.double_value = rng.choice([0.0, 0.0012, 0.3, 1e-13, 5.0, 123.456789])
    elif key in _MODEL_KEYS and choice < 0.8:
        target.string_value = rng.choice(MODELS[:4])
    elif choice < 0.85:
        target.string_value = rng.choice([*MODELS, "openai", "anthropic", "Azure", "aws.bedrock", "langchain", "chat",
                                          "embeddings", "agent", "workflow", "flex", "priority", "", "chatcmpl-1",
                                          "resp_2", "https://api.groq.com/v1", "my-resource.openai.azure.com"])
    elif choice < 0.95:
        target.int_value = rng.choice([0, 7])
    else:
        target.bool_value = False


def random_headers(rng: random.Random) -> dict[str, str]:
    """Request headers attribution may read, or none."""
    return rng.choice([{}, {"x-customer-id": rng.choice(["", "h1", "h2", "h3", "h4"])}])


def random_request(rng: random.Random, scopes: list[str] = SCOPES, vocabulary: list[str] = VOCABULARY,
                   value: Callable[[random.Random, str, AnyValue], None] = random_value) -> bytes:
    """GenAI-ish spans: attributes drawn from the dialect vocabulary with values of any kind, shared response
    ids and parents, several resources and scopes."""
    request = ExportTraceServiceRequest()
    for _ in range(rng.randint(1, 3)):
        resource_spans = request.resource_spans.add()
        for key in rng.choices(["service.name", "tenant.id", "telemetry.sdk.name", "team"], k=rng.randint(0, 5)):
            set_value(resource_spans.resource.attributes.add(key=key).value,
                      rng.choice(["a", "b", "openlit", "", 7, 2.5, True]))
        for _ in range(rng.randint(1, 3)):
            scope_spans = resource_spans.scope_spans.add()
            scope_spans.scope.name = rng.choice(scopes)
            for index in range(rng.randint(1, 6)):
                span = scope_spans.spans.add(name=rng.choice(["chat", "raw_gen_ai_request", "call_llm", "GET /"]),
                                             trace_id=bytes([rng.randrange(2)]) * 16,
                                             span_id=rng.randbytes(8), start_time_unix_nano=rng.choice(
                                                 [0, 1767225600 * 10**9, 1767225600 * 10**9 + index]))
                if rng.random() < 0.3:
                    span.parent_span_id = scope_spans.spans[0].span_id
                for key in rng.sample(vocabulary, rng.randint(0, 12)):
                    value(rng, key, span.attributes.add(key=key).value)
                for _ in range(rng.choice([0, 0, 1, 2])):
                    event = span.events.add(name=rng.choice(["gen_ai.choice", "gen_ai.content.prompt", "log"]))
                    event.attributes.add(key=rng.choice(sorted(CONTENT))).value.string_value = "secret"
    return request.SerializeToString()


@pytest.mark.fuzz
def test_differential_fuzz_on_random_genai_requests():
    rng = random.Random(1130)
    calls = taken = 0
    for _ in range(400):
        reference, candidate = both_paths(random_request(rng), keep_original=rng.random() < 0.7,
                                          redact=rng.random() < 0.5, headers=random_headers(rng))
        assert not candidate.decoded
        assert_same(reference, candidate)
        calls += len(reference.genai)
        taken += candidate.native is not None  # the stage, with the spans only Python reads read by Python
    assert calls > 1000 and taken > 300, (calls, taken)


class CallReader(Processor):
    """A processor after the GenAI processors that reads their calls (as a custom one might)."""

    signals = frozenset({Signal.TRACES})
    reads_genai = True
    reads_message = False

    def process(self, batch: TelemetryBatch) -> None:
        for call in batch.genai:
            assert call.dialect


def compared_on_both_paths(rng: random.Random, scopes: list[str], vocabulary: list[str],
                           value: Callable[[random.Random, str, AnyValue], None],
                           cases: int = 300) -> Iterator[tuple[TelemetryBatch, TelemetryBatch]]:
    """Random requests through both paths, found the same (``assert_same``): with and without attribution,
    keeping the originals or not, with random headers. Every third ends with a processor that reads the
    calls, which the native path then makes before the splice; the others make them after it, or none."""
    for case in range(cases):
        wire = random_request(rng, scopes, vocabulary, value)
        reference, candidate = both_paths(wire, keep_original=rng.random() < 0.7, attribution=case % 2 == 0,
                                          headers=random_headers(rng), last=CallReader if case % 3 == 0 else None)
        assert_same(reference, candidate)
        yield reference, candidate


@pytest.mark.fuzz
def test_differential_fuzz_on_the_native_stage():
    """Requests the native stage normalises and prices itself: the same forwarded spans, calls, costs and
    ledger rows as the Python processors."""
    taken = priced = 0
    for reference, candidate in compared_on_both_paths(random.Random(301), STAGE_SCOPES, STAGE_VOCABULARY,
                                                       stage_value):
        taken += candidate.native is not None
        priced += sum(call.cost is not None and call.cost.amount_pico is not None for call in reference.genai)
    assert taken > 250 and priced > 500, (taken, priced)


# What the dialect rules read (processors/dialect_rules.py), with values each rule branches on.
RULE_SCOPES = ["openinference.instrumentation.openai", "ai", "langfuse-sdk", "openlit.otel.tracing",
               "gcp.vertex.agent", "my.app"]
RULE_VALUES: dict[str, list[Any]] = {
    "openinference.span.kind": ["LLM", "llm", "EMBEDDING", "CHAIN", "agent", "", "Llm", "LLMÉ", 0, True],
    "output.value": ['{"id": "chatcmpl-abc123", "object": "chat.completion"}', '{"id":"msg_01X"}', '{"id":  "resp_1"}',
                     '{"run": {"id": "run-1"}, "raw": {"id":\t"resp_abc"}}', '{"id": "msg_"}', "plain text",
                     '{"id": "resp_' + "a" * 201 + '"}', '{"id":\u00a0"msg_1"}', "x" * 3000 + '{"id": "msg_late"}', 7],
    "llm.invocation_parameters": ['{"model": "gpt-4o", "service_tier": "flex"}', '{"model": null}', '{"model": 5}',
                                  '{"service_tier": "Priority"}', '{"service_tier": ""}', '{"service_tier": true}',
                                  '{"service_tier": 0}', '{"model": "claude-sonnet-4-5", "service_tier": "auto"}',
                                  "{", "[1]", '{"service_tier": NaN}', ""],
    "ai.operationId": ["ai.generateText", "ai.generateText.doGenerate", "ai.streamText.doStream", "ai.embed.doEmbed",
                       "", 0],
    "ai.response.providerMetadata": ['{"openai": {"serviceTier": "flex"}}', '{"openai": {"serviceTier": ""}, '
                                     '"anthropic": {"usage": {"service_tier": "priority"}}}',
                                     '{"anthropic": null, "openai": {}}', '{"openai": 0}', "[]", "not json",
                                     '{"anthropic": {"usage": {"service_tier": 1}}}'],
    "langfuse.observation.usage_details": ['{"input": 900, "input_cached_tokens": 2048, "output": 200, "total": 3148}',
                                           '{"input": 100, "output": 20, "output_reasoning_tokens": 5, '
                                           '"input_cache_write": 7, "input_audio": 3}',
                                           '{"input": 12.7, "output": 1e3}', '{"input": -1}', '{"input": true}',
                                           '{"output": null}', '{"input": "12"}', '{"input": 10000000000000}',
                                           '{"input": 5, "input": 6}', "{}", '{"input": 1e300}'],
    "langfuse.observation.cost_details": ['{"total": 0.00694}', '{"total": 0}', '{"total": true}', '{"total": "0.5"}',
                                          '{"total": null}', '{"input": 1}', '{"total": -0}', '{"total": 1e-13}',
                                          '{"total": [1]}'],
    "gen_ai.usage.cost": [0.0, 0.0012, 0],
}
RULE_VOCABULARY = [*RULE_VALUES, "langfuse.observation.type", "telemetry.sdk.name",
                   *(key for key in STAGE_VOCABULARY if key not in RULE_VALUES)]


def rule_value(rng: random.Random, key: str, target: AnyValue) -> None:
    """A value a dialect rule branches on for its keys, else what the stage reads."""
    if key not in RULE_VALUES:
        stage_value(rng, key, target)
        return
    set_value(target, rng.choice(RULE_VALUES[key]))


@pytest.mark.fuzz
def test_differential_fuzz_on_the_dialect_rules():
    """Spans of the dialects with a rule of their own (OpenInference, Vercel, Langfuse, ADK, OpenLIT): the stage
    applies the rule itself, or leaves the span to Python where its reading could differ, and the result is the
    same as the Python processors'."""
    read_natively = read_by_python = 0
    for _, candidate in compared_on_both_paths(random.Random(1201), RULE_SCOPES, RULE_VOCABULARY, rule_value):
        if candidate.native is not None:
            read_by_python += len(candidate.native.others)
            read_natively += len(candidate.genai) - len(candidate.native.others)
    assert read_natively > 1000 and read_natively > 2 * read_by_python, (read_natively, read_by_python)


BUDGETS = [{"id": "a-customers", "match": {"customer": "a*"}, "limit": "0.002", "period": "daily",
            "thresholds": [0.5, 0.8]},
           {"id": "gpt-4o", "match": {"model": "gpt-4o*"}, "limit": "1", "period": "monthly"},
           {"id": "every-call", "match": {}, "limit": "0.05", "period": "total"},
           {"id": "every-call-daily", "match": {}, "limit": "0.05", "period": "daily"},  # ties: the first is tightest
           # past 2^53 pico-units, nearly spent: the quotient of two large integers, crossing into exceeded
           {"id": "org-monthly", "match": {"provider": "*"}, "limit": "25000", "period": "monthly",
            "thresholds": [0.25, 0.999999]}]
ORG_COMMITTED = 24_999_999_996 * 10**6  # 0.004 below the limit


@pytest.mark.fuzz
@pytest.mark.parametrize("ledger_backend", ["duckdb"], indirect=True)
def test_budget_states_are_written_alike_from_the_native_stage(ledger_backend, monkeypatch):
    """genai_budget after the native stage has the stage append the budget states (``StageResult.spend``), or
    reads its ledger rows, not calls: the same running totals on the same spans as on the Python path, with a
    committed spend and limits past 2^53 pico-units."""
    from processors.budgets import parse_budget
    from processors.genai_native import NativeCalls
    from tests.test_budgets_unit import NOW, replica
    budgets = [parse_budget(budget, None) for budget in BUDGETS]
    first = replica(ledger_backend, *budgets)
    with first.store.write() as txn:
        txn.budgets.set_counters("org-monthly", [(first.book.window(budgets[-1], NOW).start, ORG_COMMITTED)])
    natively = []
    spend = NativeCalls.spend
    monkeypatch.setattr(NativeCalls, "spend", lambda *args: natively.append(spend(*args)) or natively[-1])
    rng = random.Random(77)
    from_rows = budgeted = exceeded = 0
    for _ in range(80):
        wire = random_request(rng, STAGE_SCOPES, STAGE_VOCABULARY, stage_value)
        reference, candidate = both_paths(wire, headers=random_headers(rng),
                                          last=lambda: replica(ledger_backend, *budgets))
        from_rows += candidate.native_result is not None  # the budget made no calls
        assert_same(reference, candidate)
        states = [kv.value.string_value for rs in reference.message.resource_spans for ss in rs.scope_spans
                  for span in ss.spans for kv in span.attributes if kv.key == "gen_ai.budget.status"]
        budgeted += len(states)
        exceeded += states.count("exceeded")
    assert from_rows > 60 and budgeted > 100 and exceeded > 20, (from_rows, budgeted, exceeded)
    assert natively.count(True) > 50 and False in natively, natively


@pytest.mark.fuzz
def test_cost_metrics_are_counted_alike_from_the_native_stage():
    """genai_metrics after the native stage reads its ledger rows, not calls: the same cost sums and token
    histograms as on the Python path."""
    from processors.genai_metrics import GenAIMetrics, MetricsConfig
    made: list[GenAIMetrics] = []

    def metrics() -> GenAIMetrics:
        made.append(GenAIMetrics(MetricsConfig(dimensions=("customer", "user")), context("genai_metrics")))
        return made[-1]

    rng = random.Random(78)
    from_rows = 0
    for _ in range(60):
        wire = random_request(rng, STAGE_SCOPES, STAGE_VOCABULARY, stage_value)
        reference, candidate = both_paths(wire, headers=random_headers(rng), last=metrics)
        from_rows += candidate.native_result is not None
        assert_same(reference, candidate)
    assert from_rows > 45, from_rows
    reference_sums, candidate_sums = ({}, {}), ({}, {})
    for index, processor in enumerate(made):
        sums = (reference_sums, candidate_sums)[index % 2]
        for key, pico in processor.cost.items():
            sums[0][key] = sums[0].get(key, 0) + pico
        for key, histogram in processor.tokens.items():
            counts = sums[1].setdefault(key, [0] * (len(histogram.counts) + 2))
            for position, value in enumerate([histogram.count, histogram.total, *histogram.counts]):
                counts[position] += value
    assert candidate_sums == reference_sums
    assert len(reference_sums[0]) > 20 and len(reference_sums[1]) > 20, reference_sums


@pytest.mark.fuzz
def test_differential_fuzz_native_against_python():
    """Mutated requests: the native core vouches only for what upb accepts, counts the same spans, and
    everything it vouches for comes out of the pipeline as it does on the Python path."""
    rng = random.Random(20261130)
    seeds = [*SAMPLE_WIRE, ALL_SAMPLES, *build_requests(2, spans_per_request=40, start_ns=1767225600 * 10**9)]
    accepted = vouched = spliced = 0
    for case in range(3000):
        wire = mutate_wire(rng, bytearray(rng.choice(seeds))) if case % 10 else rng.choice(seeds)
        stats = native.TRACE_WIRE.scan(wire)
        try:
            expected = ExportTraceServiceRequest.FromString(wire)
        except DecodeError:
            assert stats is None, f"the native core vouched for a request upb rejects: {wire.hex()}"
            continue
        accepted += 1
        if stats is None:
            continue
        vouched += 1
        assert (stats.items, stats.resources) == (count_items(Signal.TRACES, expected), len(expected.resource_spans))
        spans = [span for rs in expected.resource_spans for ss in rs.scope_spans for span in ss.spans]
        assert stats.most_attributes == max((len(span.attributes) for span in spans), default=0)
        largest = max((kv.value.ByteSize() for span in spans for kv in span.attributes), default=0)
        # a value given twice is merged by upb and counted whole by the scan: at least the decoded size
        assert stats.largest_value == largest if case % 10 == 0 else stats.largest_value >= largest
        reference, candidate = both_paths(wire)
        assert_same(reference, candidate)
        spliced += not candidate.decoded
    assert accepted > 400 and vouched > 0.95 * accepted and spliced > 0.9 * vouched, (accepted, vouched, spliced)
