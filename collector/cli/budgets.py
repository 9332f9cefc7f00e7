"""``genai-collector budgets status``: each budget with spent / limit, a utilisation bar and its reset time."""

from __future__ import annotations

import argparse
import datetime as dt
import json
from pathlib import Path
from typing import Any

from collector.cli.api_client import ApiClient, ApiError, add_token_option
from collector.cli.common import DEFAULT_DB, DEFAULT_URL, load_component
from collector.errors import CommandError
from collector.storage.ledger import Ledger
from processors.budgets import Status, parse_budget, period_bounds, spend_in_ledger


def _via_api(url: str, token: str | None) -> list[dict[str, Any]]:
    try:
        return ApiClient(url, token, timeout=10).get("/api/v1/budgets")["budgets"]
    except ApiError as exc:
        if exc.status == 404:
            raise CommandError(f"{url}: the collector has no genai_budget processor") from None
        raise


def _from_file(db: Path, config: Path | None) -> list[dict[str, Any]]:
    """Budgets of the config file (read and validated as ``run`` reads them) and those created through the
    API, with spend from the ledger file."""
    processor = load_component(config, "processors", "genai_budget") if config is not None else None
    zone = processor.book.zone if processor is not None else dt.UTC
    with Ledger.open(db, read_only=True) as ledger:
        budgets = list(processor.configured) if processor is not None else []
        budgets += [parse_budget(json.loads(spec), None, source="api")
                    for (spec,) in ledger.con.execute("SELECT spec FROM budgets ORDER BY id").fetchall()]
        now = dt.datetime.now(dt.UTC)
        statuses = []
        for budget in budgets:
            start, end = period_bounds(budget.period, now, zone)
            statuses.append(Status(budget, spend_in_ledger(ledger.con, budget, now, zone), start, end).as_dict())
        return statuses


def render(budgets: list[dict[str, Any]]) -> str:
    if not budgets:
        return "no budgets\n"
    width = max(len(b["id"]) for b in budgets)
    lines = []
    for b in budgets:
        filled = min(20, int(20 * b["utilization"]))
        bar = "#" * filled + "." * (20 - filled)
        resets = b["resets_at"] or "never"
        lines.append(f"{b['id']:<{width}}  {b['spent']:>14} / {b['limit']:<12} [{bar}] {b['utilization']:>7.1%}  "
                     f"{b['status']:<8}  {b['period']:<10} resets {resets}{'  HARD' if b['hard'] else ''}")
    return "\n".join(lines) + "\n"


def cmd_status(args: argparse.Namespace) -> int:
    budgets = _from_file(args.db, args.config) if args.db else _via_api(args.url or DEFAULT_URL, args.token)
    print(render(budgets), end="")
    return 0


def add_commands(commands: argparse._SubParsersAction) -> None:
    budgets = commands.add_parser("budgets", help="budget status")
    sub = budgets.add_subparsers(dest="budgets_command", required=True)
    status = sub.add_parser("status", help="spent / limit, utilisation and reset time of every budget")
    source = status.add_mutually_exclusive_group()
    source.add_argument("--url", help=f"a running collector's API (default {DEFAULT_URL})")
    source.add_argument("--db", type=Path, help=f"a stopped collector's ledger file, e.g. {DEFAULT_DB}")
    status.add_argument("--config", type=Path, help="with --db: the config whose genai_budget budgets to include")
    add_token_option(status)
    status.set_defaults(handler=cmd_status)
