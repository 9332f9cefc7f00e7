"""The OTLP/JSON decoder against protobuf's own JSON parser (json_format), which it replaces for speed."""

from __future__ import annotations

import base64
import json
import random

import pytest
from google.protobuf import json_format
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue

from collector.receivers import otlp_json
from collector.signals import Signal
from tests.test_fuzz import SAMPLE_JSON, mutate_document


def reference_decode(signal: Signal, document: dict):
    """json_format, with the hex ids rewritten to the base64 it expects: the decoder this one replaced."""
    otlp_json._rewrite_ids(signal, document, lambda value: base64.b64encode(bytes.fromhex(value)).decode())
    message = signal.spec.request_type()
    json_format.ParseDict(document, message, ignore_unknown_fields=True)
    return message


def outcome(decode, signal: Signal, document: object):
    try:
        return decode(signal, json.loads(json.dumps(document)))
    except (otlp_json.OtlpJsonError, json_format.ParseError, ValueError, TypeError, RecursionError) as exc:
        return f"rejected: {exc}"


def fast_decode(signal: Signal, document: dict):
    return otlp_json.decode(signal, json.dumps(document).encode())


@pytest.mark.parametrize("index", range(len(SAMPLE_JSON)))
def test_every_dialect_sample_decodes_as_json_format_does(index):
    document = SAMPLE_JSON[index]
    assert fast_decode(Signal.TRACES, document) == reference_decode(Signal.TRACES, json.loads(json.dumps(document)))


def test_mutated_samples_are_accepted_and_rejected_as_json_format_does():
    rng = random.Random(7)
    texts = [json.dumps(sample) for sample in SAMPLE_JSON]
    outcomes = {"both accept": 0, "both reject": 0, "only we reject": 0}
    for _ in range(3000):
        document = mutate_document(rng, json.loads(rng.choice(texts)))
        ours, theirs = outcome(fast_decode, Signal.TRACES, document), outcome(reference_decode, Signal.TRACES, document)
        if isinstance(ours, str) and isinstance(theirs, str):
            outcomes["both reject"] += 1
        elif isinstance(ours, str):
            # json_format reads a string or array where an object belongs as an object with no known keys
            assert "expected an object" in ours, (ours, json.dumps(document)[:2000])
            outcomes["only we reject"] += 1
        else:
            assert ours == theirs, json.dumps(document)[:2000]
            outcomes["both accept"] += 1
    assert all(outcomes.values()), outcomes


def test_enum_names_int64_strings_non_finite_doubles_and_unknown_fields():
    document = {"resourceSpans": [{"scopeSpans": [{"spans": [{
        "traceId": "5b8efff798038103d269b633813fc60c", "spanId": "eee19b7ec3c1b174", "name": "chat",
        "kind": "SPAN_KIND_CLIENT", "startTimeUnixNano": "1767225600000000000",
        "end_time_unix_nano": 1767225600000000001,
        "status": {"code": 2, "message": "boom"}, "unknownField": {"x": 1},
        "attributes": [{"key": "n", "value": {"intValue": "-5"}}, {"key": "d", "value": {"doubleValue": "NaN"}},
                       {"key": "b", "value": {"bytesValue": "aGk="}}, {"key": "e", "value": {"kind": "NOPE"}}]}]}]}]}
    decoded = fast_decode(Signal.TRACES, document)
    assert decoded == reference_decode(Signal.TRACES, json.loads(json.dumps(document)))
    span = decoded.resource_spans[0].scope_spans[0].spans[0]
    assert span.trace_id.hex() == "5b8efff798038103d269b633813fc60c" and span.kind == 3
    assert span.attributes[0].value.int_value == -5 and span.attributes[2].value.bytes_value == b"hi"
    # proto field names work as well, and ids under them are hex too (json_format alone reads them as base64)
    snake = json.loads(json.dumps(document).replace('"resourceSpans"', '"resource_spans"')
                       .replace('"scopeSpans"', '"scope_spans"').replace('"spanId"', '"span_id"'))
    assert fast_decode(Signal.TRACES, snake) == decoded


@pytest.mark.parametrize(("document", "message"), [
    ({"resourceSpans": [{"scopeSpans": [{"spans": [{"name": 5}]}]}]}, "Span.name: 5 is not a string"),
    ({"resourceSpans": [{"scopeSpans": [{"spans": [{"traceId": "zz"}]}]}]}, "is not hex"),
    ({"resourceSpans": {"scopeSpans": []}}, "is not an array"),
    ({"resourceSpans": [{"scopeSpans": [{"spans": [{"startTimeUnixNano": "soon"}]}]}]}, "is not an integer"),
    ({"resourceSpans": [{"scopeSpans": [{"spans": [{"droppedAttributesCount": 2**40}]}]}]}, "out of range"),
])
def test_errors_name_the_field(document, message):
    with pytest.raises(otlp_json.OtlpJsonError, match=message):
        fast_decode(Signal.TRACES, document)


def metrics_request() -> ExportMetricsServiceRequest:
    request = ExportMetricsServiceRequest()
    scope = request.resource_metrics.add().scope_metrics.add()
    gauge = scope.metrics.add(name="g").gauge.data_points.add(as_double=1.5, time_unix_nano=2**63 - 1)
    gauge.exemplars.add(span_id=b"\x01" * 8, trace_id=b"\x02" * 16, as_int=-3)
    counter = scope.metrics.add(name="c").sum
    counter.aggregation_temporality = 2
    counter.is_monotonic = True
    counter.data_points.add(as_int=7).attributes.add(key="k").value.string_value = "v"
    histogram = scope.metrics.add(name="h").histogram.data_points.add(count=3, sum=2.5)
    histogram.bucket_counts.extend([1, 2, 0])
    histogram.explicit_bounds.extend([0.1, 1.0])
    exponential = scope.metrics.add(name="e").exponential_histogram.data_points.add(scale=-2, zero_count=1)
    exponential.positive.offset = -4
    exponential.positive.bucket_counts.extend([5, 6])
    scope.metrics.add(name="s").summary.data_points.add(count=2).quantile_values.add(quantile=0.5, value=3.0)
    return request


def logs_request() -> ExportLogsServiceRequest:
    request = ExportLogsServiceRequest()
    record = request.resource_logs.add().scope_logs.add().log_records.add(
        severity_number=9, severity_text="INFO", trace_id=b"\x03" * 16, span_id=b"\x04" * 8, flags=1,
        event_name="gen_ai.budget.threshold_crossed")
    body = AnyValue()
    body.kvlist_value.values.add(key="list").value.array_value.values.add(bool_value=True)
    body.kvlist_value.values.add(key="raw").value.bytes_value = b"\x00\xff"
    record.body.CopyFrom(body)
    return request


@pytest.mark.parametrize(("signal", "request_message"), [(Signal.METRICS, metrics_request()),
                                                         (Signal.LOGS, logs_request())])
def test_metrics_and_logs_round_trip(signal, request_message):
    assert otlp_json.decode(signal, otlp_json.encode(signal, request_message)) == request_message
