"""``genai-collector reprice``: recompute stored costs with the current catalog and price files."""

from __future__ import annotations

import argparse
from collections import defaultdict
from decimal import Decimal
from pathlib import Path

import pyarrow as pa

from collector.cli.common import add_ledger_file, load_component, progress, time_range
from collector.errors import CommandError
from collector.storage.ledger import Ledger
from collector.storage.schema import COST_COLUMNS, TOKEN_COLUMNS
from pricing_catalog.catalog import PriceCatalog
from pricing_catalog.compiled import from_pico
from processors.genai_cost import price_usage, usage_of_row


def _repriced(calls: list[tuple], catalog: PriceCatalog, show_progress: bool) -> tuple[pa.Table, dict, dict]:
    """The new costs of stored calls as the table ``Ledger.apply_prices`` takes, and old and new totals per
    (provider, model)."""
    old_totals: dict[tuple, Decimal] = defaultdict(Decimal)
    new_totals: dict[tuple, Decimal] = defaultdict(Decimal)
    columns: dict[str, list] = defaultdict(list)
    for index, row in enumerate(calls):
        (trace_id, span_id, start_us, provider, model, tier, source, stored_status, *tokens, cost, reported, _) = row
        usage = usage_of_row(dict(zip(TOKEN_COLUMNS, tokens, strict=True)))
        result = price_usage(catalog, provider, model or "", start_us * 1000, tier or "standard", usage,
                             float(reported) if reported is not None else None,
                             prefer="reported" if source == "provider" else "local")
        key = (provider, model)
        old_totals[key] += cost or Decimal(0)
        new_totals[key] += from_pico(result.amount_pico) if result.amount_pico is not None else Decimal(0)
        parts = result.breakdown[1:] if result.breakdown is not None else (None,) * 5
        # the ledger keeps no total token count: a call flagged incomplete when it arrived stays so
        status = stored_status if stored_status == "incomplete_usage" and result.status == "priced" \
            else result.status
        for name, value in (("trace_id", trace_id), ("span_id", span_id), ("status", status),
                            ("source", result.source if result.amount_pico is not None else None),
                            ("pricing_provider", result.match.provider_id if result.match else None),
                            ("pricing_model", result.match.model_id if result.match else None),
                            ("snapshot", catalog.snapshot_id), ("currency", catalog.currency),
                            ("cost_pico", result.amount_pico), *zip((f"{c}_pico" for c in COST_COLUMNS[1:6]),
                                                                     parts, strict=True)):
            columns[name].append(value)
        if show_progress and index % 10_000 == 0:
            progress(index, len(calls))
    table = pa.table({name: pa.array(values, type=pa.int64() if name.endswith("_pico") else pa.string())
                      for name, values in columns.items()})
    return table, old_totals, new_totals


def _catalog(args: argparse.Namespace) -> PriceCatalog:
    """The prices the collector of ``--config`` uses (its genai_cost price files and currency), with the
    ``--price-file`` books after them."""
    cost = load_component(args.config, "processors", "genai_cost") if args.config else None
    files = [*(cost.price_files if cost is not None else ()), *args.price_file]
    return PriceCatalog.from_files(files)


def cmd_reprice(args: argparse.Namespace) -> int:
    start, end = time_range(args, 30)
    catalog = _catalog(args)
    with Ledger.open(args.db) as ledger:
        calls = ledger.billable_calls(start, end)
        stored = {row[-1] for row in calls} - {catalog.currency}
        if stored:
            raise CommandError(f"calls in range are in {', '.join(sorted(stored))}, the prices in {catalog.currency}: "
                               "pass the collector's config (--config) or the price file that sets its currency "
                               "(--price-file)")
        table, old_totals, new_totals = _repriced(calls, catalog, args.progress)
        width = max([len(f"{p}/{m}") for p, m in old_totals] + [10])
        money = f"({catalog.currency})"
        print(f"{'provider/model':<{width}}  {'old ' + money:>18}  {'new ' + money:>18}  {'diff':>18}")
        for key in sorted(old_totals, key=lambda k: -abs(new_totals[k] - old_totals[k])):
            old, new, name = old_totals[key], new_totals[key], f"{key[0]}/{key[1]}"
            print(f"{name:<{width}}  {old:>18.10f}  {new:>18.10f}  {new - old:>+18.10f}")
        old_sum, new_sum = sum(old_totals.values(), Decimal(0)), sum(new_totals.values(), Decimal(0))
        print(f"{'TOTAL':<{width}}  {old_sum:>18.10f}  {new_sum:>18.10f}  {new_sum - old_sum:>+18.10f}  "
              f"({len(calls)} calls from {start.isoformat()}Z to {end.isoformat()}Z, {catalog.currency}, "
              f"snapshot {catalog.snapshot_id})")
        if args.dry_run or not calls:
            print("dry run: nothing changed" if args.dry_run else "no calls in range")
            return 0
        updated = ledger.apply_prices(table, start, end)
    print(f"applied: {updated} call(s) repriced, rollups rebuilt")
    return 0


def add_commands(commands: argparse._SubParsersAction) -> None:
    reprice = commands.add_parser("reprice", help="recompute stored costs with the current catalog and price files "
                                                  "(default range: the last 30 days)")
    add_ledger_file(reprice)
    reprice.add_argument("--config", type=Path, help="the collector's config: its genai_cost price files and currency")
    reprice.add_argument("--price-file", action="append", type=Path, default=[],
                         help="a price book, after the config's (repeatable)")
    reprice.add_argument("--dry-run", action="store_true", help="print old vs new totals per model, change nothing")
    reprice.add_argument("--progress", action="store_true")
    reprice.set_defaults(handler=cmd_reprice)
