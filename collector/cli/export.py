"""``genai-collector export``: calls to CSV or Parquet for finance tooling."""

from __future__ import annotations

import argparse
from pathlib import Path

from collector.cli.common import add_ledger_file, time_range
from collector.storage.ledger import Ledger


def cmd_export(args: argparse.Namespace) -> int:
    start, end = time_range(args, 3650)
    with Ledger.open(args.db, read_only=True) as ledger:
        rows = ledger.export(start, end, args.out, args.format)
    print(f"{rows} call(s) written to {args.out} ({args.format})")
    return 0


def add_commands(commands: argparse._SubParsersAction) -> None:
    export = commands.add_parser("export", help="calls to CSV or Parquet for finance tooling")
    add_ledger_file(export)
    export.add_argument("--format", choices=("csv", "parquet"), default="csv")
    export.add_argument("--out", type=Path, required=True)
    export.set_defaults(handler=cmd_export)
