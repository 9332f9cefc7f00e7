"""genai_normalize and genai_cost behaviour beyond the dialect samples."""

from __future__ import annotations

import gc
import json
import logging
import weakref
from decimal import Decimal

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from collector import attributes
from collector.api import metrics
from collector.batch import TelemetryBatch
from collector.storage.rows import CallColumns
from pricing_catalog.catalog import PriceCatalog
from processors import genai_cost
from processors.genai_attribution import AttributionConfig, GenAIAttribution
from processors.genai_cost import CostConfig, GenAICost
from processors.genai_normalize import GenAINormalize, NormalizeConfig
from tests.genai_helpers import as_batch, context, run, span_attributes

JAN_2026 = 1767225600 * 10**9
pytestmark = pytest.mark.usefixtures("hot_path")


def batch_of(*spans: dict, scope: str = "my.app") -> TelemetryBatch:
    """A traces batch with one span per mapping of attributes (``_name``, ``_trace``, ``_id``, ``_parent`` are
    special)."""
    request = ExportTraceServiceRequest()
    scope_spans = request.resource_spans.add().scope_spans.add()
    scope_spans.scope.name = scope
    for index, attrs in enumerate(spans):
        span = scope_spans.spans.add(name=attrs.get("_name", f"span{index}"), start_time_unix_nano=JAN_2026,
                                     trace_id=attrs.get("_trace", bytes(16)),
                                     span_id=attrs.get("_id", (index + 1).to_bytes(8, "big")),
                                     parent_span_id=attrs.get("_parent", b""))
        for key, value in attrs.items():
            if not key.startswith("_"):
                attributes.add(span, key, value)
    return as_batch(request)


OPENAI_CALL = {"gen_ai.provider.name": "openai", "gen_ai.operation.name": "chat", "gen_ai.request.model": "gpt-4o",
               "gen_ai.usage.input_tokens": 1000, "gen_ai.usage.output_tokens": 100}


def test_one_provider_call_reported_twice_is_priced_once_even_across_traces():
    normalize = GenAINormalize()
    first = batch_of({**OPENAI_CALL, "gen_ai.response.id": "chatcmpl-1", "_trace": b"\1" * 16})
    second = batch_of({**OPENAI_CALL, "gen_ai.response.id": "chatcmpl-1", "_trace": b"\2" * 16})
    run(first, normalize)
    run(second, normalize)
    assert first.genai[0].cost.status == "priced"
    assert second.genai[0].cost is None
    assert span_attributes(second)["span0"]["gen_ai.usage.cost.status"] == "duplicate"
    assert "gen_ai.usage.cost.amount" not in span_attributes(second)["span0"]


def test_a_client_retry_of_the_same_span_is_not_a_duplicate():
    normalize = GenAINormalize()
    for _ in range(2):
        retried = run(batch_of({**OPENAI_CALL, "gen_ai.response.id": "chatcmpl-2"}), normalize)
        assert retried.genai[0].cost.status == "priced"  # the ledger dedupes on (trace, span) id


def test_custom_mappings_read_a_homegrown_dialect():
    normalize = GenAINormalize(NormalizeConfig(custom_mappings={"acme.llm.vendor": "gen_ai.provider.name",
                                                                "acme.llm.model": "gen_ai.request.model",
                                                                "acme.tokens.in": "gen_ai.usage.input_tokens",
                                                                "acme.tokens.out": "gen_ai.usage.output_tokens"}))
    batch = run(batch_of({"acme.llm.vendor": "OpenAI", "acme.llm.model": "gpt-4o", "acme.tokens.in": 1000,
                          "acme.tokens.out": 100}), normalize)
    attrs = span_attributes(batch)["span0"]
    assert attrs["gen_ai.usage.input_tokens"] == 1000 and attrs["gen_ai.provider.name"] == "openai"
    assert attrs["gen_ai.usage.cost.amount"] == 0.0035  # 1000 × $2.50 + 100 × $10 per MTok
    assert attrs["acme.tokens.in"] == 1000


def test_keep_original_false_drops_dialect_names():
    batch = run(batch_of({"gen_ai.system": "OpenAI", "llm.request.type": "chat", "gen_ai.request.model": "gpt-4o",
                          "gen_ai.usage.prompt_tokens": 1000, "gen_ai.usage.completion_tokens": 100,
                          "server.address": "api.openai.com"}), GenAINormalize(NormalizeConfig(keep_original=False)))
    attrs = span_attributes(batch)["span0"]
    assert "gen_ai.usage.prompt_tokens" not in attrs and "gen_ai.system" not in attrs
    assert attrs["gen_ai.usage.input_tokens"] == 1000 and attrs["server.address"] == "api.openai.com"
    assert attrs["gen_ai.usage.cost.amount"] == 0.0035


@pytest.mark.parametrize(("host", "provider", "catalog_provider"), [
    ("api.groq.com", "groq", "groq"), ("myres.openai.azure.com", "azure.ai.openai", "azure"),
    ("openrouter.ai", "openrouter", "openrouter"), ("api.deepseek.com", "deepseek", "deepseek")])
def test_openai_compatible_endpoints_get_their_real_provider(host, provider, catalog_provider):
    model = {"groq": "llama-3.3-70b-versatile", "openrouter": "openai/gpt-4o", "deepseek": "deepseek-chat"}.get(
        provider, "gpt-4o")
    batch = run(batch_of({**OPENAI_CALL, "gen_ai.request.model": model, "server.address": host},
                         scope="opentelemetry.instrumentation.openai_v2"))
    attrs = span_attributes(batch)["span0"]
    assert attrs["gen_ai.provider.name"] == provider
    assert attrs["gen_ai.normalize.original.gen_ai.provider.name"] == "openai"
    assert attrs["gen_ai.usage.cost.pricing.provider"] == catalog_provider


def test_cache_larger_than_input_means_input_was_exclusive():
    batch = run(batch_of({"gen_ai.provider.name": "anthropic", "gen_ai.request.model": "claude-sonnet-4-5",
                          "gen_ai.usage.input_tokens": 150, "gen_ai.usage.output_tokens": 420,
                          "gen_ai.usage.cache_read.input_tokens": 4000,
                          "gen_ai.usage.cache_creation.input_tokens": 1000}))
    assert span_attributes(batch)["span0"]["gen_ai.usage.input_tokens"] == 5150
    assert batch.genai[0].cost.amount == Decimal("0.0117")


def test_reasoning_larger_than_output_is_added():
    batch = run(batch_of({"gen_ai.provider.name": "gcp.gemini", "gen_ai.request.model": "gemini-2.5-flash",
                          "gen_ai.usage.input_tokens": 100, "gen_ai.usage.output_tokens": 50,
                          "gen_ai.usage.reasoning.output_tokens": 200}))
    assert span_attributes(batch)["span0"]["gen_ai.usage.output_tokens"] == 250


def test_statuses_for_missing_negative_and_unknown(caplog):
    telemetry_context = context()
    cost = GenAICost(CostConfig(), telemetry_context, PriceCatalog())
    batch = batch_of({"gen_ai.provider.name": "openai", "gen_ai.request.model": "gpt-4o"},
                     {**OPENAI_CALL, "gen_ai.usage.input_tokens": -5},
                     {**OPENAI_CALL, "gen_ai.request.model": "gpt-unknown-9"},
                     {**OPENAI_CALL, "gen_ai.request.model": "gpt-unknown-9"})
    with caplog.at_level(logging.WARNING):
        run(batch, cost=cost)
    statuses = [c.cost.status for c in batch.genai]
    assert statuses == ["no_usage", "invalid_usage", "unpriced", "unpriced"]
    attrs = span_attributes(batch)["span2"]
    assert "gen_ai.usage.cost.amount" not in attrs  # never a silent 0
    assert [r.getMessage() for r in caplog.records].count("no price for model") == 1
    assert telemetry_context.telemetry.labeled("unpriced_calls") == {
        (("provider", "openai"), ("model", "gpt-unknown-9")): 2}


def test_an_unpriced_call_keeps_nothing_alive_once_it_is_done():
    """Pricing a model with no price must not hold on to the call: a cached LookupError raised again for
    every unpriced call once kept each caller's frames, and so every request, alive (1.5 GB in 20 s)."""
    cost = GenAICost(CostConfig(), context(), PriceCatalog())
    calls = []
    for _ in range(3):
        batch = run(batch_of({**OPENAI_CALL, "gen_ai.request.model": "gpt-unknown-9"}), cost=cost)
        assert batch.genai[0].cost.status == "unpriced"
        calls.append(weakref.ref(batch.genai[0]))
        del batch
    gc.collect()
    assert [ref() for ref in calls] == [None, None, None]


def test_unpriced_models_past_the_label_limit_are_counted_together(monkeypatch):
    monkeypatch.setattr(genai_cost, "MODEL_LABELS", 2)  # 1000 in production
    telemetry_context = context()
    batch = batch_of(*({**OPENAI_CALL, "gen_ai.request.model": f"req-{i}-model"} for i in range(5)))
    run(batch, cost=GenAICost(CostConfig(), telemetry_context, PriceCatalog()))
    assert telemetry_context.telemetry.labeled("unpriced_calls") == {
        (("provider", "openai"), ("model", "req-0-model")): 1, (("provider", "openai"), ("model", "req-1-model")): 1,
        (("provider", "openai"), ("model", "__other__")): 3}


def test_cost_counters_count_models_past_the_label_limit_together(monkeypatch):
    monkeypatch.setattr(metrics, "MODEL_LABELS", 2)  # 1000 in production
    batch = run(batch_of(*({**OPENAI_CALL, "gen_ai.request.model": model}
                           for model in ("gpt-4o", "gpt-4o-mini", "o4-mini", "gpt-4.1"))))
    columns = CallColumns(("customer", "feature"))
    columns.add(batch)
    counters = metrics.CostCounters()
    counters.on_commit(None, columns, list(range(columns.rows)))
    assert sorted(labels[1] for labels in counters.calls) == ["__other__", "gpt-4o", "gpt-4o-mini"]
    assert sum(counters.calls.values()) == 4


def test_attribution_values_past_max_cardinality_become_other():
    attribution = GenAIAttribution(AttributionConfig(customer=("span.customer.id",), max_cardinality=2))
    batch = run(batch_of(*({**OPENAI_CALL, "customer.id": f"c{i % 3}"} for i in range(5))), also=[attribution])
    assert [call.attribution["customer"] for call in batch.genai] == ["c0", "c1", "__other__", "c0", "c1"]


def test_prefer_reported_and_openlit_compat():
    cost = GenAICost(CostConfig(prefer="reported", compat=("openlit",)), context(), PriceCatalog())
    batch = run(batch_of({**OPENAI_CALL, "operation.cost": 0.004}), cost=cost)
    attrs = span_attributes(batch)["span0"]
    assert attrs["gen_ai.usage.cost.amount"] == 0.004
    assert attrs["gen_ai.usage.cost.source"] == "provider"
    assert attrs["gen_ai.usage.cost.input"] == 0.0025  # our breakdown stays
    assert attrs["gen_ai.usage.cost.mismatch"] is True  # 0.0035 vs 0.004
    assert attrs["gen_ai.usage.cost"] == 0.004


def test_unpriced_model_with_reported_cost_uses_it():
    batch = run(batch_of({**OPENAI_CALL, "gen_ai.request.model": "gpt-unknown-9", "gen_ai.usage.cost": 0.01}))
    attrs = span_attributes(batch)["span0"]
    assert (attrs["gen_ai.usage.cost.status"], attrs["gen_ai.usage.cost.source"]) == ("priced", "provider")
    assert attrs["gen_ai.usage.cost.amount"] == 0.01


def test_price_changes_with_span_start_time():
    early = batch_of({**OPENAI_CALL, "gen_ai.request.model": "o4-mini", "openai.response.service_tier": "flex"})
    late = batch_of({**OPENAI_CALL, "gen_ai.request.model": "o4-mini", "openai.response.service_tier": "flex"})
    late.message.resource_spans[0].scope_spans[0].spans[0].start_time_unix_nano = JAN_2026 + 300 * 86_400 * 10**9
    run(early), run(late)
    assert early.genai[0].cost.amount == Decimal("0.00154")  # standard: 1000 × $1.10 + 100 × $4.40
    assert late.genai[0].cost.amount == Decimal("0.00077")  # flex from 2026-10-12: half
    assert span_attributes(late)["span0"]["gen_ai.usage.cost.tier"] == "flex"


def test_non_genai_spans_are_untouched():
    batch = batch_of({"http.request.method": "GET", "url.path": "/"})
    before = batch.message.SerializeToString()
    run(batch)
    assert batch.genai == [] and batch.message.SerializeToString() == before


def test_vercel_provider_metadata_tier_and_langfuse_json():
    batch = run(batch_of({"ai.operationId": "ai.generateText.doGenerate", "ai.model.provider": "openai.responses",
                          "ai.model.id": "o4-mini", "ai.usage.inputTokens": 1000, "ai.usage.outputTokens": 100,
                          "ai.response.providerMetadata": json.dumps({"openai": {"serviceTier": "priority"}})},
                         scope="ai"))
    assert batch.genai[0].tier == "priority"


def test_a_priced_span_with_a_priced_child_is_the_duplicate():
    # OpenInference wraps messages.create; the anthropic SDK's own span is its child, with the response id
    parent = {**OPENAI_CALL, "_id": b"\1" * 8}
    child = {**OPENAI_CALL, "gen_ai.response.id": "chatcmpl-9", "_id": b"\2" * 8}
    batch = batch_of(child, parent)
    batch.message.resource_spans[0].scope_spans[0].spans[0].parent_span_id = b"\1" * 8
    run(batch)
    statuses = {c.span.span_id: (c.cost.status if c.cost else c.skip_reason) for c in batch.genai}
    assert statuses == {b"\2" * 8: "priced", b"\1" * 8: "duplicate"}


def test_absurd_numbers_never_reach_a_total():
    batch = batch_of({**OPENAI_CALL, "gen_ai.usage.input_tokens": 10**15},
                     {**OPENAI_CALL, "gen_ai.usage.output_tokens": 1e30},
                     {**OPENAI_CALL, "gen_ai.usage.input_tokens": "lots"},
                     {**OPENAI_CALL, "gen_ai.usage.cost": float("nan")})
    run(batch)
    statuses = [c.cost.status for c in batch.genai]
    assert statuses == ["invalid_usage", "invalid_usage", "invalid_usage", "priced"]
    assert all(c.cost.amount is None for c in batch.genai[:3])
    nan_reported = span_attributes(batch)["span3"]
    assert "gen_ai.usage.cost.reported" not in nan_reported and nan_reported["gen_ai.usage.cost.amount"] == 0.0035


LITELLM_OPENAI = {"gen_ai.system": "openai", "gen_ai.request.model": "gpt-4o-mini", "llm.request.type": "completion",
                  "gen_ai.usage.input_tokens": 1200, "gen_ai.usage.output_tokens": 300,
                  "gen_ai.cost.total_cost": 0.000345, "_name": "litellm_request",
                  "metadata.usage_object": "{'completion_tokens': 300, 'prompt_tokens': 1200, 'total_tokens': 1500, "
                                           "'completion_tokens_details': {'reasoning_tokens': 0}, "
                                           "'prompt_tokens_details': {'cached_tokens': 200, 'audio_tokens': None}}"}


def test_litellm_cached_tokens_from_its_usage_object_and_its_cost_as_reported():
    """LiteLLM's span counts the cache in input_tokens but names it only in the repr of its Usage object:
    200 of 1,200 cached is 0.000345, not 0.00036 (issue 19)."""
    attrs = span_attributes(run(batch_of(LITELLM_OPENAI, scope="litellm")))["litellm_request"]
    assert attrs["gen_ai.normalize.dialect"] == "litellm"
    assert attrs["gen_ai.usage.cache_read.input_tokens"] == 200 and attrs["gen_ai.usage.input_tokens"] == 1200
    assert attrs["gen_ai.usage.cost.amount"] == 0.000345
    assert attrs["gen_ai.usage.cost.reported"] == 0.000345 and attrs["gen_ai.usage.cost.mismatch"] is False


@pytest.mark.parametrize("usage_object", [
    "__import__('os').system('echo pwned')",  # never evaluated, only parsed as a literal
    "{'prompt_tokens_details': {'cached_tokens': -5}}", "[" * 10_000, "{'a': 1" + ", 'b': 2" * 20_000 + "}",
    "not python at all"])
def test_a_usage_object_that_is_not_a_plain_literal_is_ignored_or_refused(usage_object):
    batch = run(batch_of({**LITELLM_OPENAI, "metadata.usage_object": usage_object}, scope="litellm"))
    call = batch.genai[0]
    assert call.cache_read == 0 or call.usage_error
    if "-5" in usage_object:
        assert call.cost.status == "invalid_usage"
    else:  # LiteLLM reports 0.000345: below the price of the tokens seen, so some (cached) are missing
        assert call.cost.status == "incomplete_usage" and call.cost.amount == Decimal("0.00036")


RAW_OPENAI_USAGE = "{'completion_tokens': 300, 'prompt_tokens': 1200, 'total_tokens': 1500, " \
                   "'prompt_tokens_details': {'cached_tokens': 200}}"


def raw_request(span_id: bytes, response_id: str, parent: bytes = b"", **usage: str) -> dict:
    """LiteLLM's ``raw_gen_ai_request`` span: the provider's own response under ``llm.<provider>.*``."""
    provider, text = next(iter(usage.items())) if usage else ("openai", RAW_OPENAI_USAGE)
    return {"_name": "raw_gen_ai_request", "_id": span_id, "_parent": parent, f"llm.{provider}.usage": text,
            f"llm.{provider}.id": response_id, f"llm.{provider}.model": "gpt-4o-mini-2024-07-18"
            if provider == "openai" else "claude-sonnet-4-5-20250929", f"llm.{provider}.object": "chat.completion"}


def test_litellm_inside_an_app_span_prices_each_call_from_its_raw_request():
    """Issue 19: inside an app's span LiteLLM writes gen_ai.* onto that span (a second call overwrites the first);
    each call still has its own raw_gen_ai_request child. Two calls of 0.000345, not one of 0.00036."""
    app_span = {**LITELLM_OPENAI, "_name": "POST /checkout", "_id": b"app-span", "gen_ai.response.id": "chatcmpl-2"}
    del app_span["metadata.usage_object"]
    batch = run(batch_of(app_span, raw_request(b"raw-one!", "chatcmpl-1", b"app-span"),
                         raw_request(b"raw-two!", "chatcmpl-2", b"app-span"), scope="litellm"))
    calls = {call.span.name + call.span.span_id.decode(): call for call in batch.genai}
    priced = [call for call in batch.genai if call.billable]
    assert [c.span.span_id for c in priced] == [b"raw-one!", b"raw-two!"]
    assert all(c.cost.amount == Decimal("0.000345") and c.cache_read == 200 and c.input == 1200 for c in priced)
    assert priced[0].provider == "openai" and priced[0].response_model == "gpt-4o-mini-2024-07-18"
    assert calls["POST /checkoutapp-span"].skip_reason == "duplicate"


def test_litellm_request_and_its_raw_child_count_once_with_litellms_cost_as_reported():
    wrapper = {**LITELLM_OPENAI, "_id": b"wrapper!", "gen_ai.response.id": "chatcmpl-1"}
    batch = run(batch_of(raw_request(b"raw-one!", "chatcmpl-1", b"wrapper!"), wrapper, scope="litellm"))
    raw, request = batch.genai
    assert (raw.billable, request.billable, request.skip_reason) == (True, False, "duplicate")
    attrs = span_attributes(batch)["raw_gen_ai_request"]
    assert attrs["gen_ai.usage.cost.amount"] == 0.000345
    assert attrs["gen_ai.usage.cost.reported"] == 0.000345 and attrs["gen_ai.usage.cost.mismatch"] is False


def test_litellm_raw_anthropic_usage_counts_the_cache_into_the_input():
    usage = "{'input_tokens': 150, 'cache_read_input_tokens': 4000, 'cache_creation_input_tokens': 1000, " \
            "'output_tokens': 420}"
    (call,) = run(batch_of(raw_request(b"raw-one!", "msg_1", anthropic=usage), scope="litellm")).genai
    assert (call.provider, call.input, call.cache_read, call.cache_write, call.output) == (
        "anthropic", 5150, 4000, 1000, 420)
    assert call.cost.amount == Decimal("0.0117")


def test_token_counts_that_do_not_add_up_are_flagged_not_priced_as_complete():
    """Issue 19's general rule: a total above input + output, or a reported cost below the price of the tokens
    seen on a span naming no cached tokens, marks the call incomplete_usage with the reason on the span."""
    total = {**OPENAI_CALL, "gen_ai.usage.total_tokens": 1700}  # 1000 in + 100 out
    cheaper = {**OPENAI_CALL, "gen_ai.usage.cost": 0.0025, "_id": b"cheaper!"}
    fine = {**OPENAI_CALL, "gen_ai.usage.total_tokens": 1100, "_id": b"fine-one"}
    batch = run(batch_of(total, cheaper, fine))
    assert [c.cost.status for c in batch.genai] == ["incomplete_usage", "incomplete_usage", "priced"]
    reasons = [attrs.get("gen_ai.usage.cost.reason", "") for attrs in span_attributes(batch).values()]
    assert reasons[0].startswith("total_tokens 1700 exceeds input + output (1100)")
    assert "cached tokens" in reasons[1] and reasons[2] == ""
    assert batch.genai[0].cost.amount == Decimal("0.0035")  # still priced from what the span says


def test_two_openinference_spans_of_one_call_in_two_traces_are_priced_once():
    """Issue 19: LangChain's and the OpenAI SDK's OpenInference instrumentations both on report one call twice,
    in two traces; the response id, which OpenInference keeps only inside output.value, ties them."""
    llm = {"openinference.span.kind": "LLM", "llm.system": "openai", "llm.model_name": "gpt-4o-mini-2024-07-18",
           "llm.token_count.prompt": 2048, "llm.token_count.completion": 312, "output.mime_type": "application/json"}
    sdk = {**llm, "_name": "ChatCompletion", "_trace": b"t" * 16,
           "output.value": '{"id":"chatcmpl-fake1","choices":[],"model":"gpt-4o-mini-2024-07-18"}'}
    chain = {**llm, "_name": "ChatOpenAI", "_trace": b"u" * 16, "_id": b"langchai",
             "output.value": '{"generations": [[{"message": {"kwargs": {"response_metadata": {"id": "chatcmpl-fake1"}, '
                             '"id": "lc_run--01a2"}}}]]}'}
    other = {**sdk, "_name": "another call", "_id": b"another!", "output.value": '{"id": "chatcmpl-fake2"}'}
    batch = run(batch_of(sdk, chain, other, scope="openinference.instrumentation.openai"))
    assert [c.response_id for c in batch.genai] == ["chatcmpl-fake1", "chatcmpl-fake1", "chatcmpl-fake2"]
    assert [c.cost.status if c.billable else c.skip_reason for c in batch.genai] == ["priced", "duplicate", "priced"]


def test_litellm_semconv_mode_reads_the_cache_from_its_usage_object_too():
    """With OTEL_SEMCONV_STABILITY_OPT_IN=gen_ai_latest_experimental LiteLLM names the provider with
    gen_ai.provider.name and the span after the model, and still leaves OpenAI's cached tokens out."""
    semconv = {key: value for key, value in LITELLM_OPENAI.items() if key != "gen_ai.system"}
    semconv.update({"gen_ai.provider.name": "openai", "gen_ai.operation.name": "chat", "_name": "chat gpt-4o-mini"})
    attrs = span_attributes(run(batch_of(semconv, scope="litellm")))["chat gpt-4o-mini"]
    assert attrs["gen_ai.usage.cache_read.input_tokens"] == 200 and attrs["gen_ai.usage.cost.amount"] == 0.000345
    assert attrs["gen_ai.usage.cost.status"] == "priced" and attrs["gen_ai.usage.cost.mismatch"] is False


def test_names_of_the_wrong_kind_are_ignored_not_fatal():
    """A boolean model, an array operation, a numeric response id (found by the differential fuzz: they used
    to raise in the span reader, failing the whole request)."""
    batch = batch_of({**OPENAI_CALL, "gen_ai.request.model": True, "gen_ai.operation.name": ["chat"],
                      "gen_ai.response.id": 42, "gen_ai.response.model": b"gpt-4o"})
    call = run(batch).genai[0]
    assert (call.request_model, call.response_model, call.operation, call.response_id) == (None, None, "chat", "42")
    assert call.cost.status == "unpriced"
    attrs = span_attributes(batch)["span0"]  # what the app sent stays; the canonical names are written as text
    assert attrs["gen_ai.request.model"] is True and attrs["gen_ai.response.model"] == b"gpt-4o".hex()
    assert (attrs["gen_ai.operation.name"], attrs["gen_ai.normalize.original.gen_ai.operation.name"]) == ("chat",
                                                                                                        ["chat"])
    assert (attrs["gen_ai.response.id"], attrs["gen_ai.normalize.original.gen_ai.response.id"]) == ("42", 42)
