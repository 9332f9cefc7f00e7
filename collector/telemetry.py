"""The collector's own counters, kept in one place for health checks and /metrics."""

from __future__ import annotations

import threading
from collections import defaultdict
from collections.abc import Callable


class SelfTelemetry:
    """Counters per (component id, signal, name), plus gauges read on demand.

    Counter names: ``received``, ``accepted``, ``refused`` (receivers);
    ``exported``, ``failed``, ``dropped`` (exporters). Gauges: ``queue_size``.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counters: dict[tuple[str, str, str], int] = defaultdict(int)
        self._gauges: dict[tuple[str, str], Callable[[], float]] = {}
        self._labeled: dict[tuple[str, tuple[tuple[str, str], ...]], int] = defaultdict(int)

    def add(self, component: str, signal: str, name: str, amount: int = 1) -> None:
        with self._lock:
            self._counters[(component, signal, name)] += amount

    def add_labeled(self, name: str, labels: tuple[tuple[str, str], ...], amount: int = 1) -> None:
        """A counter with labels, e.g. ``unpriced_calls{provider, model}``."""
        with self._lock:
            self._labeled[(name, labels)] += amount

    def labeled(self, name: str) -> dict[tuple[tuple[str, str], ...], int]:
        with self._lock:
            return {labels: value for (n, labels), value in self._labeled.items() if n == name}

    def gauge(self, component: str, name: str, read: Callable[[], float]) -> None:
        self._gauges[(component, name)] = read

    def snapshot(self) -> dict:
        """All counters and gauges as a JSON-ready mapping keyed by component id."""
        with self._lock:
            counters = dict(self._counters)
        result: dict[str, dict] = defaultdict(dict)
        for (component, signal, name), value in sorted(counters.items()):
            result[component].setdefault(signal, {})[name] = value
        for (component, name), read in sorted(self._gauges.items()):
            result[component][name] = read()
        with self._lock:
            labeled = dict(self._labeled)
        for (name, labels), value in sorted(labeled.items()):
            result.setdefault("labeled", {}).setdefault(name, []).append({**dict(labels), "value": value})
        return dict(result)
