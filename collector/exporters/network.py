"""What the network exporters share: connection settings, a bounded sending queue, retries.

Retry follows the OpenTelemetry Collector's ``retry_on_failure``: exponential
backoff with jitter from ``initial_interval`` up to ``max_interval``, giving up
after ``max_elapsed_time`` (0 = never), and a server's ``RetryInfo`` /
``Retry-After`` replaces the computed delay. Permanent errors are not retried.
"""

from __future__ import annotations

import asyncio
import random
import time
from dataclasses import dataclass, field
from typing import Annotated, Literal

from collector import log
from collector.batch import TelemetryBatch
from collector.component import BuildContext, Exporter, Refused
from collector.exporters.disk_queue import DiskQueue
from collector.schema import AtLeast, Duration, ExistingFile, Invalid, Size


class RetryableError(Exception):
    def __init__(self, message: str, retry_after: float | None = None):
        super().__init__(message)
        self.retry_after = retry_after


class PermanentError(Exception):
    """The backend refused the data for good (e.g. 400); retrying cannot help."""


@dataclass(frozen=True)
class RetrySettings:
    """``retry_on_failure``."""

    enabled: bool = True
    initial_interval: Duration = 5.0
    max_interval: Duration = 30.0
    max_elapsed_time: Duration = 300.0  # 0: never give up
    multiplier: float = 1.5
    randomization_factor: float = 0.5

    def delays(self):
        """Jittered backoff delays, growing to ``max_interval``."""
        interval = self.initial_interval
        while True:
            jitter = self.randomization_factor * (2 * random.random() - 1)
            yield max(0.0, interval * (1 + jitter))
            interval = min(interval * self.multiplier, self.max_interval)


@dataclass(frozen=True)
class TlsSettings:
    """``tls`` of a client: the CA to trust, a client certificate, or plaintext (``insecure``)."""

    insecure: bool = False
    ca_file: ExistingFile | None = None
    cert_file: ExistingFile | None = None
    key_file: ExistingFile | None = None
    insecure_skip_verify: bool = False

    def check(self) -> None:
        if bool(self.cert_file) != bool(self.key_file):
            raise Invalid((), "cert_file and key_file must be set together")


@dataclass(frozen=True)
class QueueSettings:
    """``sending_queue``: in memory, or on disk in the ``storage`` folder (survives restarts)."""

    queue_size: Annotated[int, AtLeast(1)] = 1000  # batches
    num_consumers: Annotated[int, AtLeast(1)] = 10
    storage: str | None = None
    max_size: Size = 1024**3  # of the disk queue


@dataclass(frozen=True)
class NetworkExporterConfig:
    """What every network exporter is configured with."""

    endpoint: str
    headers: dict[str, str] = field(default_factory=dict)
    tls: TlsSettings = TlsSettings()
    compression: Literal["gzip", "none"] = "gzip"
    timeout: Duration = 5.0
    sending_queue: QueueSettings = QueueSettings()
    retry_on_failure: RetrySettings = RetrySettings()


class QueuedExporter(Exporter):
    """A network exporter: a bounded in-memory queue drained by ``num_consumers`` senders.

    Subclasses implement :meth:`send` (raise RetryableError or PermanentError) and
    may override :meth:`connect` / :meth:`close`.
    """

    def __init__(self, config: NetworkExporterConfig, context: BuildContext):
        self.component_id = context.component_id
        self.config = config
        self.headers = {k.lower(): v for k, v in config.headers.items()}
        queue = config.sending_queue
        name = context.component_id.replace("/", "_") + ("" if context.worker is None else f".worker-{context.worker}")
        storage = context.resolve(queue.storage) / f"{name}.sqlite" if queue.storage else None
        self.disk = DiskQueue(storage, queue.max_size) if storage is not None else None
        self.durable = self.disk is not None  # acknowledged only once on disk
        self.telemetry = context.telemetry
        self.queue_size = queue.queue_size
        self.num_consumers = queue.num_consumers
        self.retry = config.retry_on_failure
        self.log = log.get(f"exporter.{context.component_id}")
        self.queue: asyncio.Queue[TelemetryBatch] | None = None
        self.consumers: list[asyncio.Task] = []
        self.last_success: float | None = None
        self.last_error: str | None = None
        self.telemetry.gauge(self.component_id, "queue_size", self._queued)
        if self.disk is not None:
            self.telemetry.gauge(self.component_id, "disk_queue_bytes", lambda: self.disk.bytes)

    def _queued(self) -> int:
        if self.disk is not None:
            return self.disk.count
        return self.queue.qsize() if self.queue else 0

    async def connect(self) -> None:
        """Open clients and channels."""

    async def close(self) -> None:
        """Close clients and channels."""

    async def send(self, batch: TelemetryBatch) -> None:
        raise NotImplementedError

    def has_room(self, batch: TelemetryBatch) -> bool:
        if self.disk is not None:
            return True  # checked in commit, where the size is known
        return self.queue is not None and self.queue.qsize() < self.queue_size

    def submit(self, batch: TelemetryBatch) -> None:
        assert self.queue is not None, "exporter not started"
        self.queue.put_nowait(batch)

    async def commit(self, batch: TelemetryBatch) -> None:
        """With ``sending_queue.storage``: returns once the batch is on disk."""
        if self.disk is None:
            self.submit(batch)
            return
        body = batch.serialized()
        if not self.disk.has_room(len(body)):
            raise Refused(f"disk queue of exporter {self.component_id} is full (max_size)", exhausted=True)
        await self.disk.put(batch.signal, body)

    async def start(self) -> None:
        await self.connect()
        self.queue = asyncio.Queue()
        if self.disk is not None:
            await self.disk.open()
            if self.disk.count:
                self.log.info("resuming queued batches", extra={"exporter": self.component_id,
                                                                "batches": self.disk.count, "bytes": self.disk.bytes})
            self.consumers = [asyncio.create_task(self._drain_disk()) for _ in range(self.num_consumers)]
        else:
            self.consumers = [asyncio.create_task(self._drain()) for _ in range(self.num_consumers)]

    async def _drain_disk(self) -> None:
        assert self.disk is not None
        while True:
            item_id, signal, body = await self.disk.take()
            try:
                delivered = await self._deliver(TelemetryBatch.from_wire(signal, body), keep_trying=True)
            except asyncio.CancelledError:
                self.disk.release(item_id)  # still on disk: sent after the next start
                raise
            if delivered is not None:
                await self.disk.done(item_id, len(body))

    async def _drain(self) -> None:
        assert self.queue is not None
        while True:
            batch = await self.queue.get()
            try:
                await self._deliver(batch)
            except asyncio.CancelledError:
                self._failed(batch, "collector shut down before delivery")
                raise
            finally:
                self.queue.task_done()

    async def _deliver(self, batch: TelemetryBatch, keep_trying: bool = False) -> bool | None:
        """Send with retries: True when delivered, False when dropped for good. With ``keep_trying`` (a disk
        queue) a batch is never dropped for a transient error: past max_elapsed_time it keeps retrying at
        max_interval."""
        signal = batch.signal.spec.name
        started = time.monotonic()
        delays = self.retry.delays()
        while True:
            try:
                await self.send(batch)
            except PermanentError as exc:
                self.last_error = f"{time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())} {exc}"
                self._failed(batch, f"permanent error, not retried: {exc}")
                return False
            except RetryableError as exc:
                self.last_error = f"{time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())} {exc}"
                if not self.retry.enabled and not keep_trying:
                    self._failed(batch, f"export failed and retry_on_failure is disabled: {exc}")
                    return False
                delay = exc.retry_after if exc.retry_after is not None else next(delays)
                elapsed = time.monotonic() - started
                if self.retry.max_elapsed_time and elapsed + delay > self.retry.max_elapsed_time \
                        and not keep_trying:
                    self._failed(batch, f"gave up after {elapsed:.1f}s (max_elapsed_time): {exc}")
                    return False
                self.log.info("export failed, will retry", extra={"exporter": self.component_id,
                              "signal": signal, "error": str(exc), "retry_in_s": round(delay, 3)})
                await asyncio.sleep(delay)
            else:
                self.last_success = time.time()
                self.telemetry.add(self.component_id, signal, "exported", batch.item_count)
                return True

    def check_partial_success(self, batch: TelemetryBatch, response) -> None:
        """Count and log items a backend accepted the request but rejected individually."""
        partial = response.partial_success
        rejected = next((getattr(partial, f) for f in ("rejected_spans", "rejected_data_points",
                                                        "rejected_log_records") if hasattr(partial, f)), 0)
        if rejected or partial.error_message:
            self.telemetry.add(self.component_id, batch.signal.spec.name, "failed", rejected)
            self.log.warning("backend rejected part of a batch", extra={
                "exporter": self.component_id, "rejected": rejected, "backend_message": partial.error_message})

    def _failed(self, batch: TelemetryBatch, reason: str) -> None:
        signal = batch.signal.spec.name
        self.telemetry.add(self.component_id, signal, "failed", batch.item_count)
        self.log.error("dropping data", extra={"exporter": self.component_id, "signal": signal,
                                               "items": batch.item_count, "reason": reason})

    async def shutdown(self, timeout: float) -> None:
        if self.queue is not None:
            try:
                await asyncio.wait_for(self.queue.join(), timeout)
            except TimeoutError:
                self.log.warning("shutdown timeout reached with data still queued",
                                 extra={"exporter": self.component_id, "queued_batches": self.queue.qsize()})
        for task in self.consumers:
            task.cancel()
        await asyncio.gather(*self.consumers, return_exceptions=True)
        while self.queue is not None and not self.queue.empty():
            self._failed(self.queue.get_nowait(), "collector shut down before delivery")
        if self.disk is not None:
            if self.disk.count:
                self.log.info("batches stay queued on disk", extra={"exporter": self.component_id,
                                                                    "batches": self.disk.count})
            await self.disk.close()
        await self.close()
