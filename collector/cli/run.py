"""``genai-collector run`` and ``validate``."""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import signal
import sys

from collector import __version__, log
from collector.cli.common import load_service
from collector.config import default_config_path
from collector.errors import StartupError
from collector.service import Service
from collector.supervisor import Supervisor, worker_command

_LOG = log.get("cli")


def tune_gc() -> None:
    """Batches allocate many short-lived, acyclic objects that reference counting frees; a larger
    young-generation threshold spares the cycle collector from scanning them thousands of times a second,
    and freezing what startup built keeps it out of every later collection."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 20, 20)


async def serve_until_signalled(service: Service, shutdown_timeout: float, ready_fd: int | None = None) -> int:
    """Run the service until SIGTERM or SIGINT; ``ready_fd``: a pipe to the supervisor, told once it serves."""
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
    if ready_fd is not None:
        os.write(ready_fd, b"1")
        os.close(ready_fd)
    await stop.wait()
    _LOG.info("shutting down", extra={"timeout_s": shutdown_timeout})
    await service.shutdown(shutdown_timeout)
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    service = load_service(args.config, args.workers, args.worker)
    log.configure(service.log_level, args.worker)
    _LOG.info("loaded config", extra={"config": str(args.config or default_config_path()), "version": __version__,
                                      "workers": service.workers})
    if service.workers > 1 and args.worker is None:
        command = ["run", "--workers", str(service.workers), "--shutdown-timeout", str(args.shutdown_timeout)]
        if args.config:
            command += ["--config", str(args.config)]
        return Supervisor(worker_command(command), service.workers, args.shutdown_timeout).run()
    tune_gc()
    return asyncio.run(serve_until_signalled(service, args.shutdown_timeout, args.ready_fd))


def worker_count(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: a number of processes, 1 or more")
    return int(text)


def cmd_validate(args: argparse.Namespace) -> int:
    service = load_service(args.config)
    print(f"{args.config or default_config_path()}: valid "
          f"(pipelines: {', '.join(sorted(service.pipelines))})")
    for message, fields in service.warnings:
        print(f"warning: {message} ({', '.join(f'{k}: {v}' for k, v in fields.items())})")
    return 0


def add_commands(commands: argparse._SubParsersAction) -> None:
    run = commands.add_parser("run", help="run the collector")
    run.add_argument("--config", help="pipeline YAML (default: the embedded config/collector.yaml)")
    run.add_argument("--shutdown-timeout", type=float, default=20.0,
                     help="seconds to drain pipelines and exporter queues on SIGTERM/SIGINT (default 20)")
    run.add_argument("--workers", type=worker_count,
                     help="processes sharing the receiver ports (default: service.workers, 1); more than one "
                          "needs the postgresql ledger")
    run.add_argument("--worker", type=int, help=argparse.SUPPRESS)  # set by the supervisor for each worker
    run.add_argument("--ready-fd", type=int, help=argparse.SUPPRESS)
    run.set_defaults(handler=cmd_run)

    validate = commands.add_parser("validate", help="check a config file without starting anything")
    validate.add_argument("--config", help="pipeline YAML (default: the embedded config/collector.yaml)")
    validate.set_defaults(handler=cmd_validate)
