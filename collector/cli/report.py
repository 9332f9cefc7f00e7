"""``genai-collector report``: spend by model, customer, feature… from a ledger file or a running collector.

``report`` reads a ledger file when no collector holds it, and asks a running collector's API
otherwise (DuckDB lets one process open a file for writing, so the file of a running collector
cannot be opened).
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import sys
from pathlib import Path
from typing import Any

from collector.cli.api_client import ApiClient, add_token_option
from collector.cli.common import DEFAULT_DB, DEFAULT_URL, add_time_range, time_range
from collector.errors import LedgerError, QueryError
from collector.storage.ledger import Ledger
from collector.storage.queries import CostQuery


def _filters(pairs: list[str]) -> dict[str, str]:
    filters = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise QueryError("--filter", f"{pair!r}: use dimension=value, e.g. customer=acme")
        filters[key] = value
    return filters


def _report_via_api(url: str, args: argparse.Namespace) -> dict[str, Any]:
    params = {k: v for k, v in (("from", args.from_), ("to", args.to), ("group_by", args.group_by),
                                ("granularity", args.granularity),
                                ("top", str(args.top) if args.top else None)) if v}
    params.update({f"filter[{k}]": v for k, v in _filters(args.filter).items()})
    return ApiClient(url, args.token).get("/api/v1/costs", params)


def _report_from_file(path: Path, args: argparse.Namespace) -> dict[str, Any]:
    start, end = time_range(args, 30)  # as the API's default range
    query = CostQuery(start, end, [g for g in (args.group_by or "").split(",") if g], args.granularity,
                      _filters(args.filter), args.top)
    with Ledger.open(path, read_only=True) as ledger, ledger.queries() as queries:
        return queries.costs(query)


def cmd_report(args: argparse.Namespace) -> int:
    if args.url:
        report = _report_via_api(args.url, args)
    else:
        try:
            report = _report_from_file(args.db or DEFAULT_DB, args)
        except LedgerError as exc:
            if args.db is not None or "in use by a running collector" not in str(exc):
                raise
            print(f"{DEFAULT_DB} is held by a running collector: asking {DEFAULT_URL}", file=sys.stderr)
            report = _report_via_api(DEFAULT_URL, args)
    print(render(report, args.format), end="")
    return 0


def render(report: dict[str, Any], fmt: str) -> str:
    if fmt == "json":
        return json.dumps(report, indent=2) + "\n"
    columns = (["bucket"] if report["granularity"] else []) + [g for g in report["group_by"] if g != "currency"]
    columns += ["calls", "input_tokens", "output_tokens", "cost", "currency"]  # money is never summed across
    if fmt == "csv":
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow(columns)
        for row in report["series"]:
            writer.writerow([row.get(c, "") for c in columns])
        return out.getvalue()
    rows = [[str(row.get(c, "")) for c in columns] for row in report["series"]]
    measures = columns[-5:]
    for total in report["totals"]:
        rows.append(["TOTAL" if i == 0 else "" for i in range(len(columns) - 5)]
                    + [str(total[m]) for m in measures])
    widths = [max(len(c), *(len(r[i]) for r in rows)) if rows else len(c) for i, c in enumerate(columns)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True))]
    lines += ["  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)) for r in rows]
    if not report["series"]:
        lines.append(f"no calls between {report['from']} and {report['to']}")
    return "\n".join(lines) + "\n"


def add_commands(commands: argparse._SubParsersAction) -> None:
    report = commands.add_parser("report", help="spend by model, customer, feature… (file or running collector)")
    source = report.add_mutually_exclusive_group()
    source.add_argument("--db", type=Path, help=f"a ledger file (default {DEFAULT_DB})")
    source.add_argument("--url", help=f"a running collector's API, e.g. {DEFAULT_URL}")
    add_token_option(report)
    add_time_range(report)
    report.add_argument("--group-by", help="comma list: provider, model, service, customer, user, feature, team…")
    report.add_argument("--granularity", choices=("hour", "day", "month"))
    report.add_argument("--filter", action="append", default=[], help="dimension=value (repeatable)")
    report.add_argument("--top", type=int, help="the N most expensive groups")
    report.add_argument("--format", choices=("table", "json", "csv"), default="table")
    report.set_defaults(handler=cmd_report)
