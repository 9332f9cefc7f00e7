"""The native stage's work off the event loop's thread (collector/offload.py): what a pipeline's ``consume``
forwards and records is what the Python path makes, however the requests interleave on the loop."""

from __future__ import annotations

import asyncio
import gc
import os
import time
from pathlib import Path

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from bench.workload import build_requests
from collector import native
from collector.batch import TelemetryBatch
from collector.pipeline import ProcessorRun
from collector.receivers import otlp_json
from collector.signals import Signal
from tests.genai_helpers import SAMPLES
from tests.hot_paths import assert_same, pipeline

pytestmark = pytest.mark.skipif(not native.available(), reason=f"the native core is not loaded: {native.WHY_PYTHON}")
START_NS = 1767225600 * 10**9


def references(bodies: list[bytes], attribution: bool = True) -> list[TelemetryBatch]:
    """The requests through one pipeline on the Python path, one after the other."""
    run = pipeline(attribution=attribution, reference=True)
    batches = [TelemetryBatch(Signal.TRACES, ExportTraceServiceRequest.FromString(wire)) for wire in bodies]
    for batch in batches:
        run.run(batch)
    return batches


def offloaded(run: ProcessorRun, wire: bytes) -> tuple[TelemetryBatch, asyncio.Task]:
    """A task consuming the request, started on the running loop."""
    batch = TelemetryBatch.from_wire(Signal.TRACES, wire)
    return batch, asyncio.ensure_future(run.consume(batch))


def test_requests_consumed_off_the_loop_come_out_as_on_the_python_path():
    samples = b"".join(otlp_json.decode(Signal.TRACES, path.read_bytes()).SerializeToString()
                       for path in sorted(SAMPLES.glob("*")))
    bodies = [samples, *build_requests(3, spans_per_request=200, start_ns=START_NS)]
    run = pipeline()
    assert run.split is not None, "the pipeline's index has no offloaded form"

    async def consume_each() -> list[TelemetryBatch]:
        batches = []
        for wire in bodies:
            batch, task = offloaded(run, wire)
            await task
            batches.append(batch)
        return batches

    for expected, candidate in zip(references(bodies), asyncio.run(consume_each()), strict=True):
        assert candidate.native is not None, "the native stage did not take the request"
        assert_same(expected, candidate)


def test_requests_interleaved_on_the_loop_come_out_as_one_at_a_time():
    """Sixteen requests in flight at once: each one's jobs queue behind the others', and each comes out as
    alone (attribution off: its cardinality cap depends on the order requests come in)."""
    bodies = build_requests(16, spans_per_request=128, start_ns=START_NS)
    run = pipeline(attribution=False)

    async def consume_all() -> list[TelemetryBatch]:
        started = [offloaded(run, wire) for wire in bodies]
        await asyncio.gather(*(task for _, task in started))
        return [batch for batch, _ in started]

    for expected, candidate in zip(references(bodies, attribution=False), asyncio.run(consume_all()), strict=True):
        assert candidate.native is not None
        assert_same(expected, candidate)


def test_new_price_data_while_a_request_is_read_leaves_that_request_to_the_processors():
    """The stage forgets its prices (new price data) between one request's read and its pricing, which ran
    on the ids of the prices it forgot: that request is priced by the processors, the next by the stage."""
    first, second, warm = build_requests(3, spans_per_request=128, start_ns=START_NS)
    run = pipeline(attribution=False)
    cost = next(p for p in run.processors if type(p).__name__ == "GenAICost")
    run.run(TelemetryBatch.from_wire(Signal.TRACES, warm))  # shapes and prices learned: the next read asks none
    renewed = iter([False, True])
    cost.refresh_prices = lambda: next(renewed, False)

    async def consume_both() -> list[TelemetryBatch]:
        left, first_task = offloaded(run, first)
        await asyncio.sleep(0)  # the first request's read is handed to the worker
        time.sleep(0.5)  # and done there, while the loop waits
        staged, second_task = offloaded(run, second)  # whose first step renews the prices, before the first's next
        await asyncio.gather(first_task, second_task)
        return [left, staged]

    left, staged = asyncio.run(consume_both())
    assert left.native is None and left.genai, "the first request was priced on forgotten prices"
    assert staged.native is not None
    for expected, candidate in zip(references([warm, first, second], attribution=False)[1:], (left, staged),
                                   strict=True):
        assert_same(expected, candidate)


def test_a_request_cancelled_while_its_job_runs_does_not_stop_the_next():
    first, second = build_requests(2, spans_per_request=128, start_ns=START_NS)
    run = pipeline(attribution=False)

    async def cancel_then_consume() -> TelemetryBatch:
        _, task = offloaded(run, first)
        await asyncio.sleep(0)  # its read is handed to the worker
        task.cancel()
        batch, next_task = offloaded(run, second)
        await asyncio.sleep(0)  # the next request's read is handed over too
        time.sleep(0.5)  # both are done on the worker, and the loop hears of them together
        await asyncio.wait_for(next_task, 30)  # a job done for a cancelled request stops no other
        with pytest.raises(asyncio.CancelledError):
            await task
        return batch

    expected = references([first, second], attribution=False)[1]
    assert_same(expected, asyncio.run(cancel_then_consume()))


def _worker_threads() -> int:
    tasks = Path(f"/proc/{os.getpid()}/task")
    count = 0
    for task in tasks.iterdir():
        try:
            count += (task / "comm").read_text().strip() == "genai-native"
        except FileNotFoundError:  # a thread that just ended
            continue
    return count


def test_each_event_loop_has_one_worker_thread_which_ends_with_it():
    wire = build_requests(1, spans_per_request=32, start_ns=START_NS)[0]
    run = pipeline(attribution=False)

    async def consume_twice() -> int:
        for _ in range(2):
            _, task = offloaded(run, wire)
            await task
        return _worker_threads()

    def ended_loops_threads_gone(count: int) -> bool:
        gc.collect()  # the loop's end ends its worker
        deadline = time.monotonic() + 10
        while _worker_threads() > count and time.monotonic() < deadline:
            time.sleep(0.01)
        return _worker_threads() == count

    assert ended_loops_threads_gone(0)
    for _ in range(3):
        assert asyncio.run(consume_twice()) == 1
        assert ended_loops_threads_gone(0)
