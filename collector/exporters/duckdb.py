"""``duckdb`` exporter: the cost ledger, written by one thread with group commits.

Durability contract: a request that carries GenAI calls is acknowledged only after the
transaction holding its calls has committed to the DuckDB file. Requests arriving within
``flush_interval`` (or until ``max_rows``) share one transaction, so writes stay batched
while the event loop keeps serving. A failed write refuses the request (503 /
``UNAVAILABLE``), so the client retries; the retry is not counted twice.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import queue
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import duckdb

from collector import log
from collector.batch import TelemetryBatch
from collector.component import BuildContext, Exporter, Refused
from collector.config import ConfigError, parse_duration
from collector.errors import LedgerError, StartupError
from collector.schema import AtLeast, Duration, Parse
from collector.signals import Signal
from collector.storage.ledger import Ledger
from collector.storage.rows import CallColumns
from collector.storage.schema import STANDARD_DIMENSIONS

_LOG = log.get("exporter.duckdb")
_STOP = object()
RETENTION_CHECK_INTERVAL = 3600.0
ROLLUP_INTERVAL = 10.0  # add the calls written since to the rollups (reads add those not rolled up yet)


def keep_for(value: Any) -> float | None:
    """A retention: seconds to keep, or None for ``forever``."""
    if str(value).strip().lower() in ("forever", "0", "none"):
        return None
    try:
        return parse_duration(value)
    except ValueError as exc:
        raise ValueError(f"{exc}; or 'forever'") from None


Retention = Annotated[float | None, Parse(keep_for)]


@dataclass(frozen=True)
class RetentionConfig:
    calls: Retention = 90 * 86400.0
    hourly: Retention = 400 * 86400.0
    daily: Retention = None  # forever


@dataclass(frozen=True)
class DuckDBConfig:
    path: str = "data/costs.duckdb"  # relative to the working directory
    flush_interval: Duration = 0.1
    max_rows: Annotated[int, AtLeast(1)] = 50_000  # per transaction
    retention: RetentionConfig = RetentionConfig()
    threads: Annotated[int, AtLeast(1)] = 1  # DuckDB worker threads: the pipeline needs the other cores


class DuckDBExporter(Exporter):
    signals = frozenset({Signal.TRACES})
    config_class = DuckDBConfig
    durable = True
    max_pending = 200  # batches waiting for the writer thread before the pipeline is told to back off

    def __init__(self, config: DuckDBConfig, context: BuildContext):
        self.component_id = context.component_id
        self.telemetry = context.telemetry
        self.path = Path(config.path).expanduser()
        self.flush_interval = config.flush_interval
        self.max_rows = config.max_rows
        keep = config.retention
        self.retention = {"llm_calls": keep.calls, "cost_hourly": keep.hourly, "cost_daily": keep.daily}
        self.threads = config.threads
        self.dimensions: tuple[str, ...] = STANDARD_DIMENSIONS
        self.inbox: queue.Queue = queue.Queue()
        self.ledger: Ledger | None = None
        self.thread: threading.Thread | None = None
        self.ready = threading.Event()
        self.startup_error: Exception | None = None
        self.last_write: float | None = None
        self.last_error: str | None = None
        self.listeners: list = []  # called in the writer thread after each commit: (ledger, columns, added rows)
        self.telemetry.gauge(self.component_id, "queue_size", self.inbox.qsize)

    def bind_service(self, service) -> None:
        self.dimensions = service.attribution_dimensions()

    def reader(self) -> duckdb.DuckDBPyConnection:
        """A connection for queries from another thread (DuckDB lets readers run beside the writer)."""
        if self.ledger is None:
            raise LedgerError("the ledger is not open")
        return self.ledger.con.cursor()

    async def start(self) -> None:
        self.thread = threading.Thread(target=self._run, name=f"ledger-writer-{self.component_id}", daemon=True)
        self.thread.start()
        await asyncio.to_thread(self.ready.wait)
        if self.startup_error is not None:
            raise StartupError(f"exporter {self.component_id}: {self.startup_error}")
        _LOG.info("ledger open", extra={"path": str(self.path), "dimensions": list(self.dimensions)})

    def has_room(self, batch: TelemetryBatch) -> bool:
        return self.inbox.qsize() < self.max_pending

    def submit(self, batch: TelemetryBatch) -> None:
        self.inbox.put((batch, None, None))

    async def commit(self, batch: TelemetryBatch) -> None:
        """Return once the batch's calls are committed to the ledger file."""
        if not any(call.cost is not None and call.billable for call in batch.genai or ()):
            return
        loop = asyncio.get_running_loop()
        done = loop.create_future()
        self.inbox.put((batch, loop, done))
        try:
            await done
        except duckdb.Error as exc:
            raise Refused(f"ledger write failed: {exc}") from None

    # writer thread ---------------------------------------------------------------------------------------

    def _run(self) -> None:
        try:
            self.ledger = Ledger.open(self.path, self.dimensions, threads=self.threads)
        except (LedgerError, duckdb.Error, OSError) as exc:
            self.startup_error = exc
            self.ready.set()
            return
        self.ready.set()
        next_retention = time.monotonic()
        next_roll_up = time.monotonic() + ROLLUP_INTERVAL
        while True:
            if time.monotonic() >= next_retention:
                self._apply_retention()
                next_retention = time.monotonic() + RETENTION_CHECK_INTERVAL
            if time.monotonic() >= next_roll_up:
                self._roll_up()
                next_roll_up = time.monotonic() + ROLLUP_INTERVAL
            try:
                first = self.inbox.get(timeout=1.0)
            except queue.Empty:
                continue
            if first is _STOP:
                break
            items, stop = self._gather(first)
            self._write(items)
            if stop:
                break
        self._roll_up()
        self.ledger.close()

    def _gather(self, first) -> tuple[list, bool]:
        """The first waiting batch and whatever arrives within flush_interval, up to max_rows."""
        items = [first]
        rows = len(first[0].genai or ())
        deadline = time.monotonic() + self.flush_interval
        while rows < self.max_rows:
            remaining = deadline - time.monotonic()
            try:
                item = self.inbox.get(timeout=remaining) if remaining > 0 else self.inbox.get_nowait()
            except queue.Empty:
                break
            if item is _STOP:
                return items, True
            items.append(item)
            rows += len(item[0].genai or ())
        return items, False

    def _write(self, items: list) -> None:
        columns = CallColumns(self.ledger.dimensions)
        for batch, _, _ in items:
            columns.add(batch)
        error: Exception | None = None
        try:
            added = self.ledger.append(columns.table())
        except duckdb.Error as exc:
            error = exc
            self.last_error = str(exc)
            self.telemetry.add(self.component_id, "traces", "failed", columns.rows)
            _LOG.error("ledger write failed", extra={"rows": columns.rows, "error": str(exc)})
        else:
            self.last_write = time.time()
            self.telemetry.add(self.component_id, "traces", "exported", len(added))
            if columns.rows > len(added):
                self.telemetry.add(self.component_id, "traces", "deduplicated", columns.rows - len(added))
            for listener in self.listeners:
                try:
                    listener(self.ledger, columns, added)
                except Exception:
                    _LOG.exception("commit listener failed")
        for _, loop, done in items:
            if loop is not None:
                loop.call_soon_threadsafe(_settle, done, error)

    def _roll_up(self) -> None:
        try:
            calls = self.ledger.roll_up()
        except duckdb.Error as exc:  # the calls stay past the watermark; reads add them up all the same
            _LOG.error("roll-up failed", extra={"error": str(exc)})
        else:
            _LOG.debug("rolled up", extra={"calls": calls})

    def _apply_retention(self) -> None:
        now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
        for table, keep in self.retention.items():
            if keep is not None:
                deleted = self.ledger.prune(now - dt.timedelta(seconds=keep), [table])
                if deleted[table]:
                    _LOG.info("retention applied", extra={"table": table, "deleted": deleted[table]})

    async def shutdown(self, timeout: float) -> None:
        if self.thread is not None and self.thread.is_alive():
            self.inbox.put(_STOP)
            await asyncio.to_thread(self.thread.join, timeout)


def ledger_of(service, component: str) -> DuckDBExporter:
    """The service's (first) duckdb exporter, which ``component`` (``processor genai_budget``, say) reads."""
    ledgers = [e for e in service.exporters.values() if isinstance(e, DuckDBExporter)]
    if not ledgers:
        raise ConfigError(f"{component} needs a duckdb exporter in a traces pipeline: it reads the ledger",
                          source=service.document.source)
    return ledgers[0]


def _settle(done: asyncio.Future, error: Exception | None) -> None:
    if done.done():
        return
    if error is None:
        done.set_result(None)
    else:
        done.set_exception(error)
