"""The native core's work off the event loop's thread.

The native core's heavy phases are jobs (``collector._native.Job``): work that needs no Python, then a step
that makes the Python result. Code that needs them is written once, as a generator of jobs: it yields a
job and is sent its result, and returns its own. Two drivers run it:

- :func:`run_here` runs each job on the calling thread, with the GIL released while it works (a
  synchronous caller: tests, the CLI, a pipeline run outside the event loop);
- :func:`run_offloaded` hands each job to the running event loop's worker thread and awaits it, so the
  loop keeps receiving and forwarding other requests while the core works. The worker never takes the
  GIL: it wakes the loop through a socket the loop watches, and the results are made on the loop's thread.

Jobs run one at a time, in the order they were handed over, so the stage's memory of duplicates and the
cardinality limits see the requests in one order, as on the loop's thread.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Generator
from typing import Any, TypeVar

from collector import native

T = TypeVar("T")
# a generator of native jobs: yields each job, is sent its result, returns its own
Steps = Generator[Any, Any, T]


def run_here(steps: Steps[T]) -> T:
    """The steps' result, each job run on this thread."""
    result = None
    try:
        while True:
            result = steps.send(result).run()
    except StopIteration as done:
        return done.value


async def run_offloaded(steps: Steps[T]) -> T:
    """The steps' result, each job run on the running loop's worker thread while the loop goes on."""
    worker = _loop_worker()
    result = None
    try:
        while True:
            result = await worker.run(steps.send(result))
    except StopIteration as done:
        return done.value


class LoopWorker:
    """The native worker thread of one event loop, and the futures of the jobs it has not finished."""

    def __init__(self, loop: asyncio.AbstractEventLoop):
        # (holds no reference to the loop: the loop's reader holds this, and the loop's end ends the thread)
        self.worker = native.worker()
        self.waiting: dict[int, asyncio.Future] = {}
        loop.add_reader(self.worker.fileno(), self._deliver)

    def run(self, job: Any) -> asyncio.Future:
        future = asyncio.get_running_loop().create_future()
        self.waiting[self.worker.submit(job)] = future
        return future

    def _deliver(self) -> None:
        for ticket, succeeded, value in self.worker.drain():
            future = self.waiting.pop(ticket)
            if future.cancelled():  # its request is gone; the job put back what it took
                continue
            if succeeded:
                future.set_result(value)
            else:
                future.set_exception(value)


_WORKERS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, LoopWorker] = weakref.WeakKeyDictionary()


def _loop_worker() -> LoopWorker:
    loop = asyncio.get_running_loop()
    worker = _WORKERS.get(loop)
    if worker is None:
        worker = _WORKERS[loop] = LoopWorker(loop)
    return worker
