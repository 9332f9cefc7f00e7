"""What the ledger exporters (``duckdb``, ``postgresql``) share: one writer thread with group commits.

Durability contract: a request that carries GenAI calls is acknowledged only after the
transaction holding its calls has committed. The requests waiting when the writer is free share one
transaction (up to ``max_rows`` calls); when fewer than ``min_rows`` calls wait, it waits up to
``flush_interval`` for more. So writes stay batched while the event loop keeps serving, and under
load a request waits for the write before its own, not for a timer. A failed write refuses the
request (503 / ``UNAVAILABLE``), so the client retries; the retry is not counted twice. Processors
that keep state in the ledger (``genai_budget``) take part in each write's transaction through
``in_transaction`` listeners.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import queue
import threading
import time
from abc import abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any

from collector import log
from collector.batch import TelemetryBatch
from collector.component import BuildContext, Exporter, Refused
from collector.config import ConfigError, parse_duration
from collector.errors import LedgerError, StartupError
from collector.schema import Parse
from collector.signals import Signal
from collector.storage.rows import CallColumns
from collector.storage.schema import STANDARD_DIMENSIONS
from collector.storage.store import LedgerStore, WriteTxn

_STOP = object()
RETENTION_CHECK_INTERVAL = 3600.0
ROLLUP_INTERVAL = 10.0  # add the calls written since to the rollups (reads add those not rolled up yet)

# called in the writer thread inside each write's transaction: (transaction, columns, positions added)
WriteListener = Callable[[WriteTxn, CallColumns, list[int]], None]


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

    def tables(self) -> dict[str, float | None]:
        """Seconds to keep the rows of each table (None: forever)."""
        return {"llm_calls": self.calls, "cost_hourly": self.hourly, "cost_daily": self.daily}


class LedgerExporter(Exporter):
    """A traces exporter that writes the priced calls to a ledger store; subclasses open the store."""

    signals = frozenset({Signal.TRACES})
    durable = True
    max_pending = 200  # batches waiting for the writer thread before the pipeline is told to back off

    def __init__(self, config: Any, context: BuildContext):
        self.component_id = context.component_id
        self.telemetry = context.telemetry
        self.log = log.get(f"exporter.{context.component_id.partition('/')[0]}")
        self.flush_interval = config.flush_interval
        self.min_rows = config.min_rows
        self.max_rows = config.max_rows
        self.retention: dict[str, float | None] = config.retention.tables()
        self.dimensions: tuple[str, ...] = STANDARD_DIMENSIONS
        self.inbox: queue.Queue = queue.Queue()
        self.store: LedgerStore | None = None
        self.thread: threading.Thread | None = None
        self.ready = threading.Event()
        self.startup_error: Exception | None = None
        self.last_write: float | None = None
        self.last_error: str | None = None
        self.in_transaction: list[WriteListener] = []
        self.committed: list[WriteListener] = []  # called after the commit, in the writer thread
        self.telemetry.gauge(self.component_id, "queue_size", self.inbox.qsize)

    def bind_service(self, service) -> None:
        self.dimensions = service.attribution_dimensions()

    @abstractmethod
    def open_store(self) -> LedgerStore:
        """Open (and migrate) the store; raises LedgerError with what to do when it cannot."""

    @abstractmethod
    def where(self) -> dict[str, Any]:
        """Where the ledger is, for the startup log (no secrets)."""

    async def start(self) -> None:
        self.thread = threading.Thread(target=self._run, name=f"ledger-writer-{self.component_id}", daemon=True)
        self.thread.start()
        await asyncio.to_thread(self.ready.wait)
        if self.startup_error is not None:
            raise StartupError(f"exporter {self.component_id}: {self.startup_error}")
        self.log.info("ledger open", extra={**self.where(), "dimensions": list(self.dimensions)})

    def has_room(self, batch: TelemetryBatch) -> bool:
        return self.inbox.qsize() < self.max_pending

    def submit(self, batch: TelemetryBatch) -> None:
        self.inbox.put((batch, None, None))

    async def commit(self, batch: TelemetryBatch) -> None:
        """Return once the batch's calls are committed to the ledger."""
        if not batch.has_ledger_rows:
            return
        loop = asyncio.get_running_loop()
        done = loop.create_future()
        self.inbox.put((batch, loop, done))
        try:
            await done
        except LedgerError as exc:
            raise Refused(str(exc)) from None

    # writer thread ---------------------------------------------------------------------------------------

    def _run(self) -> None:
        try:
            self.store = self.open_store()
        except (LedgerError, OSError) as exc:
            self.startup_error = exc
            self.ready.set()
            return
        self.ready.set()
        next_retention = time.monotonic()
        next_roll_up = time.monotonic() + ROLLUP_INTERVAL
        while True:
            if time.monotonic() >= next_retention:
                self._maintain(self._apply_retention)
                next_retention = time.monotonic() + RETENTION_CHECK_INTERVAL
            if time.monotonic() >= next_roll_up:
                self._maintain(self.store.roll_up)
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
        self._maintain(self.store.roll_up)
        self.store.close()

    def _gather(self, first) -> tuple[list, bool]:
        """The first waiting batch and those behind it, up to max_rows calls; while fewer than min_rows calls
        wait, also what arrives within flush_interval."""
        items = [first]
        rows = first[0].genai_count
        deadline = time.monotonic() + self.flush_interval
        while rows < self.max_rows:
            remaining = deadline - time.monotonic() if rows < self.min_rows else 0
            try:
                item = self.inbox.get(timeout=remaining) if remaining > 0 else self.inbox.get_nowait()
            except queue.Empty:
                break
            if item is _STOP:
                return items, True
            items.append(item)
            rows += item[0].genai_count
        return items, False

    def _write(self, items: list) -> None:
        columns = CallColumns(self.store.dimensions)
        error: Exception | None = None
        try:  # whatever fails, the requests are refused and the writer carries on
            for batch, _, _ in items:
                columns.add(batch)
            with self.store.write() as txn:
                added = txn.append(columns.table())
                for listener in self.in_transaction:
                    listener(txn, columns, added)
        except Exception as exc:  # the store rolled back, if it began
            error = exc if isinstance(exc, LedgerError) else LedgerError(f"ledger write failed: {exc}")
            self.last_error = str(error)
            self.telemetry.add(self.component_id, "traces", "failed", columns.rows)
            self.log.error("ledger write failed", exc_info=not isinstance(exc, LedgerError),
                           extra={"rows": columns.rows, "error": str(exc)})
        else:
            self.last_write = time.time()
            self.telemetry.add(self.component_id, "traces", "exported", len(added))
            if columns.rows > len(added):
                self.telemetry.add(self.component_id, "traces", "deduplicated", columns.rows - len(added))
            for listener in self.committed:
                try:
                    listener(txn, columns, added)
                except Exception:
                    self.log.exception("commit listener failed")
        for _, loop, done in items:
            if loop is not None:
                loop.call_soon_threadsafe(_settle, done, error)

    def _maintain(self, work: Callable[[], Any]) -> None:
        try:
            work()
        except Exception as exc:  # the next round retries; rollups lag, reads add the rest
            self.log.error("ledger maintenance failed", extra={"work": work.__name__, "error": str(exc)})

    def _apply_retention(self) -> None:
        now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
        for table, keep in self.retention.items():
            if keep is not None:
                deleted = self.store.prune(now - dt.timedelta(seconds=keep), [table])
                if deleted.get(table):
                    self.log.info("retention applied", extra={"table": table, "deleted": deleted[table]})

    async def shutdown(self, timeout: float) -> None:
        if self.thread is not None and self.thread.is_alive():
            self.inbox.put(_STOP)
            await asyncio.to_thread(self.thread.join, timeout)


def ledger_of(service, component: str, ledger_id: str | None = None) -> LedgerExporter:
    """The ledger exporter a component reads: the one named ``ledger_id``, or the service's only one."""
    ledgers = {exporter_id: e for exporter_id, e in service.exporters.items() if isinstance(e, LedgerExporter)}
    if ledger_id is not None:
        if ledger_id not in ledgers:
            raise ConfigError(f"{component}: ledger {ledger_id!r} is not a ledger exporter of this config; "
                              f"use one of: {', '.join(ledgers) or 'none (add a duckdb or postgresql exporter)'}",
                              source=service.document.source)
        return ledgers[ledger_id]
    if not ledgers:
        raise ConfigError(f"{component} needs a ledger exporter (duckdb or postgresql) in a traces pipeline: "
                          "it reads the ledger", source=service.document.source)
    if len(ledgers) > 1:
        raise ConfigError(f"{component}: the config has {len(ledgers)} ledgers ({', '.join(ledgers)}): "
                          "say which with `ledger: <exporter id>`", source=service.document.source)
    return next(iter(ledgers.values()))


def _settle(done: asyncio.Future, error: Exception | None) -> None:
    if done.done():
        return
    if error is None:
        done.set_result(None)
    else:
        done.set_exception(error)
