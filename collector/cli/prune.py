"""``genai-collector prune``: delete old calls, and with ``--rollups`` old rollups (collector stopped)."""

from __future__ import annotations

import argparse

from collector.cli.common import add_ledger_file
from collector.storage.ledger import Ledger
from collector.storage.queries import parse_time, utcnow
from collector.storage.rollups import day_of


def cmd_prune(args: argparse.Namespace) -> int:
    cutoff = parse_time("--older-than", args.older_than, utcnow())
    tables = ["llm_calls", *(["cost_hourly", "cost_daily"] if args.rollups else [])]
    with Ledger.open(args.db) as ledger:
        deleted = ledger.prune(cutoff, tables)
    print(", ".join(f"{table}: {rows} row(s) deleted" for table, rows in deleted.items())
          + f" (before {day_of(cutoff).isoformat()}Z: whole days)")
    return 0


def add_commands(commands: argparse._SubParsersAction) -> None:
    prune = commands.add_parser("prune", help="delete old calls")
    add_ledger_file(prune, time_range=False)
    prune.add_argument("--older-than", required=True, help="e.g. 90d, or a date")
    prune.add_argument("--rollups", action="store_true", help="delete hourly and daily rollups too")
    prune.set_defaults(handler=cmd_prune)
