"""``genai-collector run`` and ``validate``."""

from __future__ import annotations

import argparse
import asyncio
import gc
import signal
import sys

from collector import __version__, log
from collector.cli.common import load_service
from collector.config import default_config_path
from collector.errors import StartupError
from collector.service import Service

_LOG = log.get("cli")


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


def add_commands(commands: argparse._SubParsersAction) -> None:
    run = commands.add_parser("run", help="run the collector")
    run.add_argument("--config", help="pipeline YAML (default: the embedded config/collector.yaml)")
    run.add_argument("--shutdown-timeout", type=float, default=20.0,
                     help="seconds to drain pipelines and exporter queues on SIGTERM/SIGINT (default 20)")
    run.set_defaults(handler=cmd_run)

    validate = commands.add_parser("validate", help="check a config file without starting anything")
    validate.add_argument("--config", help="pipeline YAML (default: the embedded config/collector.yaml)")
    validate.set_defaults(handler=cmd_validate)
