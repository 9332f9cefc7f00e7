"""Pipelines: a chain of consumers from a receiver through processors to exporters."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from collector.batch import TelemetryBatch
from collector.component import BufferingProcessor, Consumer, Exporter, Processor, Refused


class Fanout:
    """Hands a batch to every exporter: first to the durable ones (the ledger), awaiting their commit,
    then to the queues of the others. When any exporter has no room, the batch goes nowhere and the
    client is asked to retry; a failed commit likewise, before anything else was queued.

    Exporters share the batch (they never mutate it), so nothing is copied.
    """

    def __init__(self, exporters: Sequence[tuple[str, Exporter]]):
        self.exporters = list(exporters)
        self.durable = [e for _, e in self.exporters if e.durable]
        self.queued = [e for _, e in self.exporters if not e.durable]

    async def consume(self, batch: TelemetryBatch) -> None:
        for exporter_id, exporter in self.exporters:
            if not exporter.has_room(batch):
                raise Refused(f"sending queue of exporter {exporter_id} is full")
        if self.durable:
            await asyncio.gather(*(exporter.commit(batch) for exporter in self.durable))
        for exporter in self.queued:
            exporter.submit(batch)


class ProcessorRun:
    """Runs synchronous in-place processors, then passes the batch on."""

    def __init__(self, processors: Sequence[Processor], downstream: Consumer):
        self.processors = list(processors)
        self.downstream = downstream

    async def consume(self, batch: TelemetryBatch) -> None:
        for processor in self.processors:
            processor.process(batch)
        batch.invalidate()  # processors work in place: the received bytes are stale now
        if batch.item_count:
            await self.downstream.consume(batch)


class PipelineSet:
    """Feeds one receiver's batches of a signal to every pipeline that lists the receiver.

    When several pipelines take the same batch, all but the last get a copy,
    because their processors mutate it.
    """

    def __init__(self, pipelines: Sequence[Consumer]):
        self.pipelines = list(pipelines)

    async def consume(self, batch: TelemetryBatch) -> None:
        last = len(self.pipelines) - 1
        for index, pipeline in enumerate(self.pipelines):
            await pipeline.consume(batch if index == last else batch.copy())


def chain(processors: Sequence[Processor | BufferingProcessor], exporters: Fanout) -> Consumer:
    """Build the consumer chain of one pipeline, back to front."""
    head: Consumer = exporters
    pending: list[Processor] = []
    for processor in reversed(processors):
        if isinstance(processor, BufferingProcessor):
            if pending:
                head = ProcessorRun(list(reversed(pending)), head)
                pending = []
            head = processor.bind(head)
        else:
            pending.append(processor)
    if pending:
        head = ProcessorRun(list(reversed(pending)), head)
    return head
