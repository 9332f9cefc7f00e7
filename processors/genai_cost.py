"""``genai_cost``: price every billable GenAI span and write the ``gen_ai.usage.cost.*`` attributes.

The price that applies is the one in force at the span's start time, for the
service tier the provider reported. Costs are computed in Decimal; attributes are
doubles rounded to 10 decimal places. A model without a price gets
``status=unpriced`` and no amount (never a silent 0), a warning once per
(provider, model) and ``unpriced_interval``, and a count per model.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from decimal import Decimal
from typing import Literal

from collector import attributes, log, schema
from collector.batch import TelemetryBatch
from collector.cardinality import MODEL_LABELS, CardinalityLimit
from collector.component import BuildContext, Processor
from collector.config import ConfigError, Section
from collector.schema import Duration, ExistingFile, Invalid
from collector.signals import Signal
from pricing_catalog.catalog import PriceCatalog, PriceMatch
from pricing_catalog.compiled import Breakdown, PricingError, from_pico, round_pico, to_double, to_pico
from processors.dialects import COST_PREFIX, OUTPUT_KEYS
from processors.genai_call import GenAICall

_LOG = log.get("processor.genai_cost")
COST = COST_PREFIX
BREAKDOWN = ("input", "output", "cache_read", "cache_write", "other")  # written when non-zero
_BREAKDOWN_KEYS = tuple(COST_PREFIX + name for name in BREAKDOWN)
OPENLIT_COST = "gen_ai.usage.cost"  # OpenLIT's own cost attribute, written too with ``compat: [openlit]``
_COST_KEYS = frozenset(k for k in OUTPUT_KEYS if k.startswith(COST_PREFIX)) | {OPENLIT_COST}


@dataclass(slots=True)
class CostResult:
    """What pricing one call produced; kept on the call for the ledger. Money in integer pico-units."""

    status: str  # priced | unpriced | no_usage | invalid_usage | duplicate
    currency: str
    amount_pico: int | None = None  # in ``currency``: ours, or the reported one when preferred
    breakdown: Breakdown | None = None  # ours, in ``currency``
    source: str = "local"
    match: PriceMatch | None = None
    rate: Decimal | None = None
    reported: float | None = None
    mismatch: bool | None = None
    reason: str = ""
    snapshot: str = ""

    @property
    def amount(self) -> Decimal | None:
        return None if self.amount_pico is None else from_pico(self.amount_pico)


def usage_of(call: GenAICall) -> dict[str, int]:
    """genai-prices usage keys of a call (optional kinds only when present)."""
    usage = {}
    if call.input is not None:
        usage["input_tokens"] = call.input
    if call.output is not None:
        usage["output_tokens"] = call.output
    for key, value in (("cache_read_tokens", call.cache_read), ("cache_write_tokens", call.cache_write),
                       ("output_reasoning_tokens", call.reasoning), ("input_audio_tokens", call.input_audio),
                       ("output_audio_tokens", call.output_audio)):
        if value:
            usage[key] = value
    return usage


LEDGER_USAGE_KEYS = {"input_tokens": "input_tokens", "output_tokens": "output_tokens",
                     "cache_read_tokens": "cache_read_tokens", "cache_write_tokens": "cache_write_tokens",
                     "reasoning_tokens": "output_reasoning_tokens"}  # ledger column → genai-prices usage key


def usage_of_row(tokens: dict[str, int | None]) -> dict[str, int]:
    """genai-prices usage keys of a stored call's token columns (as ``usage_of`` reads a span)."""
    return {LEDGER_USAGE_KEYS[column]: value or 0 for column, value in tokens.items()
            if value or column in ("input_tokens", "output_tokens")}


def missing_tokens(call: GenAICall, result: CostResult) -> str | None:
    """Why a priced call's token counts are demonstrably incomplete (its cost is then a guess), or None: a
    total above the parts it should be the sum of, or a reported cost below our price of the tokens seen on
    a span that names no cached tokens for a model whose cached tokens are cheaper."""
    itemised = (call.input or 0) + (call.output or 0)
    if call.total is not None and call.total > itemised:
        return f"total_tokens {call.total} exceeds input + output ({itemised}): some tokens are not itemised"
    if result.mismatch and result.breakdown is not None and result.match is not None \
            and not call.cache_read and not call.cache_write \
            and any(key == "cache_read_tokens" for key, *_ in result.match.compiled.units):
        reported = to_pico(Decimal(repr(result.reported)))
        if result.rate is not None:
            reported = round_pico(reported * result.rate)
        if result.breakdown.total > reported:
            return "the reported cost is below the price of the tokens seen, and the span names no cached " \
                   "tokens: they are probably missing"
    return None


def price_usage(catalog: PriceCatalog, provider: str | None, model: str, start_ns: int, tier: str,
                usage: dict[str, int], reported: float | None = None, prefer: str = "local",
                tolerance: float = 0.01) -> CostResult:
    """Price one call's usage at its start time (the processor and ``reprice`` share this)."""
    rate = catalog.rate(start_ns)
    result = CostResult("unpriced", catalog.currency, rate=rate, reported=reported, snapshot=catalog.snapshot_id)
    usd = None
    try:
        result.match = catalog.lookup(provider, model, start_ns, tier)
        usd = result.match.price(usage)
    except PricingError as exc:
        result.status, result.reason = "invalid_usage", str(exc)
        return result
    except LookupError as exc:
        result.reason = str(exc)
    if usd is not None:
        result.status = "priced"
        result.breakdown = usd.scaled(rate) if rate is not None else usd
        result.amount_pico = result.breakdown.total
    if reported is not None:
        reported_pico = to_pico(Decimal(repr(reported)))
        if usd is not None:
            result.mismatch = abs(usd.total - reported_pico) > tolerance * max(abs(usd.total), abs(reported_pico))
        if usd is None or prefer == "reported":
            result.status, result.source = "priced", "provider"
            result.amount_pico = round_pico(reported_pico * rate) if rate is not None else reported_pico
    return result


@dataclass(frozen=True)
class AutoUpdateConfig:
    """genai-prices' live updater: fetches new price data every ``interval`` (from ``url`` if set)."""

    enabled: bool = False
    interval: Duration = 3600.0
    url: str | None = None


COMPAT_MODES = ("openlit",)  # openlit: also write gen_ai.usage.cost


@dataclass(frozen=True)
class CostConfig:
    price_files: tuple[ExistingFile, ...] = ()  # price-book YAML files, later ones win
    prefer: Literal["local", "reported"] = "local"
    mismatch_tolerance: float = 0.01
    compat: tuple[str, ...] = ()
    unpriced_interval: Duration = 3600.0
    auto_update: AutoUpdateConfig = AutoUpdateConfig()

    def check(self) -> None:
        for name in self.compat:
            if name not in COMPAT_MODES:
                raise Invalid("compat", f"unknown compat mode {name!r}", f"supported: {', '.join(COMPAT_MODES)}")


class GenAICost(Processor):
    signals = frozenset({Signal.TRACES})
    config_class = CostConfig
    reads_genai = True
    reads_message = False

    def __init__(self, config: CostConfig, context: BuildContext, catalog: PriceCatalog | None = None):
        self.price_files = config.price_files  # `reprice --config` prices with the same books
        self.catalog = catalog if catalog is not None else PriceCatalog.from_files(list(self.price_files))
        self.component_id = context.component_id
        self.telemetry = context.telemetry
        self.prefer = config.prefer
        self.tolerance = config.mismatch_tolerance
        self.openlit_compat = "openlit" in config.compat
        self.unpriced_interval = config.unpriced_interval
        self._unpriced_logged: dict[tuple[str | None, str], float] = {}
        self._unpriced_models = CardinalityLimit(MODEL_LABELS)  # models counted (and logged) apart
        self._shared: dict[tuple, tuple[list[tuple[str, object]], bytes]] = {}
        self.auto_update = config.auto_update
        self._updater = None

    @classmethod
    def from_config(cls, section: Section, context: BuildContext) -> GenAICost:
        config = schema.read(CostConfig, section, context)
        try:
            catalog = PriceCatalog.from_files(list(config.price_files))
        except ConfigError as exc:
            raise section.error("price_files", f"bad price file: {exc}") from None
        return cls(config, context, catalog)

    async def start(self) -> None:
        if self.auto_update.enabled:
            from genai_prices import UpdatePrices
            url = {"url": self.auto_update.url} if self.auto_update.url else {}
            self._updater = UpdatePrices(update_interval=self.auto_update.interval, **url)
            self._updater.start()
            _LOG.info("live price updates on", extra={"interval_s": self.auto_update.interval})

    async def shutdown(self, timeout: float) -> None:
        if self._updater is not None:
            self._updater.stop()

    def process(self, batch: TelemetryBatch) -> None:
        self.refresh_prices()
        for call in batch.genai:
            self.apply(call)

    def apply(self, call: GenAICall) -> None:
        """Price one call and write its cost attributes (a duplicate gets its status only)."""
        if call.billable:
            call.cost = result = self.price(call)
            self._write(call, result)
        elif call.skip_reason == "duplicate":
            call.put([(COST + "status", "duplicate")])

    def refresh_prices(self) -> bool:
        """Pick up the prices genai-prices' live updater (auto_update) brought; True when there are new ones."""
        if not self.catalog.refresh():
            return False
        self._shared.clear()
        _LOG.info("price data updated", extra={"snapshot": self.catalog.snapshot_id})
        return True

    def price(self, call: GenAICall) -> CostResult:
        if call.usage_error:
            return CostResult("invalid_usage", self.catalog.currency, reason=call.usage_error)
        if not call.has_usage:
            return CostResult("no_usage", self.catalog.currency, reason="the span has no token counts")
        result = price_usage(self.catalog, call.provider, call.model or "", call.span.start_time_unix_nano,
                             call.tier, usage_of(call), call.reported_cost, self.prefer, self.tolerance)
        if result.status == "unpriced" or (result.source == "provider" and result.match is None):
            self.note_unpriced(call.provider, call.model, result.reason)
        elif result.status == "priced":
            missing = missing_tokens(call, result)
            if missing:
                result.status, result.reason = "incomplete_usage", missing
        return result

    def note_unpriced(self, provider: str | None, model: str | None, reason: str) -> None:
        """Count a call with no price, and log it once per (provider, model) and ``unpriced_interval``."""
        key = (provider, self._unpriced_models(model or ""))
        self.telemetry.add_labeled("unpriced_calls", (("provider", provider or ""), ("model", key[1])))
        now = time.monotonic()
        if now - self._unpriced_logged.get(key, -self.unpriced_interval) >= self.unpriced_interval:
            self._unpriced_logged[key] = now
            _LOG.warning("no price for model", extra={
                "provider": provider, "model": model, "reason": reason,
                "fix": f"genai-collector pricing lookup --provider {provider} --model {model}; "
                       "add it to a price file (custom_models) if it is yours"})

    def _write(self, call: GenAICall, result: CostResult) -> None:
        """Write the cost attributes: the per-call numbers, plus a block that is the same for every call
        of a model, tier and status (encoded once and cached)."""
        amount = result.amount_pico
        shared_key = (result.status, call.tier, id(result.match), result.rate,
                      result.source if amount is not None else None)
        shared = self._shared.get(shared_key)
        if shared is None:
            shared = self._shared[shared_key] = self._shared_items(call, result)
        numbers: list[tuple[str, object]] = []
        if amount is not None:
            numbers.append((COST + "amount", to_double(amount)))
            if self.openlit_compat:
                numbers.append((OPENLIT_COST, to_double(amount)))
        if result.breakdown is not None:
            numbers += [(key, to_double(part)) for key, part in zip(_BREAKDOWN_KEYS, result.breakdown[1:],
                                                                     strict=True) if part]
        if result.reported is not None:
            numbers.append((COST + "reported", result.reported))
        if result.mismatch is not None:
            numbers.append((COST + "mismatch", result.mismatch))
        if result.status == "incomplete_usage":
            numbers.append((COST + "reason", result.reason))
        if _COST_KEYS.isdisjoint(call.index):  # the usual case: none of our attributes on the span yet
            encode = attributes.encode
            call.append(shared[1] + b"".join([encode(k, v) for k, v in numbers]))
        else:
            call.put(shared[0] + numbers)

    def _shared_items(self, call: GenAICall, result: CostResult) -> tuple[list[tuple[str, object]], bytes]:
        tier = result.match.tier if result.match is not None else call.tier  # the tier whose price applied
        items: list[tuple[str, object]] = [(COST + "status", result.status), (COST + "currency", result.currency),
                                           (COST + "tier", tier)]
        if result.amount_pico is not None:
            items.append((COST + "source", result.source))
        if result.match is not None:
            items += [(COST + "pricing.model", result.match.model_id),
                      (COST + "pricing.provider", result.match.provider_id)]
        if result.status != "no_usage":
            items.append((COST + "pricing.snapshot", self.catalog.snapshot_id))
        if result.rate is not None:
            items.append((COST + "exchange_rate", float(result.rate)))
        if len(self._shared) > 10_000:
            self._shared.clear()
        return items, b"".join(attributes.encode(k, v) for k, v in items)
