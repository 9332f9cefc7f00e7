"""Property: the compiled catalog prices every catalog model exactly as genai_prices.calc_price does, and its
line-by-line explanation adds up to that price."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from genai_prices import Usage, calc_price
from genai_prices.data_snapshot import get_snapshot
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pricing_catalog.catalog import PriceCatalog, tier_context
from pricing_catalog.compiled import PricingError, from_pico

MODELS = [(provider.id, model.id) for provider in get_snapshot().providers for model in provider.models]
CATALOG = PriceCatalog()


@st.composite
def usages(draw) -> dict[str, int]:
    input_tokens = draw(st.integers(0, 2_000_000))
    usage = {"input_tokens": input_tokens, "output_tokens": draw(st.integers(0, 200_000))}
    cache_read = draw(st.integers(0, input_tokens))
    cache_write = draw(st.integers(0, input_tokens - cache_read))
    optional = {
        "cache_read_tokens": cache_read,
        "cache_write_tokens": cache_write,
        "output_reasoning_tokens": draw(st.integers(0, usage["output_tokens"])),
        "input_audio_tokens": draw(st.sampled_from([0, 0, 0, min(500, input_tokens)])),
    }
    usage.update({k: v for k, v in optional.items() if v and draw(st.booleans())})
    return usage


@settings(max_examples=2500, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(model=st.sampled_from(MODELS), usage=usages(),
       when=st.datetimes(dt.datetime(2023, 1, 1), dt.datetime(2027, 12, 31), timezones=st.just(dt.UTC)),
       tier=st.sampled_from(["standard", "standard", "batch", "flex", "priority"]))
def test_compiled_price_equals_calc_price(model, usage, when, tier):
    provider_id, model_id = model
    start_ns = int(when.timestamp()) * 10**9 + when.microsecond * 1000
    try:
        expected = calc_price(Usage(**usage), model_id, provider_id=provider_id, genai_request_timestamp=when,
                              price_context=tier_context(tier))
    except LookupError:
        try:
            CATALOG.lookup(provider_id, model_id, start_ns, tier)
        except LookupError:
            return
        raise AssertionError("calc_price found no model, the catalog did") from None
    except ValueError as error:
        try:
            CATALOG.lookup(provider_id, model_id, start_ns, tier).price(usage)
        except PricingError:
            return
        raise AssertionError(f"calc_price refused the usage ({error}), the catalog priced it") from None
    match = CATALOG.lookup(provider_id, model_id, start_ns, tier)
    assert (match.provider_id, match.model_id) == (expected.provider.id, expected.model.id)
    ours = from_pico(match.price(usage).total)
    # the dashboard's explanation of a cost adds up to it, line by line
    assert sum(line.cost_pico for line in match.compiled.lines(usage)) == match.compiled.price(usage).total
    if match.compiled.exact:  # every per-token price is a whole number of pico-dollars
        assert ours == expected.total_price
    else:  # per-minute and similar prices: each unit's cost rounded to the pico-dollar
        assert abs(ours - expected.total_price) <= len(match.compiled.units) * Decimal("0.5e-12")
