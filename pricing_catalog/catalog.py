"""PriceCatalog: (provider, model, time, tier) → a compiled price, from genai-prices plus the price book.

Resolution, in order: price-book aliases rename the model or provider; a price-book
custom model wins over the public catalog; otherwise genai-prices' data matches the
model (its own model-name rules, Bedrock region prefixes, dated snapshots). A
price-book adjustment (discount or uplift) then scales the result, and the
price-book currency converts it at the rate of the call's date. Each resolution
is compiled once per UTC day (and time-of-day window, for off-peak prices); the caches are
bounded.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import genai_prices
from genai_prices import data_snapshot
from genai_prices.types import ModelInfo, Provider, TimeOfDateConstraint

from pricing_catalog import overrides
from pricing_catalog.compiled import Breakdown, CompiledPrice, PricingError

NS_PER_DAY = 86_400 * 10**9
EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)

# gen_ai.provider.name → genai-prices provider id. Providers not listed are looked up by their own name.
CATALOG_PROVIDERS = {
    "openai": "openai", "anthropic": "anthropic", "aws.bedrock": "aws", "azure.ai.openai": "azure",
    "azure.ai.inference": "azure", "gcp.gemini": "google", "gcp.vertex_ai": "google", "gcp.gen_ai": "google",
    "groq": "groq", "deepseek": "deepseek", "x_ai": "x-ai", "mistral_ai": "mistral", "cohere": "cohere",
    "perplexity": "perplexity", "together_ai": "together", "fireworks": "fireworks", "openrouter": "openrouter",
    "cerebras": "cerebras", "moonshot": "moonshotai",
}
# Self-hosted runtimes: their models have no public price; a custom model in the price book is needed.
SELF_HOSTED = frozenset({"ollama", "vllm", "hugging_face", "llama_cpp", "lm_studio"})
CACHE_LIMIT = 65_536  # resolutions kept per cache: distinct (provider, model, tier, day) seen; then it starts over


def tier_context(tier: str) -> dict[str, str] | None:
    """genai-prices price variant selector for a service tier."""
    if tier == "standard":
        return None
    if tier == "batch":
        return {"processing": "batch"}
    return {"service_tier": tier}


def priced_tier(model: ModelInfo, when: dt.datetime, tier: str, context: dict[str, str] | None) -> str:
    """The tier whose price genai-prices applies: ``tier`` when a price variant for it is in force then (as
    ``ModelInfo.get_prices`` selects them), else ``standard`` (flex before the date it was introduced)."""
    if context is None:
        return "standard"
    for variant in model.price_variants or ():
        if (variant.constraint is None or variant.constraint.active(when)) and \
                all(context.get(key) == value for key, value in variant.when.items()):
            return tier
    return "standard"


def day_of(start_ns: int) -> int:
    return start_ns // NS_PER_DAY


def as_datetime(start_ns: int) -> dt.datetime:
    return EPOCH + dt.timedelta(microseconds=start_ns // 1000)


@dataclass(frozen=True, slots=True)
class NoPrice:
    """A cached answer that a model has no price. Raising one cached exception again on every call would
    chain a traceback onto it each time, keeping every caller's frame (and the spans they read) alive."""

    reason: str


def _checked(match):
    """``match``, or a new LookupError when it is a cached ``NoPrice``."""
    if type(match) is NoPrice:
        raise LookupError(match.reason)
    return match


def _remember(cache: dict, key, value):
    """``cache[key] = value`` (returned), starting the cache over once it holds CACHE_LIMIT entries."""
    if len(cache) >= CACHE_LIMIT:
        cache.clear()
    cache[key] = value
    return value


@dataclass(frozen=True)
class PriceMatch:
    """What a call matched: the catalog entry, its compiled price, and any negotiated adjustment."""

    provider_id: str
    model_id: str
    source: str  # "genai-prices" or "override:<file>"
    compiled: CompiledPrice
    factor: Decimal | None
    tier: str = "standard"  # the service tier whose price applies (a tier without its own price: standard)

    def price(self, usage: dict[str, int]) -> Breakdown:
        breakdown = self.compiled.price(usage)
        return breakdown.scaled(self.factor) if self.factor is not None else breakdown


@dataclass(frozen=True)
class _CatalogModel:
    provider: Provider
    model: ModelInfo
    time_windows: tuple[TimeOfDateConstraint, ...]


class _TimeOfDayPrices:
    """Prices of a model with off-peak windows: one compiled price per combination of active windows."""

    def __init__(self, catalog: PriceCatalog, entry: _CatalogModel, provider: str | None, model: str, tier: str):
        self.catalog, self.entry, self.provider, self.model, self.tier = catalog, entry, provider, model, tier
        self.compiled: dict[tuple[bool, ...], PriceMatch | NoPrice] = {}

    def at(self, start_ns: int) -> PriceMatch:
        when = as_datetime(start_ns)
        key = tuple(window.active(when) for window in self.entry.time_windows)
        match = self.compiled.get(key)
        if match is None:
            match = self.compiled[key] = self.catalog._compile(self.entry, self.provider, self.model, start_ns,
                                                                self.tier)
        return _checked(match)


class PriceCatalog:
    def __init__(self, book: overrides.PriceBook | None = None):
        self.book = book or overrides.PriceBook()
        self._data = data_snapshot.get_snapshot()
        self.snapshot_id = self._snapshot_id()
        self._models: dict[tuple[str | None, str], _CatalogModel | overrides.CustomModel | NoPrice] = {}
        self._prices: dict[tuple, PriceMatch | NoPrice | _TimeOfDayPrices] = {}
        self._rates: dict[int, Decimal | None] = {}

    def _snapshot_id(self) -> str:
        data = f"genai-prices {genai_prices.__version__}"
        if self._data.from_auto_update:
            data += f"+live:{self._data.timestamp:%Y%m%dT%H%M%S}"
        return data + (f"+overrides:{self.book.digest}" if self.book.digest else "")

    def refresh(self) -> bool:
        """Pick up price data genai-prices' updater fetched since; True when it changed."""
        current = data_snapshot.get_snapshot()
        if current is self._data:
            return False
        self._data = current
        self.snapshot_id = self._snapshot_id()
        self._models.clear()
        self._prices.clear()
        return True

    @classmethod
    def from_files(cls, paths: list[Path]) -> PriceCatalog:
        return cls(overrides.load(paths))

    @property
    def currency(self) -> str:
        return self.book.currency

    def _model(self, provider: str | None, model: str) -> _CatalogModel | overrides.CustomModel | NoPrice:
        entry = self._models.get((provider, model))
        if entry is None:
            entry = _remember(self._models, (provider, model), self._find_model(provider, model))
        return entry

    def _find_model(self, provider: str | None, model: str) -> _CatalogModel | overrides.CustomModel | NoPrice:
        custom = self.book.custom_model(provider, model)
        if custom is not None:
            return custom
        if provider in SELF_HOSTED:
            return NoPrice(f"{provider} is self-hosted: add the model to a price file (custom_models)")
        provider_id = CATALOG_PROVIDERS.get(provider, provider) if provider else None
        try:
            catalog_provider, info = self._data.find_provider_model(model, None, provider_id, None)
        except LookupError as exc:
            return NoPrice(str(exc))
        windows = [p.constraint for p in info.prices if isinstance(p.constraint, TimeOfDateConstraint)] \
            if isinstance(info.prices, list) else []
        windows += [v.constraint for v in info.price_variants or () if isinstance(v.constraint, TimeOfDateConstraint)]
        return _CatalogModel(catalog_provider, info, tuple(windows))

    def lookup(self, provider: str | None, model: str, start_ns: int, tier: str = "standard") -> PriceMatch:
        """The price that applies to a call; raises LookupError when the model has none."""
        match = self._resolution(provider, model, start_ns, tier)
        if type(match) is PriceMatch:
            return match
        if type(match) is _TimeOfDayPrices:
            return match.at(start_ns)  # off-peak prices: the time of day decides
        return _checked(match)

    def same_all_day(self, provider: str | None, model: str, start_ns: int, tier: str = "standard") -> bool:
        """Whether ``lookup`` gives the same answer all the UTC day of ``start_ns`` (no off-peak windows)."""
        return type(self._resolution(provider, model, start_ns, tier)) is not _TimeOfDayPrices

    def _resolution(self, provider: str | None, model: str, start_ns: int, tier: str
                    ) -> PriceMatch | NoPrice | _TimeOfDayPrices:
        key = (provider, model, tier, start_ns // NS_PER_DAY)
        match = self._prices.get(key)
        if match is None:
            match = _remember(self._prices, key, self._resolve(provider, model, start_ns, tier))
        return match

    def _resolve(self, provider: str | None, model: str, start_ns: int, tier: str
                 ) -> PriceMatch | NoPrice | _TimeOfDayPrices:
        provider, model = self.book.alias(provider, model)
        entry = self._model(provider, model)
        if type(entry) is NoPrice:
            return entry
        if isinstance(entry, _CatalogModel) and entry.time_windows:
            return _TimeOfDayPrices(self, entry, provider, model, tier)
        return self._compile(entry, provider, model, start_ns, tier)

    def _compile(self, entry: _CatalogModel | overrides.CustomModel, provider: str | None, model: str,
                 start_ns: int, tier: str) -> PriceMatch | NoPrice:
        when = as_datetime(start_ns)
        factor = self.book.factor(provider, model, when.date())
        if isinstance(entry, overrides.CustomModel):
            dated = entry.price_at(when.date())
            if dated is None:
                return NoPrice(f"custom model {entry.id} has no price before {when.date()}")
            return PriceMatch(provider or "custom", entry.id, entry.source, CompiledPrice(dated.model_price), factor)
        own_model = any(entry.model is m for m in entry.provider.models)  # tier variants only for own models
        context = tier_context(tier) if own_model else None
        try:
            compiled = CompiledPrice(entry.model.get_prices(when, context))
        except ValueError as exc:
            return NoPrice(f"genai-prices has no usable price for {model}: {exc}")
        return PriceMatch(entry.provider.id, entry.model.id, "genai-prices", compiled, factor,
                          priced_tier(entry.model, when, tier, context))

    def rate(self, start_ns: int) -> Decimal | None:
        """USD → price-book currency rate on the call's date; None when the currency is USD."""
        day = day_of(start_ns)
        if day not in self._rates:
            self._rates[day] = self.book.rate_at(as_datetime(start_ns).date())
        return self._rates[day]


__all__ = ["CATALOG_PROVIDERS", "PriceCatalog", "PriceMatch", "PricingError"]
