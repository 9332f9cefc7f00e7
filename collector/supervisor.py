"""``run --workers N``: N collector processes on one host sharing the receiver ports, kept alive by a supervisor.

Each worker is a whole collector (receivers, pipelines, exporters) bound with SO_REUSEPORT, so the kernel
spreads connections across them; they share the ledger in PostgreSQL. The supervisor restarts a worker
that dies (backoff 1 s doubling to 30 s), and on SIGTERM or SIGINT tells every worker to drain and waits.
A worker that fails before it has started (a port in use, a database that does not answer) stops them
all: restarting would fail the same way. A worker says it has started by writing to a pipe the
supervisor gave it (``--ready-fd``).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass

from collector import log

_LOG = log.get("supervisor")
HEALTHY_AFTER = 60.0  # a worker that lived this long restarts without backoff
MAX_BACKOFF = 30.0


@dataclass
class Worker:
    index: int
    process: subprocess.Popen | None = None
    ready_pipe: int | None = None  # read end: the worker writes one byte once it serves
    ready: bool = False
    restarts: int = 0  # a worker that fails before it serves stops the collector only at the first start
    started: float = 0.0
    backoff: float = 1.0
    restart_at: float | None = None


class Supervisor:
    def __init__(self, command: Sequence[str], workers: int, shutdown_timeout: float):
        self.command = list(command)  # the worker's command line; ``--worker <index>`` is appended
        self.workers = [Worker(index) for index in range(workers)]
        self.shutdown_timeout = shutdown_timeout
        self.stopping = False

    def _spawn(self, worker: Worker) -> None:
        read, write = os.pipe()
        os.set_blocking(read, False)
        worker.process = subprocess.Popen([*self.command, "--worker", str(worker.index), "--ready-fd", str(write)],
                                          pass_fds=(write,))
        os.close(write)
        worker.ready_pipe, worker.ready = read, False
        worker.started = time.monotonic()
        worker.restart_at = None
        _LOG.info("worker started", extra={"worker": worker.index, "pid": worker.process.pid})

    def _stop(self, signum: int, frame: object) -> None:
        self.stopping = True

    def run(self) -> int:
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, self._stop)
        for worker in self.workers:
            self._spawn(worker)
        while not self.stopping:
            failed = self._watch()
            if failed is not None:
                self._drain()
                return failed
            time.sleep(0.2)
        return self._drain()

    def _watch(self) -> int | None:
        """Restart the workers that died; the exit code to stop with when one failed at startup."""
        now = time.monotonic()
        for worker in self.workers:
            if worker.restart_at is not None:
                if now >= worker.restart_at:
                    self._spawn(worker)
                continue
            code = worker.process.poll()
            self._check_ready(worker, exited=code is not None)
            if code is None:
                continue
            if not worker.ready and worker.restarts == 0:
                _LOG.error("worker failed to start: stopping", extra={"worker": worker.index, "exit_code": code})
                return code or 1
            worker.restarts += 1
            lived = now - worker.started
            worker.backoff = 1.0 if lived >= HEALTHY_AFTER else min(worker.backoff * 2, MAX_BACKOFF)
            worker.restart_at = now + (0 if lived >= HEALTHY_AFTER else worker.backoff)
            _LOG.warning("worker exited: restarting", extra={"worker": worker.index, "exit_code": code,
                                                             "lived_s": round(lived, 1),
                                                             "restart_in_s": worker.restart_at - now})
        return None

    @staticmethod
    def _check_ready(worker: Worker, exited: bool) -> None:
        """Read the worker's ready byte; the pipe is closed once it came, or once the worker exited."""
        if worker.ready_pipe is None:
            return
        with contextlib.suppress(BlockingIOError):
            worker.ready = worker.ready or os.read(worker.ready_pipe, 1) == b"1"
        if worker.ready or exited:
            os.close(worker.ready_pipe)
            worker.ready_pipe = None

    def _drain(self) -> int:
        """SIGTERM to every worker, then wait for them to drain (SIGKILL past the shutdown timeout)."""
        running = [w.process for w in self.workers if w.process is not None and w.process.poll() is None]
        _LOG.info("stopping workers", extra={"workers": len(running)})
        for process in running:
            process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + self.shutdown_timeout + 5
        for process in running:
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                _LOG.error("worker did not stop in time: killed", extra={"pid": process.pid})
                process.kill()
                process.wait()
        return 0


def worker_command(argv: Sequence[str]) -> list[str]:
    """This process's ``run`` command line, as each worker runs it."""
    return [sys.executable, "-m", "collector", *argv]
