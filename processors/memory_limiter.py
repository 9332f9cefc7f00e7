"""``memory_limiter``: refuse data (429 / RESOURCE_EXHAUSTED, with a retry delay) while memory is high.

Put it first in every pipeline, as in the OpenTelemetry Collector. The resident set size is read
every ``check_interval`` and before each batch (at most every 10 ms); above the soft limit
(``limit_mib - spike_limit_mib``) the garbage is collected and the freed heap handed back to the
OS, and if memory is still high every batch is refused until it falls again, so clients back off
and retry instead of the process growing. The spike allowance must cover the requests in flight
(concurrent requests × their decoded size).
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import gc
import os
import resource
import time
from dataclasses import dataclass
from typing import Annotated

from collector import log
from collector.batch import TelemetryBatch
from collector.component import BuildContext, Processor, Refused
from collector.schema import AtLeast, Duration, Invalid

_LOG = log.get("processor.memory_limiter")
_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def _malloc_trim():
    """glibc's malloc_trim: hands freed heap back to the OS, so the RSS falls when the data is gone."""
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim
    except (OSError, AttributeError):
        return lambda pad: 0


_TRIM = _malloc_trim()


def rss_bytes() -> int:
    """The process's resident set size now (Linux /proc), or its peak where /proc is missing."""
    try:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * _PAGE
    except OSError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


@dataclass(frozen=True)
class MemoryLimiterConfig:
    limit_mib: Annotated[int, AtLeast(32)]  # the hard limit
    spike_limit_mib: Annotated[int, AtLeast(0)] | None = None  # soft limit = limit − spike; default 20% of it
    check_interval: Duration = 1.0

    @property
    def spike_mib(self) -> int:
        return self.limit_mib // 5 if self.spike_limit_mib is None else self.spike_limit_mib

    def check(self) -> None:
        if self.spike_mib >= self.limit_mib:
            raise Invalid("spike_limit_mib", f"must be below limit_mib ({self.limit_mib})")


class MemoryLimiter(Processor):
    config_class = MemoryLimiterConfig
    mutates_data = False
    reads_message = False

    def __init__(self, config: MemoryLimiterConfig, context: BuildContext, measure=rss_bytes):
        self.component_id = context.component_id
        self.telemetry = context.telemetry
        self.hard = config.limit_mib * 2**20
        self.soft = (config.limit_mib - config.spike_mib) * 2**20
        self.interval = config.check_interval
        self.measure = measure
        self.refusing = False
        self.checked = 0.0
        self.task: asyncio.Task | None = None
        self.telemetry.gauge(self.component_id, "rss_bytes", measure)

    def check(self) -> None:
        self.checked = time.monotonic()
        used = self.measure()
        if used >= self.soft:  # is it garbage? collect and give the heap back before refusing
            gc.collect()
            _TRIM(0)
            used = self.measure()
        refusing = used >= self.soft
        if refusing != self.refusing:
            _LOG.warning("memory above the soft limit: refusing data" if refusing else "memory back under the limit",
                         extra={"rss_mib": round(used / 2**20), "soft_mib": self.soft // 2**20,
                                "hard_mib": self.hard // 2**20})
        self.refusing = refusing

    async def _watch(self) -> None:
        while True:
            self.check()
            await asyncio.sleep(self.interval)

    async def start(self) -> None:
        self.task = asyncio.create_task(self._watch())

    async def shutdown(self, timeout: float) -> None:
        if self.task is not None:
            self.task.cancel()

    def process(self, batch: TelemetryBatch) -> None:
        if time.monotonic() - self.checked > 0.01:  # between the periodic checks too: bursts are fast
            self.check()
        if self.refusing:
            self.telemetry.add(self.component_id, batch.signal.spec.name, "refused", batch.item_count)
            raise Refused(f"memory above the soft limit ({self.soft // 2**20} MiB)",
                          retry_after=self.interval * 2, exhausted=True)
