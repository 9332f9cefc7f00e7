"""The component contracts: receivers, processors, exporters and extensions.

A component declares its typed config (``config_class``, a dataclass read by :mod:`collector.schema`)
and is built from it by ``Type(config, context)`` without touching the network, so ``validate`` can
build a whole service; it binds ports and starts tasks only in ``start()``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Protocol

from collector import schema
from collector.batch import TelemetryBatch
from collector.config import Section
from collector.signals import Signal
from collector.telemetry import SelfTelemetry

ALL_SIGNALS = frozenset(Signal)


@dataclass(frozen=True)
class BuildContext:
    component_id: str
    telemetry: SelfTelemetry
    config_dir: Path
    shared_ports: bool = False  # one of several worker processes: listeners bind with SO_REUSEPORT
    worker: int | None = None  # which worker this process is (files of its own, such as a disk queue)

    def resolve(self, path: str) -> Path:
        """A path from the config, relative to the config file's folder."""
        candidate = Path(path).expanduser()
        return candidate if candidate.is_absolute() else self.config_dir / candidate


class Refused(Exception):
    """The pipeline cannot take this batch now; the client should retry later.

    ``exhausted``: a limit was reached (memory, disk queue size) → HTTP 429 / RESOURCE_EXHAUSTED;
    otherwise the pipeline is busy or failing → 503 / UNAVAILABLE. Both carry a retry delay.
    """

    def __init__(self, message: str, retry_after: float = 1.0, exhausted: bool = False):
        super().__init__(message)
        self.retry_after = retry_after
        self.exhausted = exhausted


class Consumer(Protocol):
    mutates_data: bool  # whether consuming changes the batch handed in (its message or GenAI index)

    async def consume(self, batch: TelemetryBatch) -> None:
        """Accept the batch or raise Refused. Returning means the data is safely queued."""


class Component:
    signals: ClassVar[frozenset[Signal]] = ALL_SIGNALS
    config_class: ClassVar[type]  # the dataclass of its settings, with their defaults

    @classmethod
    def from_config(cls, section: Section, context: BuildContext) -> Component:
        """Read the section as ``config_class`` and build the component: ``cls(config, context)``."""
        return cls(schema.read(cls.config_class, section, context), context)  # type: ignore[call-arg]

    async def start(self) -> None:
        """Bind ports, start tasks."""

    async def shutdown(self, timeout: float) -> None:
        """Stop within ``timeout`` seconds, finishing what can be finished."""

    def bind_service(self, service: object) -> None:
        """Called once the whole service is built: look at other components (extensions, storage)."""


class Processor(Component):
    """Works synchronously and in place on each batch (a function of the batch).

    Declared capabilities, read by the pipeline:

    - ``mutates_data``: ``process`` changes the message (as the OpenTelemetry Collector's
      ``Capabilities.MutatesData``). The pipeline re-encodes a batch, and copies it for fan-out, only
      where a processor that mutates runs on it.
    - ``reads_genai``: ``process`` works from ``batch.genai``, the index of GenAI calls, which the
      pipeline builds once before the first such processor; ``span_keys`` (span attributes read from
      the calls) and ``source_mappings`` (canonical field → extra source keys) shape that index.
    - ``reads_message``: ``process`` reads or changes ``batch.message``. In a pipeline where no processor
      does, the native hot path keeps trace requests as bytes and decodes only the GenAI spans.
    - ``edits_wire``: ``process`` changes a trace request the native core kept as bytes on its bytes
      (``batch.rewrite``) while no GenAI index was built on them; placed before the GenAI processors,
      it keeps the pipeline on the native path even though it ``reads_message`` otherwise.
    """

    mutates_data: ClassVar[bool] = True
    reads_genai: ClassVar[bool] = False
    reads_message: ClassVar[bool] = True
    edits_wire: bool = False
    span_keys: frozenset[str] = frozenset()
    source_mappings: Mapping[str, tuple[str, ...]] = {}

    def process(self, batch: TelemetryBatch) -> None:
        raise NotImplementedError


class BufferingProcessor(Component):
    """Holds batches and passes them on later (e.g. ``batch``); sits in the consumer chain."""

    def bind(self, downstream: Consumer) -> Consumer:
        raise NotImplementedError


class Exporter(Component):
    """Takes batches without blocking; delivery happens in the background.

    A ``durable`` exporter (the ledger) is awaited instead: ``commit`` returns once the batch
    is stored, and only then is the request acknowledged.
    """

    durable: ClassVar[bool] = False

    def has_room(self, batch: TelemetryBatch) -> bool:
        return True

    def submit(self, batch: TelemetryBatch) -> None:
        raise NotImplementedError

    async def commit(self, batch: TelemetryBatch) -> None:
        self.submit(batch)


class Receiver(Component):
    def attach(self, signal: Signal, consumer: Consumer) -> None:
        raise NotImplementedError


class Extension(Component):
    """Serves something beside the pipelines (health, API); reads the service through ``bind_service``."""
