"""``genai-collector report | rebuild-stats | prune | reprice | export``: the ledger from the command line.

``report`` reads a ledger file when no collector holds it, and asks a running collector's API
otherwise (DuckDB lets one process open a file for writing, so the file of a running collector
cannot be opened). The maintenance commands need the file: stop the collector first.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import io
import json
import sys
import urllib.error
import urllib.parse
import urllib.request
from collections import defaultdict
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa

from collector.storage.ledger import COST_COLUMNS, TOKEN_COLUMNS, Ledger, LedgerError, rollups_lag
from collector.storage.queries import CostQuery, LedgerQueries, QueryError, parse_time, utcnow
from pricing_catalog.catalog import PriceCatalog
from pricing_catalog.compiled import from_pico
from processors.genai_cost import price_usage

DEFAULT_DB = Path("data/costs.duckdb")
DEFAULT_URL = "http://127.0.0.1:8888"
_USAGE_KEYS = dict(zip(TOKEN_COLUMNS, ("input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens",
                                       "output_reasoning_tokens"), strict=True))


class CommandError(Exception):
    """A command cannot do what was asked; the message says why."""


def progress(done: int, total: int) -> None:
    """A progress bar on stderr for long work."""
    width = 30
    filled = width * done // max(total, 1)
    sys.stderr.write(f"\r[{'#' * filled}{'.' * (width - filled)}] {done}/{total}")
    if done >= total:
        sys.stderr.write("\n")
    sys.stderr.flush()


def open_ledger(path: Path, read_only: bool = False) -> Ledger:
    try:
        return Ledger.open(path, read_only=read_only)
    except LedgerError as exc:
        raise CommandError(str(exc)) from None


def _filters(pairs: list[str]) -> dict[str, str]:
    filters = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise CommandError(f"--filter {pair!r}: use dimension=value, e.g. customer=acme")
        filters[key] = value
    return filters


def _report_via_api(url: str, args: argparse.Namespace) -> dict[str, Any]:
    params = {k: v for k, v in (("from", args.from_), ("to", args.to), ("group_by", args.group_by),
                                ("granularity", args.granularity),
                                ("top", str(args.top) if args.top else None)) if v}
    params.update({f"filter[{k}]": v for k, v in _filters(args.filter).items()})
    target = f"{url.rstrip('/')}/api/v1/costs?{urllib.parse.urlencode(params)}"
    try:
        with urllib.request.urlopen(target, timeout=30) as reply:
            return json.loads(reply.read())
    except urllib.error.HTTPError as exc:
        message = json.loads(exc.read()).get("error", {}).get("message", exc.reason)
        raise CommandError(f"{url}: {message}") from None
    except (urllib.error.URLError, OSError) as exc:
        raise CommandError(f"cannot reach the collector API at {url}: {getattr(exc, 'reason', exc)}") from None


def _report_from_file(path: Path, args: argparse.Namespace) -> dict[str, Any]:
    ledger = open_ledger(path, read_only=True)
    try:
        now = utcnow()
        end = parse_time("to", args.to, now + dt.timedelta(seconds=1), now)
        start = parse_time("from", args.from_, end - dt.timedelta(days=30), now)
        query = CostQuery(start, end, [g for g in (args.group_by or "").split(",") if g], args.granularity,
                          _filters(args.filter), args.top)
        return LedgerQueries(ledger.con, ledger.dimensions, rollups_lag(ledger.version)).costs(query)
    except QueryError as exc:
        raise CommandError(str(exc)) from None
    finally:
        ledger.close()


def cmd_report(args: argparse.Namespace) -> int:
    if args.url:
        report = _report_via_api(args.url, args)
    else:
        try:
            report = _report_from_file(args.db or DEFAULT_DB, args)
        except CommandError as exc:
            if args.db is not None or "in use by a running collector" not in str(exc):
                raise
            print(f"{DEFAULT_DB} is held by a running collector: asking {DEFAULT_URL}", file=sys.stderr)
            report = _report_via_api(DEFAULT_URL, args)
    print(render(report, args.format), end="")
    return 0


def render(report: dict[str, Any], fmt: str) -> str:
    if fmt == "json":
        return json.dumps(report, indent=2) + "\n"
    columns = (["bucket"] if report["granularity"] else []) + list(report["group_by"])
    columns += ["calls", "input_tokens", "output_tokens", "cost"]
    if fmt == "csv":
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow(columns)
        for row in report["series"]:
            writer.writerow([row.get(c, "") for c in columns])
        return out.getvalue()
    rows = [[str(row.get(c, "")) for c in columns] for row in report["series"]]
    for total in report["totals"]:
        rows.append(["TOTAL" if i == 0 else "" for i in range(len(columns) - 4)]
                    + [str(total["calls"]), str(total["input_tokens"]), str(total["output_tokens"]),
                       f"{total['cost']} {total['currency']}"])
    widths = [max(len(c), *(len(r[i]) for r in rows)) if rows else len(c) for i, c in enumerate(columns)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True))]
    lines += ["  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)) for r in rows]
    if not report["series"]:
        lines.append(f"no calls between {report['from']} and {report['to']}")
    return "\n".join(lines) + "\n"


def _range(args: argparse.Namespace, default_days: int | None) -> tuple[dt.datetime | None, dt.datetime | None]:
    now = utcnow()
    try:
        end = parse_time("--to", args.to, now + dt.timedelta(seconds=1), now) if args.to or default_days else None
        start = parse_time("--from", args.from_, end - dt.timedelta(days=default_days), now) \
            if args.from_ or default_days else None
    except QueryError as exc:
        raise CommandError(str(exc)) from None
    return start, end


def cmd_rebuild_stats(args: argparse.Namespace) -> int:
    ledger = open_ledger(args.db)
    start, end = _range(args, None)
    days = ledger.rebuild_stats(start, end, progress if sys.stderr.isatty() or args.progress else None)
    state = ledger.consistency()
    ledger.close()
    print(f"rebuilt rollups of {days} day(s); calls {state['calls']}, cost {state['cost']}, "
          f"rollups {'consistent' if state['consistent'] else 'NOT consistent'} with the calls")
    return 0 if state["consistent"] or start or end else 1


def cmd_prune(args: argparse.Namespace) -> int:
    ledger = open_ledger(args.db)
    cutoff = parse_time("--older-than", args.older_than, utcnow())
    tables = ["llm_calls", *(["cost_hourly", "cost_daily"] if args.rollups else [])]
    deleted = ledger.prune(cutoff, tables)
    ledger.close()
    print(", ".join(f"{table}: {rows} row(s) deleted" for table, rows in deleted.items())
          + f" (before {cutoff.isoformat()}Z)")
    return 0


def cmd_reprice(args: argparse.Namespace) -> int:
    ledger = open_ledger(args.db)
    start, end = _range(args, 30)
    catalog = PriceCatalog.from_files(args.price_file)
    rows = ledger.con.execute(
        f"SELECT trace_id, span_id, epoch_us(start_time) AS start_us, provider, model, tier, source, "
        f"{', '.join(TOKEN_COLUMNS)}, cost, reported_cost FROM llm_calls WHERE start_time >= ? AND start_time < ? "
        f"AND status IN ('priced', 'unpriced')", [start, end]).fetchall()
    old_totals: dict[tuple, Decimal] = defaultdict(Decimal)
    new_totals: dict[tuple, Decimal] = defaultdict(Decimal)
    columns: dict[str, list] = defaultdict(list)
    for index, row in enumerate(rows):
        (trace_id, span_id, start_us, provider, model, tier, source, *tokens, cost, reported) = row
        usage = {_USAGE_KEYS[c]: v for c, v in zip(TOKEN_COLUMNS, tokens, strict=True)
                 if v or c in ("input_tokens", "output_tokens")}
        result = price_usage(catalog, provider, model or "", start_us * 1000, tier or "standard", usage,
                             float(reported) if reported is not None else None,
                             prefer="reported" if source == "provider" else "local")
        key = (provider, model)
        old_totals[key] += cost or Decimal(0)
        new_totals[key] += from_pico(result.amount_pico) if result.amount_pico is not None else Decimal(0)
        parts = result.breakdown[1:] if result.breakdown is not None else (None,) * 5
        for name, value in (("trace_id", trace_id), ("span_id", span_id), ("status", result.status),
                            ("source", result.source if result.amount_pico is not None else None),
                            ("pricing_provider", result.match.provider_id if result.match else None),
                            ("pricing_model", result.match.model_id if result.match else None),
                            ("snapshot", catalog.snapshot_id), ("currency", catalog.currency),
                            ("cost_pico", result.amount_pico), *zip((f"{c}_pico" for c in COST_COLUMNS[1:6]),
                                                                     parts, strict=True)):
            columns[name].append(value)
        if args.progress and index % 10_000 == 0:
            progress(index, len(rows))
    width = max([len(f"{p}/{m}") for p, m in old_totals] + [10])
    print(f"{'provider/model':<{width}}  {'old':>18}  {'new':>18}  {'diff':>18}")
    for key in sorted(old_totals, key=lambda k: -abs(new_totals[k] - old_totals[k])):
        old, new, name = old_totals[key], new_totals[key], f"{key[0]}/{key[1]}"
        print(f"{name:<{width}}  {old:>18.10f}  {new:>18.10f}  {new - old:>+18.10f}")
    old_sum, new_sum = sum(old_totals.values(), Decimal(0)), sum(new_totals.values(), Decimal(0))
    print(f"{'TOTAL':<{width}}  {old_sum:>18.10f}  {new_sum:>18.10f}  {new_sum - old_sum:>+18.10f}  "
          f"({len(rows)} calls, snapshot {catalog.snapshot_id})")
    if args.dry_run or not rows:
        print("dry run: nothing changed" if args.dry_run else "no calls in range")
        ledger.close()
        return 0
    table = pa.table({name: pa.array(values, type=pa.int64() if name.endswith("_pico") else pa.string())
                      for name, values in columns.items()})
    updated = ledger.apply_prices(table, start, end)
    ledger.close()
    print(f"applied: {updated} call(s) repriced, rollups rebuilt")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    ledger = open_ledger(args.db, read_only=True)
    start, end = _range(args, 3650)
    rows = ledger.export(start, end, args.out, args.format)
    ledger.close()
    print(f"{rows} call(s) written to {args.out} ({args.format})")
    return 0


def add_commands(commands: argparse._SubParsersAction) -> None:
    def time_range(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--from", dest="from_", help="2026-01-01, 2026-01-01T12:00:00Z, now, or 7d (ago)")
        parser.add_argument("--to", help="exclusive end (default: now)")

    report = commands.add_parser("report", help="spend by model, customer, feature… (file or running collector)")
    source = report.add_mutually_exclusive_group()
    source.add_argument("--db", type=Path, help=f"a ledger file (default {DEFAULT_DB})")
    source.add_argument("--url", help=f"a running collector's API, e.g. {DEFAULT_URL}")
    time_range(report)
    report.add_argument("--group-by", help="comma list: provider, model, service, customer, user, feature, team…")
    report.add_argument("--granularity", choices=("hour", "day", "month"))
    report.add_argument("--filter", action="append", default=[], help="dimension=value (repeatable)")
    report.add_argument("--top", type=int, help="the N most expensive groups")
    report.add_argument("--format", choices=("table", "json", "csv"), default="table")
    report.set_defaults(handler=cmd_report)

    rebuild = commands.add_parser("rebuild-stats", help="recompute the rollups from the calls")
    rebuild.add_argument("--db", type=Path, default=DEFAULT_DB)
    rebuild.add_argument("--progress", action="store_true", help="show progress even when not on a terminal")
    time_range(rebuild)
    rebuild.set_defaults(handler=cmd_rebuild_stats)

    prune = commands.add_parser("prune", help="delete old calls")
    prune.add_argument("--db", type=Path, default=DEFAULT_DB)
    prune.add_argument("--older-than", required=True, help="e.g. 90d, or a date")
    prune.add_argument("--rollups", action="store_true", help="delete hourly and daily rollups too")
    prune.set_defaults(handler=cmd_prune)

    reprice = commands.add_parser("reprice", help="recompute stored costs with the current catalog and price files")
    reprice.add_argument("--db", type=Path, default=DEFAULT_DB)
    time_range(reprice)
    reprice.add_argument("--price-file", action="append", type=Path, default=[])
    reprice.add_argument("--dry-run", action="store_true", help="print old vs new totals per model, change nothing")
    reprice.add_argument("--progress", action="store_true")
    reprice.set_defaults(handler=cmd_reprice)

    export = commands.add_parser("export", help="calls to CSV or Parquet for finance tooling")
    export.add_argument("--db", type=Path, default=DEFAULT_DB)
    time_range(export)
    export.add_argument("--format", choices=("csv", "parquet"), default="csv")
    export.add_argument("--out", type=Path, required=True)
    export.set_defaults(handler=cmd_export)
