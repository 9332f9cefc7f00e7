"""A genai-prices ``ModelPrice`` compiled into a price vector: pricing a call is a few multiplications.

``genai_prices.calc_price`` re-resolves the model, the unit registry and the
usage decomposition on every call (~100 µs). A :class:`CompiledPrice` does that
work once per (model, date, tier) and then prices a usage mapping with the same
Decimal operations in the same order, so results are identical to ``calc_price``
(the property test in ``tests/test_pricing_exact.py`` holds us to that).
"""

from __future__ import annotations

from decimal import Decimal
from typing import NamedTuple

from genai_prices.decompose import is_descendant_or_self
from genai_prices.types import ModelPrice, TieredPrices, Usage, _collect_resolved_model_prices
from genai_prices.units import UnitDef, _get_registry
from genai_prices.validation import validate_priced_units

ZERO = Decimal(0)
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


class Breakdown(NamedTuple):
    """A cost and its parts, in one currency."""

    total: Decimal
    input: Decimal
    output: Decimal
    cache_read: Decimal
    cache_write: Decimal
    other: Decimal

    def scaled(self, factor: Decimal) -> Breakdown:
        return Breakdown(*(part * factor for part in self))


class CompiledPrice:
    """Unit prices of one model at one date and tier, with the usage decomposition precomputed."""

    __slots__ = ("_plans", "_rates", "has_tiers", "leaf_order", "model_price", "units")

    def __init__(self, model_price: ModelPrice):
        registry = _get_registry()
        resolved = _collect_resolved_model_prices(model_price, registry)
        validate_priced_units(tuple(unit for unit, _ in resolved), registry)
        self.model_price = model_price
        # in genai-prices' summation order: (usage key, price, per, breakdown index)
        self.units = tuple((unit.usage_key, price, unit.per, CATEGORIES.index(category(unit)))
                           for unit, price in resolved)
        # price / per is exact when per is a power of ten, so rate × count equals (price × count) / per
        self._rates = tuple((key, price / per if _power_of_ten(per) and not isinstance(price, TieredPrices) else None,
                             price, per, index) for key, price, per, index in self.units)
        self.has_tiers = any(isinstance(price, TieredPrices) for _, price in resolved)
        priced = sorted((unit for unit, _ in resolved if unit.usage_key != "requests"),
                        key=lambda unit: (-len(unit.dimensions), unit.usage_key))
        # most specific first; each unit's leaf count subtracts its priced descendants' leaves
        self.leaf_order = tuple(
            (unit.usage_key, tuple(d.usage_key for d in priced if d is not unit and is_descendant_or_self(unit, d)))
            for unit in priced)
        self._plans: dict[tuple, tuple[str, ...] | str] = {}

    def _plan(self, usage: dict[str, int]) -> tuple[str, ...]:
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
                plan = tuple(key for key, _ in self.leaf_order if key in usage)
            except ValueError as exc:
                plan = str(exc)
            self._plans[signature] = plan
        if isinstance(plan, str):
            raise PricingError(plan)
        return plan

    def price(self, usage: dict[str, int]) -> Breakdown:
        """Cost in USD of a usage mapping (genai-prices usage keys → non-negative counts)."""
        reported = self._plan(usage)
        leaves: dict[str, int] = {}
        for key, descendants in self.leaf_order:
            leaf = (usage[key] if key in reported else 0) - sum(leaves[d] for d in descendants)
            if leaf < 0:
                raise PricingError(f"invalid usage: more specific token counts exceed {key} ({usage.get(key, 0)})")
            leaves[key] = leaf
        total_input = usage.get("input_tokens", 0) if self.has_tiers else 0
        parts = [ZERO, ZERO, ZERO, ZERO, ZERO]
        total = ZERO
        for key, rate, price, per, index in self._rates:
            count = 1 if key == "requests" else leaves[key]
            if not count:
                continue  # adds nothing: the sum's value is the same as genai-prices'
            if rate is not None:
                unit_price = rate * count
            else:
                if isinstance(price, TieredPrices):
                    applicable = price.base
                    for tier in reversed(price.tiers):
                        if total_input > tier.start:
                            applicable = tier.price
                            break
                    price = applicable
                unit_price = price * Decimal(count) / per
            total += unit_price
            parts[index] += unit_price
        return Breakdown(total, *parts)


def _power_of_ten(number: int) -> bool:
    return number >= 1 and str(number).rstrip("0") == "1"
