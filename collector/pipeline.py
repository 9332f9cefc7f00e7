"""Pipelines: a chain of consumers from a receiver through processors to exporters.

Where a batch is copied and re-encoded is decided here, from what the processors declare
(``Processor.mutates_data``, ``reads_genai``), as the OpenTelemetry Collector's fan-out does.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator, Sequence

from collector.batch import TelemetryBatch
from collector.component import BufferingProcessor, Consumer, Exporter, Processor, Refused

# A pipeline's GenAI index of a batch (processors.genai_index), or None when the native stage took it (batch.native)
Indexer = Callable[[TelemetryBatch], list | None]


class Fanout:
    """Hands a batch to every exporter: first to the durable ones (the ledger), awaiting their commit,
    then to the queues of the others. When any exporter has no room, the batch goes nowhere and the
    client is asked to retry; a failed commit likewise, before anything else was queued.

    Exporters share the batch (they never mutate it), so nothing is copied.
    """

    mutates_data = False

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
    """Runs synchronous in-place processors, then passes the batch on.

    The GenAI index is built before the first processor that reads it; the batch is re-encoded
    (its received bytes forgotten, the attributes queued on its calls appended) only when a
    processor that mutates data ran, so a read-only run forwards the bytes as they were received.
    Where the index has an ``offloaded`` form (the native stage's), ``consume`` awaits it, so the event
    loop goes on with other requests while the native core reads and prices this one.
    """

    def __init__(self, processors: Sequence[Processor], downstream: Consumer, index: Indexer | None = None):
        self.processors = list(processors)
        self.downstream = downstream
        self.index = index
        self.changes_message = any(p.mutates_data for p in self.processors)
        self.mutates_data = self.changes_message or any(p.reads_genai for p in self.processors)
        readers = [i for i, p in enumerate(self.processors) if p.reads_genai]
        offloaded = getattr(index, "offloaded", None)
        # (processors before the index, the index's awaitable form, the rest) when consume awaits the index
        self.split = None if offloaded is None or not readers else \
            (self.processors[:readers[0]], offloaded, self.processors[readers[0]:])

    def run(self, batch: TelemetryBatch) -> None:
        self._process(batch, self.processors)
        self._finish(batch)

    def _process(self, batch: TelemetryBatch, processors: list[Processor]) -> None:
        for processor in processors:
            if processor.reads_genai:
                if not batch.indexed:
                    self._indexed(batch, self.index(batch))
                if batch.native is not None and processor in batch.native.applied:
                    continue  # the native stage did its work
            processor.process(batch)

    @staticmethod
    def _indexed(batch: TelemetryBatch, calls: list | None) -> None:
        if calls is not None:  # None: the native stage took the batch (batch.native)
            batch.genai = calls

    def _finish(self, batch: TelemetryBatch) -> None:
        if self.changes_message:
            batch.invalidate()

    async def consume(self, batch: TelemetryBatch) -> None:
        if self.split is None:
            self.run(batch)
        else:
            before, offloaded, rest = self.split
            self._process(batch, before)
            if not batch.indexed:
                self._indexed(batch, await offloaded(batch))
            self._process(batch, rest)
            self._finish(batch)
        if batch.item_count:
            await self.downstream.consume(batch)


class PipelineSet:
    """Feeds one batch to several pipelines (a receiver's, or the collector's own telemetry).

    As the OpenTelemetry Collector's fan-out: pipelines that do not mutate data share the original;
    the others each get a copy, except the last of them when no pipeline shares the original. The
    copies are made before any pipeline runs.
    """

    def __init__(self, pipelines: Sequence[Consumer]):
        self.pipelines = list(pipelines)
        mutating = [p for p in self.pipelines if p.mutates_data]
        shares_original = len(mutating) < len(self.pipelines)
        self.copies = [p.mutates_data and (shares_original or p is not mutating[-1]) for p in self.pipelines]
        self.mutates_data = bool(mutating) and not shares_original

    def batches(self, batch: TelemetryBatch) -> Iterator[tuple[Consumer, TelemetryBatch]]:
        """Each pipeline with the batch it is to consume."""
        own = [batch.copy() if copy else batch for copy in self.copies]
        return zip(self.pipelines, own, strict=True)

    async def consume(self, batch: TelemetryBatch) -> None:
        for pipeline, own in self.batches(batch):
            await pipeline.consume(own)


def edits_lost_after_buffering(ids: Sequence[str], processors: Sequence[Processor | BufferingProcessor]
                               ) -> list[str]:
    """The ids of the GenAI processors whose span attributes a pipeline would not forward: those that write
    spans after a buffering processor (``batch``) when GenAI processors before it already read the calls.
    The merged batch carries those calls, and their spans are the original requests', not the merged one."""
    read_before, buffered, lost = False, False, []
    for processor_id, processor in zip(ids, processors, strict=True):
        if isinstance(processor, BufferingProcessor):
            buffered = buffered or read_before
        elif processor.reads_genai:
            if buffered and processor.mutates_data:
                lost.append(processor_id)
            read_before = True
    return lost


def chain(processors: Sequence[Processor | BufferingProcessor], exporters: Fanout,
          index: Indexer | None = None) -> Consumer:
    """Build the consumer chain of one pipeline, back to front."""
    head: Consumer = exporters
    pending: list[Processor] = []
    for processor in reversed(processors):
        if isinstance(processor, BufferingProcessor):
            if pending:
                head = ProcessorRun(list(reversed(pending)), head, index)
                pending = []
            head = processor.bind(head)
        else:
            pending.append(processor)
    if pending:
        head = ProcessorRun(list(reversed(pending)), head, index)
    return head
