"""``genai-collector rebuild-stats``: recompute the rollups from the calls (with the collector stopped)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from collector.cli.common import DEFAULT_DB, add_time_range, open_ledger, progress, time_range


def cmd_rebuild_stats(args: argparse.Namespace) -> int:
    ledger = open_ledger(args.db)
    start, end = time_range(args, None)
    days = ledger.rebuild_stats(start, end, progress if sys.stderr.isatty() or args.progress else None)
    state = ledger.consistency()
    ledger.close()
    print(f"rebuilt rollups of {days} day(s); calls {state['calls']}, cost {state['cost']}, "
          f"rollups {'consistent' if state['consistent'] else 'NOT consistent'} with the calls")
    return 0 if state["consistent"] or start or end else 1


def add_commands(commands: argparse._SubParsersAction) -> None:
    rebuild = commands.add_parser("rebuild-stats", help="recompute the rollups from the calls")
    rebuild.add_argument("--db", type=Path, default=DEFAULT_DB)
    rebuild.add_argument("--progress", action="store_true", help="show progress even when not on a terminal")
    add_time_range(rebuild)
    rebuild.set_defaults(handler=cmd_rebuild_stats)
