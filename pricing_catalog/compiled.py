"""A genai-prices ``ModelPrice`` compiled into a price vector: pricing a call is a few integer products.

``genai_prices.calc_price`` re-resolves the model, the unit registry and the usage
decomposition on every call (~100 µs). A :class:`CompiledPrice` does that work once per
(model, date, tier). Money is integer pico-units (10⁻¹² of the currency): every catalog
price per token is a whole number of pico-dollars, so a call's cost is a sum of integer
products, exactly the Decimal genai-prices computes (``tests/test_pricing_exact.py``
holds us to that), and sums in the ledger stay exact. Prices that are not whole
pico-units per unit (per-minute audio, say) are rounded to the pico-unit per call.
"""

from __future__ import annotations

from decimal import ROUND_HALF_EVEN, Decimal
from typing import NamedTuple

from genai_prices.decompose import is_descendant_or_self
from genai_prices.types import ModelPrice, TieredPrices, Usage, _collect_resolved_model_prices
from genai_prices.units import UnitDef, _get_registry
from genai_prices.validation import validate_priced_units

PICO = 10**12
CATEGORIES = ("input", "output", "cache_read", "cache_write", "other")


class PricingError(ValueError):
    """The usage cannot be priced with this price (e.g. cache tokens exceed input tokens)."""


def category(unit: UnitDef) -> str:
    """Which breakdown attribute a priced unit's cost goes to."""
    dims = unit.dimensions
    if dims.get("family") != "tokens" or dims.get("modality") not in (None, "text"):
        return "other"
    token_type = dims.get("token_type")
    if token_type in ("cache_read", "cache_write"):
        return token_type
    return dims.get("direction", "other") if token_type in (None, "reasoning") else "other"


def round_pico(pico: Decimal) -> int:
    """A fractional number of pico-units → the nearest (half-even) whole one."""
    return int(pico.to_integral_value(ROUND_HALF_EVEN))


def to_pico(amount: Decimal | int) -> int:
    """Currency units → integer pico-units."""
    return round_pico(Decimal(amount) * PICO)


def from_pico(pico: int) -> Decimal:
    return Decimal(pico).scaleb(-12)


def to_double(pico: int) -> float:
    """An attribute value: currency units as a double, rounded to 10 decimal places."""
    return round(pico / PICO, 10)


class Breakdown(NamedTuple):
    """A cost and its parts, in integer pico-units of one currency."""

    total: int
    input: int
    output: int
    cache_read: int
    cache_write: int
    other: int

    def scaled(self, factor: Decimal) -> Breakdown:
        """Every part × factor (a discount, an exchange rate), rounded to the pico-unit; total = sum of parts."""
        parts = [round_pico(part * factor) for part in self[1:]]
        return Breakdown(sum(parts), *parts)


def _rate(price: Decimal, per: int) -> int | Decimal:
    """Pico-units per unit: an int when exact (all per-token prices), else a Decimal."""
    rate = price * PICO / per
    return int(rate) if rate == rate.to_integral_value() else rate


def _whole(rate: int | Decimal | tuple) -> bool:
    if isinstance(rate, tuple):
        return type(rate[0]) is int and all(type(tier_rate) is int for _, tier_rate in rate[1])
    return type(rate) is int


class CompiledPrice:
    """Unit prices of one model at one date and tier, with the usage decomposition precomputed."""

    __slots__ = ("_plans", "_rates", "exact", "has_tiers", "leaf_order", "model_price", "units")

    def __init__(self, model_price: ModelPrice):
        registry = _get_registry()
        resolved = _collect_resolved_model_prices(model_price, registry)
        validate_priced_units(tuple(unit for unit, _ in resolved), registry)
        self.model_price = model_price
        # in genai-prices' summation order: (usage key, price, per, breakdown index)
        self.units = tuple((unit.usage_key, price, unit.per, CATEGORIES.index(category(unit)))
                           for unit, price in resolved)
        # (usage key, pico-units per unit or (base, ((threshold, rate), ...)) when tiered, breakdown index)
        self._rates = tuple(
            (key, (_rate(price.base, per), tuple((t.start, _rate(t.price, per)) for t in reversed(price.tiers)))
             if isinstance(price, TieredPrices) else _rate(price, per), index)
            for key, price, per, index in self.units)
        self.exact = all(_whole(rate) for _, rate, _ in self._rates)  # no per-call rounding needed
        self.has_tiers = any(isinstance(price, TieredPrices) for _, price in resolved)
        priced = sorted((unit for unit, _ in resolved if unit.usage_key != "requests"),
                        key=lambda unit: (-len(unit.dimensions), unit.usage_key))
        # most specific first; each unit's leaf count subtracts its priced descendants' leaves
        self.leaf_order = tuple(
            (unit.usage_key, tuple(d.usage_key for d in priced if d is not unit and is_descendant_or_self(unit, d)))
            for unit in priced)
        self._plans: dict[tuple, frozenset[str] | str] = {}

    @property
    def rates(self) -> tuple:
        """(usage key, pico-units per unit or (base, ((threshold, rate), ...)) when tiered, breakdown index),
        in summation order."""
        return self._rates

    def reported_keys(self, usage: dict[str, int]) -> frozenset[str]:
        """Which priced usage keys the call reports; PricingError when genai-prices finds the usage ambiguous."""
        return self._plan(usage)

    def _plan(self, usage: dict[str, int]) -> frozenset[str]:
        """Which priced usage keys the call reports; the rest count as zero, or the usage is ambiguous.

        genai-prices infers an unreported key as 0 unless a more specific reported key makes it
        ambiguous; that depends only on which keys are present and positive, so it is cached.
        """
        keys = tuple(usage)
        signature = keys if all(usage.values()) else (keys, tuple(k for k, v in usage.items() if v > 0))
        plan = self._plans.get(signature)
        if plan is None:
            probe = Usage(**usage)
            try:
                needed = [key for key, _ in self.leaf_order] + (["input_tokens"] if self.has_tiers else [])
                for key in needed:
                    getattr(probe, key)  # raises when genai-prices finds the usage ambiguous
                plan = frozenset(key for key, _ in self.leaf_order if key in usage)
            except ValueError as exc:
                plan = str(exc)
            self._plans[signature] = plan
        if isinstance(plan, str):
            raise PricingError(plan)
        return plan

    def _leaves(self, usage: dict[str, int]) -> dict[str, int]:
        """The count each priced unit is charged for: its usage key's count less its priced descendants'."""
        reported = self._plan(usage)
        leaves: dict[str, int] = {}
        for key, descendants in self.leaf_order:
            leaf = usage[key] if key in reported else 0
            for descendant in descendants:
                leaf -= leaves[descendant]
            if leaf < 0:
                raise PricingError(f"invalid usage: more specific token counts exceed {key} ({usage.get(key, 0)})")
            leaves[key] = leaf
        return leaves

    def price(self, usage: dict[str, int]) -> Breakdown:
        """Cost in pico-USD of a usage mapping (genai-prices usage keys → non-negative counts)."""
        leaves = self._leaves(usage)
        total_input = usage.get("input_tokens", 0) if self.has_tiers else 0
        parts = [0, 0, 0, 0, 0]
        for key, rate, index in self._rates:
            count = 1 if key == "requests" else leaves[key]
            if not count:
                continue
            if type(rate) is tuple:  # tiered by the call's total input tokens
                base, tiers = rate
                rate = next((tier_rate for start, tier_rate in tiers if total_input > start), base)
            cost = rate * count
            parts[index] += cost if type(cost) is int else round_pico(cost)
        return Breakdown(sum(parts), *parts)

    def lines(self, usage: dict[str, int]) -> list[PricedLine]:
        """How :meth:`price` arrives at its parts: one line per unit the call is charged for."""
        leaves = self._leaves(usage)
        total_input = usage.get("input_tokens", 0)
        result = []
        for (key, price, per, index), (_, rate, _) in zip(self.units, self._rates, strict=True):
            count = 1 if key == "requests" else leaves[key]
            if not count:
                continue
            if isinstance(price, TieredPrices):
                price = next((t.price for t in reversed(price.tiers) if total_input > t.start), price.base)
                rate = _rate(price, per)
            cost = rate * count
            result.append(PricedLine(key, count, price, per, CATEGORIES[index],
                                     cost if type(cost) is int else round_pico(cost)))
        return result


class PricedLine(NamedTuple):
    """One unit of a call's price: ``count`` units × ``price`` per ``per`` units = ``cost_pico``."""

    usage_key: str
    count: int
    price: Decimal
    per: int
    category: str
    cost_pico: int
