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

    def add(self, component: str, signal: str, name: str, amount: int = 1) -> None:
        with self._lock:
            self._counters[(component, signal, name)] += amount

    def gauge(self, component: str, name: str, read: Callable[[], float]) -> None:
        self._gauges[(component, name)] = read

    def counter(self, component: str, signal: str, name: str) -> int:
        return self._counters.get((component, signal, name), 0)

    def snapshot(self) -> dict:
        """All counters and gauges as a JSON-ready mapping keyed by component id."""
        with self._lock:
            counters = dict(self._counters)
        result: dict[str, dict] = defaultdict(dict)
        for (component, signal, name), value in sorted(counters.items()):
            result[component].setdefault(signal, {})[name] = value
        for (component, name), read in sorted(self._gauges.items()):
            result[component][name] = read()
        return dict(result)
