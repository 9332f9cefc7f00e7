"""``genai-collector pricing lookup | list | check``: look into the price catalog and price files."""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from decimal import Decimal
from pathlib import Path

from genai_prices.data_snapshot import get_snapshot
from genai_prices.types import TieredPrices

from pricing_catalog import overrides
from pricing_catalog.catalog import CATALOG_PROVIDERS, PriceCatalog, PriceMatch
from processors.dialects import normalize_provider

_PER = {1_000_000: "MTok", 1_000: "K", 60: "min", 3_600: "hour", 1: "unit"}


def _money(value: Decimal) -> str:
    return f"${value.normalize():f}"


def _unit_lines(match: PriceMatch) -> list[str]:
    lines = []
    for usage_key, price, per, _ in match.compiled.units:
        per_label = _PER.get(per, f"{per}")
        if isinstance(price, TieredPrices):
            tiers = ", ".join(f"{_money(t.price)} above {t.start:,} input tokens" for t in price.tiers)
            lines.append(f"  {usage_key:<28} {_money(price.base)} / {per_label} ({tiers})")
        else:
            lines.append(f"  {usage_key:<28} {_money(price)} / {per_label}")
    return lines


def cmd_lookup(args: argparse.Namespace) -> int:
    catalog = PriceCatalog.from_files(args.price_file)
    when = dt.datetime.fromisoformat(args.at) if args.at else dt.datetime.now(dt.UTC)
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    provider = normalize_provider(args.provider)
    try:
        match = catalog.lookup(provider, args.model, int(when.timestamp() * 1e9), args.tier)
    except LookupError as exc:
        print(f"no price for {args.provider}/{args.model}: {exc}", file=sys.stderr)
        print("add it to a price file under custom_models (see README, 'Price files')", file=sys.stderr)
        return 1
    print(f"provider     {match.provider_id}   (from {args.provider})")
    print(f"model        {match.model_id}   (from {args.model})")
    print(f"source       {match.source}")
    print(f"snapshot     {catalog.snapshot_id}")
    print(f"at           {when.isoformat()}   tier {args.tier}")
    if match.factor is not None:
        print(f"adjustment   ×{match.factor.normalize():f} (price file)")
    rate = catalog.rate(int(when.timestamp() * 1e9))
    if rate is not None:
        print(f"currency     {catalog.currency} at {rate} per USD")
    print("unit prices (USD, before adjustment and conversion):")
    print("\n".join(_unit_lines(match)))
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    book = overrides.load(args.price_file)
    wanted = CATALOG_PROVIDERS.get(normalize_provider(args.provider), args.provider) if args.provider else None
    search = (args.search or "").lower()
    now = dt.datetime.now(dt.UTC)
    rows = []
    for custom in book.custom_models:
        rows.append((custom.match.provider or "*", custom.id, custom.source))
    for provider in get_snapshot().providers:
        if wanted and provider.id != wanted:
            continue
        for model in provider.models:
            price = model.get_prices(now)
            summary = str(price) if price else ""
            rows.append((provider.id, model.id, summary))
    rows = [r for r in rows if not search or search in r[1].lower() or search in r[0].lower()]
    for provider_id, model_id, summary in rows:
        print(f"{provider_id:<16} {model_id:<48} {summary}")
    print(f"{len(rows)} models", file=sys.stderr)
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    book = overrides.load([Path(args.file)])
    print(f"{args.file}: ok ({len(book.custom_models)} custom models, {len(book.aliases)} aliases, "
          f"{len(book.adjustments)} adjustments, currency {book.currency})")
    return 0


def add_commands(commands: argparse._SubParsersAction) -> None:
    pricing = commands.add_parser("pricing", help="look up prices, list models, check price files")
    sub = pricing.add_subparsers(dest="pricing_command", required=True)

    lookup = sub.add_parser("lookup", help="the price a call to a model gets")
    lookup.add_argument("--provider", required=True, help="e.g. openai, anthropic, aws.bedrock")
    lookup.add_argument("--model", required=True)
    lookup.add_argument("--at", help="ISO date or time of the call (default: now)")
    lookup.add_argument("--tier", default="standard", choices=("standard", "batch", "flex", "priority"))
    lookup.add_argument("--price-file", action="append", type=Path, default=[], help="price book YAML (repeatable)")
    lookup.set_defaults(handler=cmd_lookup)

    listing = sub.add_parser("list", help="models in the catalog and price files")
    listing.add_argument("--provider")
    listing.add_argument("--search", help="substring of the model or provider id")
    listing.add_argument("--price-file", action="append", type=Path, default=[])
    listing.set_defaults(handler=cmd_list)

    check = sub.add_parser("check", help="validate a price file (line-numbered errors)")
    check.add_argument("file")
    check.set_defaults(handler=cmd_check)
