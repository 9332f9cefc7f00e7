"""Why a call cost what it did: each unit it is charged for × its unit price, the negotiated adjustment and
the exchange rate, as the catalog prices it at the call's start time (the dashboard's "explain a cost")."""

from __future__ import annotations

from typing import Any

from pricing_catalog.catalog import PriceCatalog
from pricing_catalog.compiled import PricingError, from_pico


def _text(value: Any) -> str | None:
    return None if value is None else format(value.normalize() if hasattr(value, "normalize") else value, "f")


def explain(catalog: PriceCatalog, provider: str | None, model: str, start_ns: int, tier: str,
            usage: dict[str, int]) -> dict[str, Any]:
    """The price of ``usage`` line by line; ``{"priced": false, "reason"}`` when the catalog has none."""
    try:
        match = catalog.lookup(provider, model, start_ns, tier)
        lines = match.compiled.lines(usage)
    except (LookupError, PricingError) as exc:
        return {"priced": False, "reason": str(exc)}
    rate = catalog.rate(start_ns)
    adjusted = match.price(usage)
    total = adjusted.scaled(rate) if rate is not None else adjusted
    return {
        "priced": True, "provider": match.provider_id, "model": match.model_id, "tier": match.tier,
        "source": match.source, "snapshot": catalog.snapshot_id, "currency": catalog.currency,
        "lines_currency": "USD" if rate is not None else catalog.currency,
        "lines": [{"unit": line.usage_key, "kind": line.category, "count": line.count,
                   "unit_price": _text(line.price), "per": line.per, "cost": _text(from_pico(line.cost_pico))}
                  for line in lines],
        "subtotal": _text(from_pico(sum(line.cost_pico for line in lines))),
        "adjustment": _text(match.factor), "exchange_rate": _text(rate), "total": _text(from_pico(total.total)),
    }
