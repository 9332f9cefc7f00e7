"""Fuzzing the decoders, the GenAI processors and the config loader: 85k cases, fixed seeds.

Seeded mutation loops do the bulk (mutated real samples, JSON and protobuf); hypothesis covers random
JSON, raw bytes, compressed bodies and YAML token soup.

Every input must end in a decoded message or the error a client is answered 400 with, never in an
exception of another kind (a crash of the request) or a hang.
"""

from __future__ import annotations

import gzip
import json
import random

import pytest
from google.protobuf.message import DecodeError
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from collector.batch import TelemetryBatch
from collector.config import ConfigError, parse_yaml
from collector.receivers import otlp_json
from collector.receivers.otlp_http import RequestRejected, decompress
from collector.service import build_service
from collector.signals import Signal
from pricing_catalog.catalog import PriceCatalog
from processors.genai_cost import CostConfig, GenAICost
from processors.genai_normalize import GenAINormalize
from tests.genai_helpers import SAMPLES, context
from tests.genai_helpers import run as genai_run
from tests.wire_mutations import mutate_wire

pytestmark = pytest.mark.fuzz
NORMALIZE, COST = GenAINormalize(), GenAICost(CostConfig(), context(), PriceCatalog())


def run(batch: TelemetryBatch) -> None:
    genai_run(batch, NORMALIZE, COST)


def fuzz(examples: int) -> settings:
    return settings(max_examples=examples, derandomize=True, deadline=None, database=None,
                    suppress_health_check=list(HealthCheck))


SAMPLE_JSON = [json.loads(p.read_bytes()) for p in sorted(SAMPLES.glob("*.json"))]
SAMPLE_WIRE = [otlp_json.decode(Signal.TRACES, p.read_bytes()).SerializeToString()
               for p in sorted(SAMPLES.glob("*.json"))]

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats(allow_nan=True) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4),
    max_leaves=30)
OTLP_KEYS = ["resourceSpans", "scopeSpans", "spans", "traceId", "spanId", "parentSpanId", "attributes", "key",
             "value", "intValue", "stringValue", "doubleValue", "arrayValue", "kvlistValue", "values", "links",
             "events", "kind", "startTimeUnixNano", "name", "resource", "scope", "status"]


def mutate_document(rng: random.Random, document: object) -> object:
    """A real dialect sample with a few values replaced by random ones (it keeps the OTLP shape, mostly)."""
    for _ in range(rng.randint(1, 6)):
        node, parent, key = document, None, None
        while isinstance(node, dict | list) and node and rng.random() < 0.75:
            key = rng.choice(list(node)) if isinstance(node, dict) else rng.randrange(len(node))
            parent, node = node, node[key]
        replacement = rng.choice([None, True, -1, 2**64, 1e308, float("nan"), "", "x" * rng.randint(1, 40), [], {},
                                  "0" * 32, "zz", [{"key": "k", "value": {}}], {"intValue": "nope"},
                                  rng.choice(OTLP_KEYS)])
        if parent is None:
            if isinstance(document, dict):
                document[rng.choice(OTLP_KEYS)] = replacement
        else:
            parent[key] = replacement
    return document


def decode_or_reject(body: bytes) -> None:
    """What the HTTP receiver does with a JSON body: a message, or a 400."""
    try:
        message = otlp_json.decode(Signal.TRACES, body)
    except otlp_json.OtlpJsonError:
        return
    batch = TelemetryBatch(Signal.TRACES, message)
    run(batch)  # and what the GenAI processors do with whatever decoded
    batch.serialized()


def test_otlp_json_decoder_on_mutated_samples():
    rng = random.Random(20261126)
    texts = [json.dumps(sample) for sample in SAMPLE_JSON]
    for _ in range(30_000):
        decode_or_reject(json.dumps(mutate_document(rng, json.loads(rng.choice(texts)))).encode())


@fuzz(2_000)  # hypothesis spends ~6 ms on each: the mutation loops carry the volume
@given(json_values)
def test_otlp_json_decoder_on_random_json(document):
    decode_or_reject(json.dumps(document).encode())


@fuzz(5_000)
@given(st.binary(max_size=300) | st.text(max_size=200).map(str.encode))
def test_otlp_json_decoder_raw_bytes(body):
    decode_or_reject(body)


def test_protobuf_decoder_and_processors():
    rng = random.Random(1126)
    for _ in range(40_000):
        wire = mutate_wire(rng, bytearray(rng.choice(SAMPLE_WIRE))) if rng.random() < 0.9 else \
            rng.randbytes(rng.randint(0, 400))
        try:
            batch = TelemetryBatch.from_wire(Signal.TRACES, wire)
        except DecodeError:
            continue
        run(batch)
        batch.serialized()


@fuzz(5_000)
@given(st.binary(max_size=200), st.sampled_from(["gzip", "deflate", "br", ""]))
def test_decompression(body, encoding):
    candidates = [body, gzip.compress(body)[: len(body) % 40 + 10]]
    for data in candidates:
        try:
            decompress(data, encoding, 1024)
        except RequestRejected as rejected:
            assert rejected.http_status in (400, 413, 415)


YAML_TOKENS = ["receivers:", "processors:", "exporters:", "service:", "pipelines:", "traces:", "otlp:", "batch:",
               "debug:", "protocols:", "grpc:", "http:", "endpoint:", "127.0.0.1:4317", "[otlp]", "[debug]", "{",
               "}", "[", "]", "-", ":", "  ", "\n", "${env:X}", "$$", "200ms", "timeout:", "send_batch_size:", "12",
               "genai_cost:", "price_files:", "'", '"', "&a", "*a", "!!python/object", "~", "null", "yes", "1e99"]


@fuzz(3_000)
@given(st.lists(st.sampled_from(YAML_TOKENS) | st.text(max_size=6), max_size=40))
def test_config_loader(tokens):
    text = " ".join(tokens) if random.Random(len(tokens)).random() < 0.5 else "".join(tokens)
    try:
        build_service(parse_yaml(text, "fuzz.yaml"))
    except ConfigError as error:
        assert str(error)
