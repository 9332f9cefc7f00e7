"""Price book YAML files layered over the public catalog: custom models, aliases, discounts, currency.

Example (``config/examples/prices.yaml`` has a commented one)::

    currency: EUR
    exchange_rates:                    # USD → EUR; the latest on or before the call's date applies
      - {date: 2026-01-01, rate: 0.92}
    aliases:                           # rename before matching (Azure deployments, private names)
      - {match: {provider: azure.ai.openai, model: prod-gpt4o}, model: gpt-4o-2024-08-06}
    custom_models:                     # self-hosted models, fine-tunes: USD per unit, dated
      - id: acme-llama-70b
        provider: vllm
        match: {prefix: llama-3.3-70b}
        prices:
          - {from: 2026-01-01, input_mtok: 0.20, output_mtok: 0.60}
    adjustments:                       # negotiated discounts (negative) or uplifts, dated
      - {provider: anthropic, model: "*", percent: -15, from: 2026-01-01}
"""

from __future__ import annotations

import datetime as dt
import fnmatch
import hashlib
import re
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path

from genai_prices.types import ModelPrice
from genai_prices.units import _get_registry

from collector.config import ConfigError, Section, load_yaml_file, suggest
from pricing_catalog.compiled import CompiledPrice

FOREVER = dt.date.max


@dataclass(frozen=True)
class ModelMatch:
    """``exact``, ``prefix`` or ``regex`` on the model name (case-insensitive), optionally per provider."""

    kind: str
    pattern: str
    provider: str | None = None

    def matches(self, provider: str | None, model: str) -> bool:
        if self.provider is not None and self.provider != provider:
            return False
        model = model.lower()
        if self.kind == "exact":
            return model == self.pattern
        if self.kind == "prefix":
            return model.startswith(self.pattern)
        return re.search(self.pattern, model) is not None


@dataclass(frozen=True)
class DatedPrice:
    start: dt.date
    model_price: ModelPrice


@dataclass(frozen=True)
class CustomModel:
    id: str
    match: ModelMatch
    prices: tuple[DatedPrice, ...]  # sorted by start date
    source: str

    def price_at(self, day: dt.date) -> DatedPrice | None:
        current = None
        for price in self.prices:
            if price.start <= day:
                current = price
        return current


@dataclass(frozen=True)
class Alias:
    provider: str | None
    model_glob: str
    to_model: str | None
    to_provider: str | None

    def applies(self, provider: str | None, model: str) -> bool:
        return (self.provider is None or self.provider == provider) and fnmatch.fnmatchcase(
            model.lower(), self.model_glob)


@dataclass(frozen=True)
class Adjustment:
    provider: str | None
    model_glob: str
    factor: Decimal  # 1 + percent / 100
    start: dt.date
    end: dt.date
    note: str

    def applies(self, provider: str | None, model: str, day: dt.date) -> bool:
        return (self.provider is None or self.provider == provider) and self.start <= day <= self.end \
            and fnmatch.fnmatchcase(model.lower(), self.model_glob)


@dataclass
class PriceBook:
    """Everything the override files say, later files winning over earlier ones."""

    currency: str = "USD"
    rates: list[tuple[dt.date, Decimal]] = field(default_factory=list)
    aliases: list[Alias] = field(default_factory=list)
    custom_models: list[CustomModel] = field(default_factory=list)
    adjustments: list[Adjustment] = field(default_factory=list)
    digest: str = ""

    def rate_at(self, day: dt.date) -> Decimal | None:
        """USD → currency rate for a date; None when the currency is USD."""
        if self.currency == "USD":
            return None
        current = None
        for start, rate in self.rates:
            if start <= day:
                current = rate
        return current if current is not None else self.rates[0][1]

    def alias(self, provider: str | None, model: str) -> tuple[str | None, str]:
        for alias in reversed(self.aliases):
            if alias.applies(provider, model):
                return alias.to_provider or provider, alias.to_model or model
        return provider, model

    def custom_model(self, provider: str | None, model: str) -> CustomModel | None:
        for custom in reversed(self.custom_models):
            if custom.match.matches(provider, model):
                return custom
        return None

    def factor(self, provider: str | None, model: str, day: dt.date) -> Decimal | None:
        for adjustment in reversed(self.adjustments):
            if adjustment.applies(provider, model, day):
                return adjustment.factor
        return None


def _date(section: Section, key: str, default: str | None = None) -> dt.date:
    value = section.raw(key) if default is None else section.raw(key, default)
    if isinstance(value, dt.date):
        return value
    try:
        return dt.date.fromisoformat(str(value))
    except ValueError:
        raise section.error(key, f"{value!r} is not a date (use YYYY-MM-DD)") from None


def _decimal(section: Section, key: str) -> Decimal:
    value = section.raw(key)
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        raise section.error(key, f"{value!r} is not a number") from None
    if not number.is_finite():
        raise section.error(key, f"{value!r} is not a finite number")
    return number


def _items(section: Section, key: str) -> list[Section]:
    value = section.raw(key, [])
    if not isinstance(value, list):
        raise section.error(key, "expected a list")
    return [Section(section.doc, (*section.path, key, i), item) for i, item in enumerate(value)]


def _match(section: Section, provider: str | None) -> ModelMatch:
    kinds = [k for k in ("exact", "prefix", "regex") if section.has(k)]
    if len(kinds) != 1:
        raise section.error(None, "set exactly one of exact, prefix or regex")
    kind = kinds[0]
    pattern = section.str(kind).lower()
    if kind == "regex":
        try:
            re.compile(pattern)
        except re.error as exc:
            raise section.error(kind, f"invalid regular expression: {exc}") from None
    section.finish()
    return ModelMatch(kind, pattern, provider)


def _dated_price(section: Section) -> DatedPrice:
    start = _date(section, "from", "1970-01-01")
    known = _get_registry()._all_price_keys
    prices = {}
    for key in section:
        if key == "from":
            continue
        if key not in known:
            raise section.error(key, "unknown price key", suggest(key, known)
                                or "use genai-prices keys such as input_mtok, output_mtok, cache_read_mtok")
        value = _decimal(section, key)
        if value < 0:
            raise section.error(key, "a price cannot be negative")
        prices[key] = value
    if not prices:
        raise section.error(None, "no prices given", "add e.g. input_mtok: 0.5, output_mtok: 1.5 (USD per million)")
    section.finish()
    try:
        model_price = ModelPrice(**prices)
        CompiledPrice(model_price)
    except ValueError as exc:
        raise section.error(None, f"prices are not consistent: {exc}") from None
    return DatedPrice(start, model_price)


def load(paths: list[Path]) -> PriceBook:
    """Read override files in order; raises ConfigError with file and line on any mistake."""
    book = PriceBook()
    digest = hashlib.sha256()
    currencies = set()
    for path in paths:
        doc = load_yaml_file(path)
        digest.update(Path(path).read_bytes())
        root = doc.section()
        if root.has("currency"):
            currency = root.str("currency").upper()
            if not re.fullmatch(r"[A-Z]{3}", currency):
                raise root.error("currency", f"{currency!r} is not an ISO 4217 code (e.g. EUR)")
            currencies.add(currency)
            book.currency = currency
        for item in _items(root, "exchange_rates"):
            rate = _decimal(item, "rate")
            if rate <= 0:
                raise item.error("rate", "an exchange rate must be positive")
            book.rates.append((_date(item, "date"), rate))
            item.finish()
        for item in _items(root, "aliases"):
            match = item.section("match")
            alias = Alias(match.str("provider", None), match.str("model").lower(), item.str("model", None),
                          item.str("provider", None))
            match.finish()
            if not alias.to_model and not alias.to_provider:
                raise item.error(None, "an alias needs a target model or provider")
            item.finish()
            book.aliases.append(alias)
        for item in _items(root, "custom_models"):
            provider = item.str("provider", None)
            prices = sorted((_dated_price(p) for p in _items(item, "prices")), key=lambda p: p.start)
            if not prices:
                raise item.error("prices", "a custom model needs at least one price")
            book.custom_models.append(CustomModel(item.str("id"), _match(item.section("match"), provider),
                                                  tuple(prices), f"override:{Path(path).name}"))
            item.finish()
        for item in _items(root, "adjustments"):
            percent = _decimal(item, "percent")
            if percent <= -100:
                raise item.error("percent", "a discount of 100% or more would make calls free or negative")
            book.adjustments.append(Adjustment(item.str("provider", None), item.str("model", "*").lower(),
                                               1 + percent / 100, _date(item, "from", "1970-01-01"),
                                               _date(item, "to", FOREVER.isoformat()), item.str("note", "")))
            item.finish()
        root.finish()
    if len(currencies) > 1:
        raise ConfigError(f"override files disagree on the currency: {', '.join(sorted(currencies))}")
    if book.currency != "USD" and not book.rates:
        raise ConfigError(f"currency {book.currency} needs exchange_rates (USD → {book.currency} by date)",
                          source=str(paths[-1]))
    book.rates.sort()
    book.digest = digest.hexdigest()[:8] if paths else ""
    return book
