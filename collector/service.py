"""Service: builds every component from a config Document, wires pipelines, runs them."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from collector import log, native, registry
from collector.batch import TelemetryBatch
from collector.component import (
    BuildContext,
    Component,
    Exporter,
    Extension,
    Receiver,
    Refused,
)
from collector.config import Document, Section, suggest
from collector.pipeline import Fanout, PipelineSet, chain, edits_lost_after_buffering
from collector.signals import Signal
from collector.telemetry import SelfTelemetry
from processors.genai_index import indexer_for

_LOG = log.get("service")
_TOP_LEVEL = ("receivers", "processors", "exporters", "extensions", "service")
_UNSUPPORTED = {"connectors": "connectors are not supported: the genai_metrics processor turns priced spans into "
                              "metrics for the metrics pipelines"}


def split_id(component_id: str) -> tuple[str, str]:
    type_name, _, name = component_id.partition("/")
    return type_name, name


@dataclass
class Service:
    document: Document
    telemetry: SelfTelemetry
    receivers: dict[str, Receiver] = field(default_factory=dict)
    exporters: dict[str, Exporter] = field(default_factory=dict)
    processors: list[Component] = field(default_factory=list)
    extensions: dict[str, Extension] = field(default_factory=dict)
    pipelines: dict[str, Signal] = field(default_factory=dict)
    log_level: str = "info"
    workers: int = 1  # processes sharing the receiver ports (run --workers, service.workers)
    running: bool = False
    own_telemetry: dict[Signal, PipelineSet] = field(default_factory=dict)  # every pipeline, per signal
    warnings: list[tuple[str, dict[str, Any]]] = field(default_factory=list)  # of the config: (message, fields)

    async def emit(self, batch: TelemetryBatch) -> None:
        """Feed telemetry the collector makes itself (budget alerts) to every pipeline of its signal; one
        pipeline refusing it does not keep it from the others."""
        pipelines = self.own_telemetry.get(batch.signal)
        for pipeline, own in pipelines.batches(batch) if pipelines else ():
            try:
                await pipeline.consume(own)
            except Refused as exc:
                _LOG.warning("own telemetry refused", extra={"signal": batch.signal.spec.name, "reason": str(exc)})

    def attribution_dimensions(self) -> tuple[str, ...]:
        """Every attribution dimension the pipelines produce (standard ones first)."""
        from collector.storage.schema import STANDARD_DIMENSIONS
        names = list(STANDARD_DIMENSIONS)
        for processor in self.processors:
            names += [d for d in getattr(processor, "attribution_dimensions", ()) if d not in names]
        return tuple(names)

    def components(self) -> list[Component]:
        return [*self.exporters.values(), *self.processors, *self.receivers.values(), *self.extensions.values()]

    async def start(self) -> None:
        for group in (self.exporters.values(), self.processors, self.receivers.values(), self.extensions.values()):
            for component in group:
                await component.start()
        self.running = True
        for message, fields in self.warnings:
            _LOG.warning(message, extra=fields)
        _LOG.info("collector started", extra={"pipelines": sorted(self.pipelines),
                                              "receivers": sorted(self.receivers),
                                              "exporters": sorted(self.exporters), **native.describe()})

    async def shutdown(self, timeout: float = 30.0) -> None:
        """Stop receiving, flush processors, drain exporters; all within ``timeout``.

        Receivers stop accepting first but keep answering requests already in
        flight while the processors flush, so those requests are acknowledged.
        """
        self.running = False
        deadline = time.monotonic() + timeout

        async def stop(component: Component) -> None:
            remaining = max(0.1, deadline - time.monotonic())
            try:
                await asyncio.wait_for(component.shutdown(remaining), remaining + 1)
            except TimeoutError:
                _LOG.warning("component did not stop in time", extra={"component": type(component).__name__})

        receivers = [asyncio.create_task(stop(r)) for r in self.receivers.values()]
        await asyncio.sleep(0)
        for processor in self.processors:
            await stop(processor)
        await asyncio.gather(*receivers)
        for component in (*self.exporters.values(), *self.extensions.values()):
            await stop(component)
        _LOG.info("collector stopped")


class _Builder:
    def __init__(self, document: Document, config_dir: Path, workers: int | None, worker: int | None):
        self.doc = document
        self.config_dir = config_dir
        self.workers_override = workers
        self.worker = worker
        self.shared_ports = False
        self.telemetry = SelfTelemetry()
        root = document.data
        if not isinstance(root, dict):
            raise document.error((), "the config must be a mapping with receivers, exporters and service")
        for key in root:
            if key not in _TOP_LEVEL:
                raise document.error((key,), "unknown top-level key", _UNSUPPORTED.get(key) or suggest(key, _TOP_LEVEL)
                                     or f"top-level keys are {', '.join(_TOP_LEVEL)}")
        for kind in registry.KINDS:
            if not isinstance(root.get(kind) or {}, dict):
                raise document.error((kind,), "expected a mapping of component ids to their settings")
        self.defined = {kind: dict(root.get(kind) or {}) for kind in registry.KINDS}
        for kind, components in self.defined.items():
            for component_id in components:
                self._check_type(kind, component_id)

    def _check_type(self, kind: str, component_id: str) -> None:
        type_name, name = split_id(component_id)
        known = registry.KINDS[kind]
        if type_name not in known:
            hint = suggest(type_name, known)
            hint = (hint + " " if hint else "") + f"known {kind}: {', '.join(sorted(known))}"
            raise self.doc.error((kind, component_id), f"unknown {kind[:-1]} type {type_name!r}", hint)
        if "/" in component_id and not name:
            raise self.doc.error((kind, component_id), "empty name after '/' in component id")

    def build(self, kind: str, component_id: str) -> Component:
        type_name, _ = split_id(component_id)
        cls = registry.component_class(kind, type_name)
        section = self.doc.section(kind, component_id)
        context = BuildContext(component_id, self.telemetry, self.config_dir, self.shared_ports, self.worker)
        component = cls.from_config(section, context)
        section.finish()
        return component

    def references(self, section: Section, kind: str, pipeline_id: str, signal: Signal) -> list[str]:
        ids = section.str_list(kind, [])
        for index, component_id in enumerate(ids):
            if component_id not in self.defined[kind]:
                defined = sorted(self.defined[kind])
                raise self.doc.error(
                    ("service", "pipelines", pipeline_id, kind, index),
                    f"pipeline {pipeline_id!r} references {kind[:-1]} {component_id!r}, which is not defined",
                    suggest(component_id, defined) or f"defined {kind}: {', '.join(defined) or 'none'}")
            cls = registry.component_class(kind, split_id(component_id)[0])
            if signal not in cls.signals:
                raise self.doc.error(("service", "pipelines", pipeline_id, kind, index),
                                     f"{kind[:-1]} {component_id!r} does not support {signal.spec.name}")
        return ids

    def service(self) -> Service:
        doc = self.doc
        svc = Service(doc, self.telemetry)
        service_section = doc.section("service")
        telemetry_section = service_section.section("telemetry")
        logs_section = telemetry_section.section("logs")
        svc.log_level = logs_section.str("level", "info", choices=("debug", "info", "warn", "warning", "error"))
        logs_section.finish()
        telemetry_section.finish()
        configured_workers = service_section.int("workers", 1, minimum=1)
        svc.workers = self.workers_override or configured_workers
        self.shared_ports = svc.workers > 1

        for extension_id in service_section.str_list("extensions", []):
            if extension_id not in self.defined["extensions"]:
                raise doc.error(("service", "extensions"), f"extension {extension_id!r} is not defined",
                                f"defined extensions: {', '.join(self.defined['extensions']) or 'none'}")
            svc.extensions[extension_id] = self.build("extensions", extension_id)

        pipelines = service_section.section("pipelines")
        if not pipelines.keys():
            raise doc.error(("service", "pipelines"), "no pipelines defined",
                            "add service.pipelines.traces with receivers and exporters")
        consumers: dict[tuple[str, Signal], list] = {}
        heads: dict[Signal, list] = {}  # the first consumer of every pipeline, per signal
        for pipeline_id in pipelines:
            signal_name, _ = split_id(pipeline_id)
            try:
                signal = Signal.from_name(signal_name)
            except KeyError:
                names = [s.spec.name for s in Signal]
                raise doc.error(("service", "pipelines", pipeline_id), f"unknown pipeline signal {signal_name!r}",
                                suggest(signal_name, names) or f"pipelines are named {', '.join(names)}") from None
            section = pipelines.section(pipeline_id)
            receiver_ids = self.references(section, "receivers", pipeline_id, signal)
            processor_ids = self.references(section, "processors", pipeline_id, signal)
            exporter_ids = self.references(section, "exporters", pipeline_id, signal)
            section.finish()
            if not receiver_ids or not exporter_ids:
                raise doc.error(("service", "pipelines", pipeline_id),
                                "a pipeline needs at least one receiver and one exporter")
            processors = [self.build("processors", pid) for pid in processor_ids]
            svc.processors.extend(processors)
            for exporter_id in exporter_ids:
                if exporter_id not in svc.exporters:
                    svc.exporters[exporter_id] = self.build("exporters", exporter_id)
            fanout = Fanout([(eid, svc.exporters[eid]) for eid in exporter_ids])
            head = chain(processors, fanout, indexer_for(processors))
            lost = edits_lost_after_buffering(processor_ids, processors)
            if lost:
                svc.warnings.append((
                    "span attributes of processors after batch are not forwarded: GenAI processors before it "
                    "read the calls; put these before batch (the ledger and metrics still get their values)",
                    {"pipeline": pipeline_id, "processors": lost}))
            heads.setdefault(signal, []).append(head)
            for receiver_id in receiver_ids:
                consumers.setdefault((receiver_id, signal), []).append(head)
            svc.pipelines[pipeline_id] = signal
        pipelines.finish()
        service_section.finish()
        svc.own_telemetry = {signal: PipelineSet(signal_heads) for signal, signal_heads in heads.items()}

        for (receiver_id, signal), heads in consumers.items():
            if receiver_id not in svc.receivers:
                svc.receivers[receiver_id] = self.build("receivers", receiver_id)
            svc.receivers[receiver_id].attach(signal, heads[0] if len(heads) == 1 else PipelineSet(heads))
        for component in svc.components():
            component.bind_service(svc)
        if svc.workers > 1:
            self._check_shared_ledgers(svc)
        return svc

    def _check_shared_ledgers(self, svc: Service) -> None:
        """Workers write one ledger at once: a DuckDB file allows one writer process."""
        from collector.exporters.duckdb import DuckDBExporter
        for exporter_id, exporter in svc.exporters.items():
            if isinstance(exporter, DuckDBExporter):
                raise self.doc.error(
                    ("exporters", exporter_id),
                    f"{svc.workers} workers cannot share the DuckDB ledger {exporter_id!r}: a DuckDB file allows "
                    "one writer process", "use the postgresql exporter for the ledger (README: Scale out), or run "
                    "one worker")


def build_service(document: Document, config_dir: Path | None = None, workers: int | None = None,
                  worker: int | None = None) -> Service:
    """Build (but do not start) the service a config describes; raises ConfigError. ``workers`` overrides
    ``service.workers`` (``run --workers``); ``worker`` is the index of this worker process."""
    if config_dir is None:
        config_dir = Path(document.source).parent if document.source and not document.source.startswith("<") \
            else Path.cwd()
    return _Builder(document, config_dir, workers, worker).service()
