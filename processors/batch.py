"""``batch``: merges small export requests into larger ones by size or timeout.

Unlike the OpenTelemetry Collector's batch processor, a request is acknowledged
only once the merged batch it went into has been accepted downstream, so a
crash while data sits here loses nothing that a client was told is safe.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Annotated

from collector.batch import TelemetryBatch
from collector.component import BufferingProcessor, BuildContext, Consumer
from collector.schema import AtLeast, Duration


@dataclass(frozen=True)
class BatchConfig:
    send_batch_size: Annotated[int, AtLeast(1)] = 8192  # items
    timeout: Duration = 0.2
    metadata_keys: tuple[str, ...] = ()  # request headers that keep batches apart


@dataclass
class _Pending:
    headers: dict[str, str]
    batches: list[TelemetryBatch] = field(default_factory=list)
    items: int = 0
    waiters: list[asyncio.Future] = field(default_factory=list)
    timer: asyncio.TimerHandle | None = None


class _Batcher:
    """The batching stage of one pipeline. Downstream gets merged batches: those taken in are not changed."""

    mutates_data = False

    def __init__(self, processor: BatchProcessor, downstream: Consumer):
        self.processor = processor
        self.downstream = downstream
        self.pending: dict[tuple, _Pending] = {}
        self.flushing: set[asyncio.Task] = set()

    def _key(self, batch: TelemetryBatch) -> tuple:
        return tuple(batch.headers.get(k, "") for k in self.processor.metadata_keys)

    async def consume(self, batch: TelemetryBatch) -> None:
        key = self._key(batch)
        if self.processor.closed or (key not in self.pending and batch.item_count >= self.processor.send_batch_size):
            await self.downstream.consume(batch)
            return
        pending = self.pending.get(key)
        if pending is None:
            headers = {k: batch.headers[k] for k in self.processor.metadata_keys if k in batch.headers}
            pending = self.pending[key] = _Pending(headers)
            pending.timer = asyncio.get_running_loop().call_later(self.processor.timeout, self._flush_later, key)
        pending.batches.append(batch)
        pending.items += batch.item_count
        accepted = asyncio.get_running_loop().create_future()
        pending.waiters.append(accepted)
        if pending.items >= self.processor.send_batch_size:
            await self.flush(key)
        await accepted

    def _flush_later(self, key: tuple) -> None:
        task = asyncio.ensure_future(self.flush(key))
        self.flushing.add(task)
        task.add_done_callback(self.flushing.discard)

    async def flush(self, key: tuple) -> None:
        pending = self.pending.pop(key, None)
        if pending is None:
            return
        if pending.timer is not None:
            pending.timer.cancel()
        merged = TelemetryBatch.concatenate(pending.batches[0].signal, pending.batches, pending.headers)
        try:
            await self.downstream.consume(merged)
        except Exception as exc:  # every waiting client gets the same refusal
            for waiter in pending.waiters:
                if not waiter.done():
                    waiter.set_exception(exc)
        else:
            for waiter in pending.waiters:
                if not waiter.done():
                    waiter.set_result(None)

    async def flush_all(self) -> None:
        for key in list(self.pending):
            await self.flush(key)
        if self.flushing:
            await asyncio.gather(*self.flushing, return_exceptions=True)


class BatchProcessor(BufferingProcessor):
    """Merges requests into batches of ``send_batch_size`` items or ``timeout``, kept apart by the
    ``metadata_keys`` headers. The merged batch is a new one: the requests it took are not changed."""

    config_class = BatchConfig

    def __init__(self, config: BatchConfig, context: BuildContext):
        self.send_batch_size = config.send_batch_size
        self.timeout = config.timeout
        self.metadata_keys = tuple(k.lower() for k in config.metadata_keys)
        self.batchers: list[_Batcher] = []
        self.closed = False

    def bind(self, downstream: Consumer) -> Consumer:
        batcher = _Batcher(self, downstream)
        self.batchers.append(batcher)
        return batcher

    async def shutdown(self, timeout: float) -> None:
        self.closed = True  # from now on batches pass straight through
        for batcher in self.batchers:
            await batcher.flush_all()
