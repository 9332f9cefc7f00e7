"""``genai-collector``: one module per command; each adds its parser with ``add_commands``.

Errors a user can act on (collector.errors) print ``error: <message>`` and exit with their code.
"""

from __future__ import annotations

import argparse
import sys

from collector import __version__
from collector.cli import budgets, demo, doctor, export, pricing, prune, rebuild_stats, report, reprice, run
from collector.errors import CollectorError

COMMANDS = (run, pricing, report, rebuild_stats, prune, reprice, export, budgets, demo, doctor)


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="genai-collector", description="OpenTelemetry-native collector that prices "
                                                                      "every LLM call")
    top.add_argument("--version", action="version", version=f"genai-cost-collector {__version__}")
    commands = top.add_subparsers(dest="command", required=True)
    for command in COMMANDS:
        command.add_commands(commands)
    return top


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return args.handler(args)
    except CollectorError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
