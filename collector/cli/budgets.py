"""``genai-collector budgets status``: each budget with spent / limit, a utilisation bar and its reset time."""

from __future__ import annotations

import argparse
import datetime as dt
from pathlib import Path
from typing import Any

from collector.cli.api_client import ApiClient, ApiError, add_token_option
from collector.cli.common import DEFAULT_DB, DEFAULT_URL, load_component
from collector.errors import CommandError
from collector.storage.ledger import Ledger
from collector.storage.schema import SCHEMA_VERSION
from processors.budgets import BudgetBook, parse_budget


def _via_api(url: str, token: str | None) -> list[dict[str, Any]]:
    try:
        return ApiClient(url, token, timeout=10).get("/api/v1/budgets")["budgets"]
    except ApiError as exc:
        if exc.status == 404:
            raise CommandError(f"{url}: the collector has no genai_budget processor") from None
        raise


def _from_file(db: Path, config: Path | None) -> list[dict[str, Any]]:
    """The budgets in the ledger file (those of the config and of the API, as the collector last stored them),
    and those of ``config`` not stored yet, with their spend now."""
    processor = load_component(config, "processors", "genai_budget") if config is not None else None
    book = BudgetBook(processor.book.zone if processor is not None else dt.UTC)
    with Ledger.open(db, read_only=True) as ledger:
        if ledger.version < SCHEMA_VERSION:
            raise CommandError(f"{db} has schema version {ledger.version}: start the collector on it once "
                               f"(genai-collector run) to bring it to {SCHEMA_VERSION}")
        with ledger.budget_tables() as tables:
            stored = tables.definitions()
            budgets = {budget_id: parse_budget(entry.spec, None, source=entry.source)
                       for budget_id, entry in stored.items()}
            for budget in processor.configured if processor is not None else ():
                budgets[budget.id] = budget
            book.budgets = budgets
            now = book.clock()
            counted = [book.window(b, now) for b in budgets.values()
                       if b.id in stored and stored[b.id].counted == book.counted(b)]
            spent = tables.spend(counted)
            for budget in budgets.values():  # counters of another definition or zone: sum the calls
                if budget.id not in spent:
                    buckets = tables.spend_of_calls(budget.match, book.window(budget, now),
                                                    budget.period.startswith("rolling"))
                    spent[budget.id] = sum(amount for _, amount in buckets)
            return [status.as_dict() for status in book.statuses(spent, tables.held(now), now)]


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
