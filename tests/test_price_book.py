"""Price files: custom models, aliases, dated adjustments, currency; bad files rejected with line numbers."""

from __future__ import annotations

import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest

from collector.config import ConfigError
from pricing_catalog import overrides
from pricing_catalog.catalog import PriceCatalog
from pricing_catalog.compiled import from_pico
from processors import dialects
from processors.genai_cost import CostConfig, GenAICost
from tests.genai_helpers import context, load_sample, run, span_attributes

EXAMPLE = Path(__file__).parent.parent / "config" / "examples" / "prices.yaml"
JAN_2026 = 1767225600 * 10**9  # 2026-01-01T00:00:00Z
DAY = 86_400 * 10**9


def catalog(tmp_path, text: str) -> PriceCatalog:
    path = tmp_path / "prices.yaml"
    path.write_text(text)
    return PriceCatalog.from_files([path])


def test_discount_applies_from_its_date(tmp_path):
    book = catalog(tmp_path, "adjustments: [{provider: anthropic, model: 'claude-*', percent: -15, from: 2026-01-02}]")
    usage = {"input_tokens": 100_000, "output_tokens": 0}  # below the 200k long-context tier
    before = book.lookup("anthropic", "claude-sonnet-4-5", JAN_2026, "standard").price(usage)
    after = book.lookup("anthropic", "claude-sonnet-4-5", JAN_2026 + DAY, "standard").price(usage)
    assert from_pico(before.total) == Decimal("0.3")
    assert from_pico(after.total) == Decimal("0.3") * Decimal("0.85")
    assert book.lookup("openai", "gpt-4o", JAN_2026 + DAY, "standard").factor is None


def test_custom_model_with_dated_prices(tmp_path):
    book = catalog(tmp_path, """
custom_models:
  - id: acme-llama
    provider: vllm
    match: {regex: "^llama-3\\\\.3-70b"}
    prices:
      - {from: 2026-01-01, input_mtok: 0.20, output_mtok: 0.60}
      - {from: 2026-06-01, input_mtok: 0.15, output_mtok: 0.45}
""")
    usage = {"input_tokens": 2_000_000, "output_tokens": 1_000_000}
    january = book.lookup("vllm", "llama-3.3-70b-instruct", JAN_2026, "standard")
    assert (january.model_id, january.source) == ("acme-llama", "override:prices.yaml")
    assert from_pico(january.price(usage).total) == Decimal("1.00")
    july = book.lookup("vllm", "llama-3.3-70b-instruct", JAN_2026 + 200 * DAY, "standard")
    assert from_pico(july.price(usage).total) == Decimal("0.75")
    with pytest.raises(LookupError, match="no price before"):
        book.lookup("vllm", "llama-3.3-70b", JAN_2026 - DAY, "standard")
    with pytest.raises(LookupError, match="self-hosted"):
        book.lookup("vllm", "mistral-7b", JAN_2026, "standard")


def test_alias_maps_an_azure_deployment_to_a_model(tmp_path):
    book = catalog(tmp_path, """
aliases:
  - {match: {provider: azure.ai.openai, model: "prod-*"}, model: gpt-4o-2024-08-06}
""")
    match = book.lookup("azure.ai.openai", "prod-eu-1", JAN_2026, "standard")
    assert (match.provider_id, match.model_id) == ("azure", "gpt-4o")


def test_currency_conversion_records_the_rate(tmp_path):
    path = tmp_path / "eur.yaml"
    path.write_text("currency: EUR\nexchange_rates: [{date: 2025-06-01, rate: 0.9}, {date: 2026-01-01, rate: 0.92}]\n")
    batch = run(load_sample("02"), catalog=PriceCatalog.from_files([path]))
    attrs = span_attributes(batch)["chat gpt-4o"]
    assert attrs["gen_ai.usage.cost.currency"] == "EUR"
    assert attrs["gen_ai.usage.cost.exchange_rate"] == 0.92
    assert batch.genai[0].cost.amount == Decimal("0.00385") * Decimal("0.92")
    assert attrs["gen_ai.usage.cost.amount"] == 0.003542
    assert attrs["gen_ai.usage.cost.pricing.snapshot"].startswith("genai-prices 0.2.3+overrides:")


def test_example_price_file_is_valid():
    book = overrides.load([EXAMPLE])
    assert (book.currency, len(book.custom_models), len(book.aliases), len(book.adjustments)) == ("EUR", 1, 1, 1)


@pytest.mark.parametrize(("text", "line", "message"), [
    ("custom_models:\n  - id: x\n    match: {prefix: foo}\n    prices:\n      - {input_mtk: 0.2}\n", 5,
     "unknown price key"),
    ("custom_models:\n  - id: x\n    match: {prefix: foo, regex: bar}\n    prices: [{input_mtok: 1}]\n", 3,
     "exactly one of exact, prefix or regex"),
    ("adjustments:\n  - {provider: openai, percent: -120}\n", 2, "100% or more"),
    ("adjustments:\n  - {provider: openai, percent: 10, from: 2026-13-01}\n", 2, "month must be in 1..12"),
    ("adjustments:\n  - {provider: openai, percent: 10, from: 'soon'}\n", 2, "is not a date"),
    ("currency: EUR\n", None, "needs exchange_rates"),
    ("aliases:\n  - {match: {model: a}}\n", 2, "needs a target model or provider"),
    ("custom_models: [{id: x, match: {regex: '('}, prices: [{input_mtok: 1}]}]\n", 1, "invalid regular expression"),
    ("bogus: 1\n", 1, "unknown key"),
])
def test_bad_price_file_is_rejected_with_its_line(tmp_path, text, line, message):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message) as error:
        overrides.load([path])
    if line is not None:
        assert error.value.line == line


def test_collector_refuses_to_start_with_a_bad_price_file(tmp_path):
    (tmp_path / "bad.yaml").write_text("custom_models:\n  - id: x\n    match: {prefix: foo}\n    prices: []\n")
    (tmp_path / "c.yaml").write_text("""
receivers: {otlp: {protocols: {http: {endpoint: 127.0.0.1:0}}}}
processors:
  genai_cost: {price_files: [bad.yaml]}
exporters: {debug: {}}
service: {pipelines: {traces: {receivers: [otlp], processors: [genai_cost], exporters: [debug]}}}
""")
    for command in ("run", "validate"):
        result = subprocess.run([sys.executable, "-m", "collector", command, "--config", str(tmp_path / "c.yaml")],
                                capture_output=True, text=True, timeout=60)
        assert result.returncode == 1
        assert "bad.yaml:4: custom_models[0].prices: a custom model needs at least one price" in result.stderr


def test_pricing_cli(tmp_path):
    from tests.conftest import run_cli

    def cli(*args: str):
        return run_cli("pricing", *args)

    found = cli("lookup", "--provider", "anthropic", "--model", "claude-sonnet-4-5-20250929", "--at", "2026-01-01")
    assert found.returncode == 0
    assert "model        claude-sonnet-4-5" in found.stdout
    assert "input_tokens                 $3 / MTok ($6 above 200,000 input tokens)" in found.stdout
    flex = cli("lookup", "--provider", "openai", "--model", "o4-mini", "--at", "2026-11-01", "--tier", "flex")
    assert "input_tokens                 $0.55 / MTok" in flex.stdout
    missing = cli("lookup", "--provider", "openai", "--model", "no-such-model")
    assert missing.returncode == 1 and "no price for openai/no-such-model" in missing.stderr
    listing = cli("list", "--provider", "anthropic", "--search", "sonnet-4-5")
    assert listing.returncode == 0 and "claude-sonnet-4-5" in listing.stdout
    assert cli("check", str(EXAMPLE)).returncode == 0
    (tmp_path / "bad.yaml").write_text("adjustments: [{percent: x}]\n")
    bad = cli("check", str(tmp_path / "bad.yaml"))
    assert bad.returncode == 1 and "bad.yaml:1: adjustments[0].percent: 'x' is not a number" in bad.stderr


def test_provider_names_are_normalised():
    assert dialects.normalize_provider("OpenAI") == "openai"
    assert dialects.normalize_provider("azure-openai.chat") == "azure.ai.openai"
    assert dialects.normalize_provider("google.vertex.chat") == "gcp.vertex_ai"
    assert dialects.normalize_provider("TogetherAI") == "together_ai"
    assert dialects.normalize_provider("ibm.watson.ai") == "ibm.watsonx.ai"


def test_live_price_update_changes_prices_and_snapshot_id():
    """What genai-prices' updater does when it fetches new data: a new snapshot with from_auto_update."""
    import copy
    from decimal import Decimal as D

    from genai_prices import data_snapshot

    catalog = PriceCatalog()
    cost = GenAICost(CostConfig(), context(), catalog)
    before = run(load_sample("02"), cost=cost).genai[0].cost
    providers = copy.deepcopy(data_snapshot.get_snapshot().providers)
    gpt4o = next(m for p in providers if p.id == "openai" for m in p.models if m.id == "gpt-4o")
    prices = gpt4o.prices if not isinstance(gpt4o.prices, list) else gpt4o.prices[-1].prices
    prices.input_mtok = D("5")  # doubled
    data_snapshot.set_custom_snapshot(data_snapshot.DataSnapshot(providers=providers, from_auto_update=True))
    try:
        after_batch = run(load_sample("02"), cost=cost)
    finally:
        data_snapshot.set_custom_snapshot(None)
    after = after_batch.genai[0].cost
    assert before.amount == D("0.00385") and after.amount == D("0.00685")  # 1200 × $5 + 85 × $10
    snapshot = span_attributes(after_batch)["chat gpt-4o"]["gen_ai.usage.cost.pricing.snapshot"]
    assert snapshot.startswith("genai-prices 0.2.3+live:")


@pytest.mark.parametrize(("provider", "model", "usage"), [
    ("openai", "gpt-4o", {"input_tokens": 1200, "output_tokens": 300, "cache_read_tokens": 200}),
    ("anthropic", "claude-haiku-4-5", {"input_tokens": 3000, "output_tokens": 10, "cache_read_tokens": 2000,
                                       "cache_write_tokens": 500}),
    ("google", "gemini-2.5-pro", {"input_tokens": 250_000, "output_tokens": 900}),  # above the 200k tier
    ("google", "gemini-2.5-pro", {"input_tokens": 1000, "output_tokens": 900, "output_reasoning_tokens": 400}),
])
def test_the_explanation_adds_up_to_the_price(provider, model, usage):
    from pricing_catalog.explain import explain
    book = PriceCatalog()
    match = book.lookup(provider, model, JAN_2026, "standard")
    lines = match.compiled.lines(usage)
    assert sum(line.cost_pico for line in lines) == match.price(usage).total
    for line in lines:  # each line is its count × its unit price
        assert Decimal(line.count) * line.price / line.per == from_pico(line.cost_pico)
    explained = explain(book, provider, model, JAN_2026, "standard", usage)
    assert Decimal(explained["total"]) == from_pico(match.price(usage).total)
    assert explain(book, provider, "no-such-model", JAN_2026, "standard", usage)["priced"] is False


def test_the_explanation_shows_the_adjustment_and_the_exchange_rate(tmp_path):
    from pricing_catalog.explain import explain
    book = PriceCatalog.from_files([EXAMPLE])
    explained = explain(book, "anthropic", "claude-haiku-4-5", JAN_2026 + 200 * DAY, "standard",
                        {"input_tokens": 1000, "output_tokens": 100})  # the example's 15% discount
    assert explained["currency"] == "EUR" and explained["lines_currency"] == "USD"
    assert explained["adjustment"] == "0.85" and explained["exchange_rate"] is not None
    total = Decimal(explained["subtotal"]) * Decimal(explained["adjustment"]) * Decimal(explained["exchange_rate"])
    assert abs(Decimal(explained["total"]) - total) < Decimal("1e-11")
