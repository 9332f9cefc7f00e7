"""``genai-collector export``: calls to CSV or Parquet for finance tooling."""

from __future__ import annotations

import argparse
from pathlib import Path

from collector.cli.common import DEFAULT_DB, add_time_range, open_ledger, time_range


def cmd_export(args: argparse.Namespace) -> int:
    ledger = open_ledger(args.db, read_only=True)
    start, end = time_range(args, 3650)
    rows = ledger.export(start, end, args.out, args.format)
    ledger.close()
    print(f"{rows} call(s) written to {args.out} ({args.format})")
    return 0


def add_commands(commands: argparse._SubParsersAction) -> None:
    export = commands.add_parser("export", help="calls to CSV or Parquet for finance tooling")
    export.add_argument("--db", type=Path, default=DEFAULT_DB)
    add_time_range(export)
    export.add_argument("--format", choices=("csv", "parquet"), default="csv")
    export.add_argument("--out", type=Path, required=True)
    export.set_defaults(handler=cmd_export)
