"""What the commands share: default locations, opening a ledger, reading a component's config, time ranges."""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from pathlib import Path

from collector import registry
from collector.component import Component
from collector.config import default_config_path, load_yaml_file
from collector.service import Service, build_service
from collector.storage.queries import parse_time, utcnow

DEFAULT_DB = Path("data/costs.duckdb")
DEFAULT_URL = "http://127.0.0.1:8888"


def load_service(config: Path | str | None, workers: int | None = None, worker: int | None = None) -> Service:
    """The service a config file describes (the embedded default without one), validated and built;
    ``workers`` overrides its ``service.workers``; ``worker``: the index of this worker process."""
    return build_service(load_yaml_file(config or default_config_path()), workers=workers, worker=worker)


def load_component(config: Path, kind: str, type_name: str) -> Component | None:
    """The first component of a type in a config file, built and validated as ``run`` builds it; None if
    the config has none."""
    cls = registry.component_class(kind, type_name)
    return next((c for c in load_service(config).components() if isinstance(c, cls)), None)


def progress(done: int, total: int) -> None:
    """A progress bar on stderr for long work."""
    width = 30
    filled = width * done // max(total, 1)
    sys.stderr.write(f"\r[{'#' * filled}{'.' * (width - filled)}] {done}/{total}")
    if done >= total:
        sys.stderr.write("\n")
    sys.stderr.flush()


def add_time_range(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--from", dest="from_", help="2026-01-01, 2026-01-01T12:00:00Z, now, or 7d (ago)")
    parser.add_argument("--to", help="exclusive end (default: now)")


def add_ledger_file(parser: argparse.ArgumentParser, time_range: bool = True) -> None:
    """``--db`` (a stopped collector's ledger file) and, unless told otherwise, ``--from`` / ``--to``."""
    parser.add_argument("--db", type=Path, default=DEFAULT_DB, help=f"the ledger file (default {DEFAULT_DB})")
    if time_range:
        add_time_range(parser)


def time_range(args: argparse.Namespace, default_days: int | None) -> tuple[dt.datetime | None, dt.datetime | None]:
    """``--from`` / ``--to``; without them the last ``default_days`` days, or no bounds when that is None."""
    now = utcnow()
    end = parse_time("--to", args.to, now + dt.timedelta(seconds=1), now) if args.to or default_days else None
    if args.from_:
        start = parse_time("--from", args.from_, now, now)
    else:
        start = end - dt.timedelta(days=default_days) if default_days else None
    return start, end
