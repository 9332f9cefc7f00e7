"""``genai-collector`` command line: run, validate, --version."""

from __future__ import annotations

import argparse
import asyncio
import gc
import signal
import sys

from collector import __version__, log
from collector.cli_budgets import add_commands as add_budget_commands
from collector.cli_demo import add_commands as add_demo_commands
from collector.cli_doctor import add_commands as add_doctor_commands
from collector.cli_ledger import CommandError
from collector.cli_ledger import add_commands as add_ledger_commands
from collector.cli_pricing import add_commands as add_pricing_commands
from collector.config import ConfigError, default_config_path, load_yaml_file
from collector.http_server import StartupError
from collector.service import Service, build_service

_LOG = log.get("cli")


def load_service(config: str | None) -> Service:
    return build_service(load_yaml_file(config or default_config_path()))


def tune_gc() -> None:
    """Batches allocate many short-lived, acyclic objects that reference counting frees; a larger
    young-generation threshold spares the cycle collector from scanning them thousands of times a second,
    and freezing what startup built keeps it out of every later collection."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 20, 20)


async def serve_until_signalled(service: Service, shutdown_timeout: float) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    try:
        await service.start()
    except StartupError as exc:
        _LOG.error("cannot start", extra={"error": str(exc)})
        print(f"error: {exc}", file=sys.stderr)
        await service.shutdown(5.0)
        return 1
    await stop.wait()
    _LOG.info("shutting down", extra={"timeout_s": shutdown_timeout})
    await service.shutdown(shutdown_timeout)
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    service = load_service(args.config)
    log.configure(service.log_level)
    _LOG.info("loaded config", extra={"config": str(args.config or default_config_path()), "version": __version__})
    tune_gc()
    return asyncio.run(serve_until_signalled(service, args.shutdown_timeout))


def cmd_validate(args: argparse.Namespace) -> int:
    service = load_service(args.config)
    print(f"{args.config or default_config_path()}: valid "
          f"(pipelines: {', '.join(sorted(service.pipelines))})")
    return 0


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="genai-collector", description=__doc__)
    top.add_argument("--version", action="version", version=f"genai-cost-collector {__version__}")
    commands = top.add_subparsers(dest="command", required=True)

    run = commands.add_parser("run", help="run the collector")
    run.add_argument("--config", help="pipeline YAML (default: the embedded config/collector.yaml)")
    run.add_argument("--shutdown-timeout", type=float, default=20.0,
                     help="seconds to drain pipelines and exporter queues on SIGTERM/SIGINT (default 20)")
    run.set_defaults(handler=cmd_run)

    validate = commands.add_parser("validate", help="check a config file without starting anything")
    validate.add_argument("--config", help="pipeline YAML (default: the embedded config/collector.yaml)")
    validate.set_defaults(handler=cmd_validate)

    add_pricing_commands(commands)
    add_ledger_commands(commands)
    add_budget_commands(commands)
    add_demo_commands(commands)
    add_doctor_commands(commands)
    return top


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return args.handler(args)
    except (ConfigError, CommandError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
