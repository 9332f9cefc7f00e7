"""The ledger writer's group commits: which waiting requests share a transaction, and how long it waits."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from bench.workload import build_requests
from collector.batch import TelemetryBatch
from collector.component import Refused
from collector.exporters.duckdb import DuckDBConfig, DuckDBExporter
from collector.signals import Signal
from collector.storage.ledger import Ledger
from collector.storage.rows import CallColumns
from processors.genai_native import NativeCalls
from tests.genai_helpers import context
from tests.hot_paths import pipeline


def priced_requests(count: int) -> list[TelemetryBatch]:
    """Requests of 100 spans through normalize, cost and attribution: about 70 calls each."""
    run = pipeline()
    batches = [TelemetryBatch.from_wire(Signal.TRACES, body)
               for body in build_requests(count, spans_per_request=100, start_ns=1767225600 * 10**9)]
    for batch in batches:
        run.run(batch)
    assert all(50 < batch.genai_count < 100 for batch in batches)
    return batches


def writer(tmp_path, **config) -> DuckDBExporter:
    return DuckDBExporter(DuckDBConfig(str(tmp_path / "costs.duckdb"), **config), context("duckdb"))


def gathered(exporter: DuckDBExporter, batches: list[TelemetryBatch]) -> tuple[int, float]:
    """Queue the batches and gather a write: (batches in it, seconds it took)."""
    for batch in batches:
        exporter.inbox.put((batch, None, None))
    started = time.monotonic()
    items, stop = exporter._gather(exporter.inbox.get())
    assert not stop
    return len(items), time.monotonic() - started


def test_requests_waiting_for_the_writer_are_written_at_once(tmp_path):
    """Under load min_rows calls are waiting when the writer is free: they go into the next transaction
    without waiting out flush_interval, and max_rows ends a transaction early."""
    exporter = writer(tmp_path, min_rows=100, max_rows=10_000, flush_interval=30.0)
    count, seconds = gathered(exporter, priced_requests(3))
    assert count == 3 and seconds < 5
    exporter = writer(tmp_path, min_rows=100, max_rows=100, flush_interval=30.0)
    count, _ = gathered(exporter, priced_requests(3))
    assert count == 2 and exporter.inbox.qsize() == 1


def test_fewer_than_min_rows_wait_for_company(tmp_path):
    """A lone request waits up to flush_interval for others to share its transaction; it stops waiting
    when enough arrive."""
    exporter = writer(tmp_path, min_rows=100, flush_interval=0.3)
    count, seconds = gathered(exporter, priced_requests(1))
    assert count == 1 and 0.25 < seconds < 5
    exporter = writer(tmp_path, min_rows=100, flush_interval=30.0)
    later = priced_requests(1)[0]
    threading.Timer(0.2, exporter.inbox.put, [(later, None, None)]).start()
    count, seconds = gathered(exporter, priced_requests(1))
    assert count == 2 and 0.15 < seconds < 5


def test_a_request_whose_rows_cannot_be_made_is_refused_and_the_writer_carries_on(tmp_path, monkeypatch):
    """Whatever fails while a write is put together refuses its requests (the client retries); it does not
    end the writer thread, so the next request is committed."""
    first, second = priced_requests(2)
    exporter = writer(tmp_path)
    make_ledger = NativeCalls._make_ledger

    def fail_once(self, columns):
        monkeypatch.setattr(NativeCalls, "_make_ledger", make_ledger)
        raise RuntimeError("Already borrowed")

    monkeypatch.setattr(NativeCalls, "_make_ledger", fail_once)

    async def commit_both() -> None:
        await exporter.start()
        try:
            with pytest.raises(Refused, match="Already borrowed"):
                await asyncio.wait_for(exporter.commit(first), 30)
            await asyncio.wait_for(exporter.commit(second), 30)
        finally:
            await exporter.shutdown(5)

    asyncio.run(commit_both())
    assert exporter.thread is not None and not exporter.thread.is_alive()  # shut down, not died
    expected = CallColumns(exporter.dimensions)
    expected.add(second)
    with Ledger.open(tmp_path / "costs.duckdb", read_only=True) as ledger:
        assert ledger.con.execute("SELECT count(*) FROM llm_calls").fetchone()[0] == expected.rows > 50
