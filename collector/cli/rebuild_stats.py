"""``genai-collector rebuild-stats``: recompute the rollups from the calls (with the collector stopped)."""

from __future__ import annotations

import argparse
import sys

from collector.cli.common import add_ledger_file, progress, time_range
from collector.storage.ledger import Ledger


def cmd_rebuild_stats(args: argparse.Namespace) -> int:
    start, end = time_range(args, None)
    with Ledger.open(args.db) as ledger:
        days = ledger.rebuild_stats(start, end, progress if sys.stderr.isatty() or args.progress else None)
        state = ledger.consistency()
    print(f"rebuilt rollups of {days} day(s); calls {state['calls']}, cost {state['cost']}, "
          f"rollups {'consistent' if state['consistent'] else 'NOT consistent'} with the calls")
    return 0 if state["consistent"] or start or end else 1


def add_commands(commands: argparse._SubParsersAction) -> None:
    rebuild = commands.add_parser("rebuild-stats", help="recompute the rollups from the calls")
    add_ledger_file(rebuild)
    rebuild.add_argument("--progress", action="store_true", help="show progress even when not on a terminal")
    rebuild.set_defaults(handler=cmd_rebuild_stats)
