"""Each dialect sample → the canonical values and the exact price, with the reason spelled out.

Prices are genai-prices 0.2.3's at the samples' start time (2026-01-01). The Anthropic samples all
describe one call: raw input 150, cache read 4000, cache write 1000, output 420.
"""

from __future__ import annotations

from decimal import Decimal

import pytest

from processors import dialects
from tests.genai_helpers import load_sample, run, span_attributes

D = Decimal
pytestmark = pytest.mark.usefixtures("hot_path")
CASES = [
    # sample, span, dialect, provider, model priced, input (inclusive), output, cache r/w, amount, why
    ("01", "chat gpt-4o-mini", "otel_semconv", "openai", "gpt-4o-mini", 2048, 312, 0, 0,
     D("0.0004944"), "2048 × $0.15 + 312 × $0.60 per MTok; tier flex, but gpt-4o-mini has no flex price"),
    ("02", "chat gpt-4o", "otel_semconv", "openai", "gpt-4o", 1200, 85, 0, 0,
     D("0.00385"), "legacy gen_ai.system + gen_ai.openai.* names; 1200 × $2.50 + 85 × $10"),
    ("03", "anthropic.chat", "openllmetry", "anthropic", "claude-sonnet-4-5", 5150, 420, 4000, 1000,
     D("0.01170"), "input already summed (150 + 4000 + 1000): 150 × $3 + 4000 × $0.30 + 1000 × $3.75 + 420 × $15"),
    ("04", "openai.chat", "openllmetry_legacy", "openai", "gpt-4o", 3000, 200, 2048, 0,
     D("0.00694"), "prompt_tokens include the 2048 cached: 952 × $2.50 + 2048 × $1.25 + 200 × $10"),
    ("05", "ChatCompletion", "openinference", "openai", "o4-mini", 1500, 900, 1024, 0,
     D("0.0047652"), "476 × $1.10 + 1024 × $0.275 + 900 × $4.40 (reasoning 640 is inside the 900); "
                     "flex prices for o4-mini start 2026-10-12, after this call"),
    ("06", "messages.create", "openinference", "aws.bedrock", "regional.anthropic.claude-sonnet-4-5-20250929-v1:0",
     5150, 420, 4000, 1000, D("0.012870"),
     "llm.provider=aws: Bedrock's regional (us.) price, 10% above Anthropic's: 150 × $3.30 + 4000 × $0.33 "
     "+ 1000 × $4.125 + 420 × $16.50"),
    ("07", "chat claude-sonnet-4-5", "openlit", "anthropic", "claude-sonnet-4-5", 5150, 420, 4000, 1000,
     D("0.01170"), "OpenLIT reports Anthropic's raw 150: cache added back (150 + 4000 + 1000 = 5150)"),
    ("08", "ai.streamText.doStream", "vercel_ai", "anthropic", "claude-sonnet-4-5", 5150, 420, 4000, 1000,
     D("0.01170"), "v6 inputTokens is cache-inclusive; only the doStream child is priced"),
    ("09", "chat gpt-5-mini", "pydantic_ai", "openai", "gpt-5-mini", 2500, 700, 1024, 0,
     D("0.0017946"), "1476 × $0.25 + 1024 × $0.025 + 700 × $2"),
    ("10", "chat us.anthropic.claude-3-7-sonnet-20250219-v1:0", "otel_botocore", "aws.bedrock",
     "regional.anthropic.claude-3-7-sonnet-20250219-v1:0", 5150, 420, 4000, 1000, D("0.01170"),
     "Converse inputTokens excludes cache: 150 + 4000 + 1000; 150 × $3 + 4000 × $0.30 + 1000 × $3.75 + 420 × $15"),
    ("11", "call_llm", "google_adk", "gcp.gen_ai", "gemini-2.5-flash", 3000, 900, 2048, 0,
     D("0.00259704"), "gen_ai.system=gcp.vertex.agent is a framework: provider from the model; "
                      "952 × $0.30 + 2048 × $0.03 + 900 × $2.50 (thoughts 600 inside output)"),
    ("12", "OpenAI-generation", "langfuse", "openai", "gpt-4o", 3000, 200, 2048, 0,
     D("0.00694"), "usage_details input 952 excludes input_cached_tokens 2048: 3000 inclusive"),
]


@pytest.mark.parametrize(("sample", "span", "dialect", "provider", "model", "input_tokens", "output_tokens",
                          "cache_read", "cache_write", "amount", "why"), CASES, ids=[c[0] for c in CASES])
def test_sample_is_normalised_and_priced(sample, span, dialect, provider, model, input_tokens, output_tokens,
                                         cache_read, cache_write, amount, why):
    batch = run(load_sample(sample))
    call = next(c for c in batch.genai if c.span.name == span)
    assert call.billable, why
    assert (call.dialect, call.provider) == (dialect, provider)
    assert call.cost.amount == amount, why
    assert call.cost.match.model_id == model
    attrs = span_attributes(batch)[span]
    assert attrs[dialects.DIALECT] == dialect
    assert attrs[dialects.PROVIDER] == provider
    assert attrs[dialects.INPUT_TOKENS] == input_tokens, why
    assert attrs[dialects.OUTPUT_TOKENS] == output_tokens
    assert attrs.get(dialects.CACHE_READ_TOKENS, 0) == cache_read
    assert attrs.get(dialects.CACHE_WRITE_TOKENS, 0) == cache_write
    assert attrs["gen_ai.usage.cost.amount"] == float(amount)
    assert attrs["gen_ai.usage.cost.status"] == "priced"
    assert attrs["gen_ai.usage.cost.currency"] == "USD"
    assert attrs["gen_ai.usage.cost.source"] == "local"
    assert attrs["gen_ai.usage.cost.pricing.snapshot"] == "genai-prices 0.2.3"
    parts = sum(attrs.get(f"gen_ai.usage.cost.{k}", 0)  # zero parts are omitted
                for k in ("input", "output", "cache_read", "cache_write", "other"))
    assert parts == pytest.approx(float(amount), abs=1e-12)


@pytest.mark.parametrize(("sample", "wrapper"), [("08", "ai.streamText"), ("09", "invoke_agent support_agent")])
def test_wrapper_spans_carry_no_cost(sample, wrapper):
    batch = run(load_sample(sample))
    attrs = span_attributes(batch)[wrapper]
    assert not any(k.startswith("gen_ai.usage.cost") for k in attrs)
    assert dialects.INPUT_TOKENS not in attrs  # aggregated usage is not copied onto the wrapper
    priced = [c for c in batch.genai if c.cost is not None]
    assert len(priced) == 1, "one provider call, priced once"


def test_openlit_keeps_the_sent_value_and_the_reported_cost():
    attrs = span_attributes(run(load_sample("07")))["chat claude-sonnet-4-5"]
    assert attrs["gen_ai.normalize.original.gen_ai.usage.input_tokens"] == 150
    assert attrs["gen_ai.usage.cost.reported"] == 0.009255
    assert attrs["gen_ai.usage.cost.mismatch"] is True  # OpenLIT's figure ignores the cache


def test_openlit_zero_cost_means_it_had_no_price_not_a_free_call():
    batch = load_sample("07")
    for rs in batch.message.resource_spans:
        for ss in rs.scope_spans:
            for span in ss.spans:
                for kv in span.attributes:
                    if kv.key == "gen_ai.usage.cost":
                        kv.value.int_value = 0  # what OpenLIT 1.45 sends when its pricing JSON lacks the model
    attrs = span_attributes(run(batch))["chat claude-sonnet-4-5"]
    assert attrs["gen_ai.usage.cost.status"] == "priced"
    assert attrs["gen_ai.usage.cost.source"] == "local"
    assert "gen_ai.usage.cost.reported" not in attrs and "gen_ai.usage.cost.mismatch" not in attrs


def test_reported_cost_within_tolerance_is_not_a_mismatch():
    attrs = span_attributes(run(load_sample("09")))["chat gpt-5-mini"]
    assert attrs["gen_ai.usage.cost.reported"] == 0.0018
    assert attrs["gen_ai.usage.cost.mismatch"] is False  # 0.0017946 vs 0.0018: 0.3%


def test_legacy_names_gain_canonical_ones_and_keep_the_originals():
    attrs = span_attributes(run(load_sample("04")))["openai.chat"]
    assert attrs["gen_ai.usage.prompt_tokens"] == 3000
    assert attrs["gen_ai.usage.cache_read_input_tokens"] == 2048
    assert attrs[dialects.PROVIDER] == "openai"  # from gen_ai.system "OpenAI"
    assert attrs["gen_ai.system"] == "OpenAI"
