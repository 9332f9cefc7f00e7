"""An on-disk sending queue: SQLite in WAL mode, one row per batch, deleted when the backend confirms it.

A batch is written (and committed) before the request that carried it is acknowledged, so a crash
loses nothing acknowledged: after a restart the exporter sends what is still in the file. A batch
whose send was interrupted by the crash is sent again (at-least-once towards the backend; OTLP
backends keep spans by id). ``synchronous=NORMAL`` in WAL mode survives a killed process; after a
power loss the last commits may be missing.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from collector.signals import Signal


class DiskQueue:
    """The pending batches of one exporter. Every database call runs on the queue's own thread."""

    def __init__(self, path: Path, max_bytes: int):
        self.path = path
        self.max_bytes = max_bytes
        self.bytes = 0
        self.count = 0
        self.in_flight: set[int] = set()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"disk-queue-{path.stem}")
        self._local = threading.local()
        self.ready = asyncio.Event()

    def _db(self) -> sqlite3.Connection:
        connection = getattr(self._local, "connection", None)
        if connection is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            connection = sqlite3.connect(self.path, isolation_level=None)
            connection.execute("PRAGMA journal_mode=WAL")
            connection.execute("PRAGMA synchronous=NORMAL")
            connection.execute("CREATE TABLE IF NOT EXISTS batches (id INTEGER PRIMARY KEY AUTOINCREMENT, "
                               "signal TEXT NOT NULL, body BLOB NOT NULL)")
            self._local.connection = connection
        return connection

    async def _run(self, function, *args):
        return await asyncio.get_running_loop().run_in_executor(self._executor, function, *args)

    async def open(self) -> None:
        def load() -> tuple[int, int]:
            return self._db().execute("SELECT count(*), coalesce(sum(length(body)), 0) FROM batches").fetchone()
        self.count, self.bytes = await self._run(load)
        if self.count:
            self.ready.set()

    def has_room(self, size: int) -> bool:
        return self.bytes + size <= self.max_bytes

    async def put(self, signal: Signal, body: bytes) -> None:
        """Store a batch; returns once it is committed to the file."""
        def insert() -> None:
            self._db().execute("INSERT INTO batches (signal, body) VALUES (?, ?)", (signal.spec.name, body))
        await self._run(insert)
        self.bytes += len(body)
        self.count += 1
        self.ready.set()

    async def take(self) -> tuple[int, Signal, bytes]:
        """The oldest batch no consumer is sending; waits for one."""
        while True:
            self.ready.clear()  # before looking: a put from now on wakes us again
            row = await self._run(self._oldest, tuple(self.in_flight) or (-1,))
            if row is not None and row[0] not in self.in_flight:
                self.in_flight.add(row[0])
                self.ready.set()  # there may be more for the other consumers
                return row[0], Signal.from_name(row[1]), row[2]
            await self.ready.wait()

    def _oldest(self, excluded: tuple[int, ...]) -> tuple | None:
        marks = ",".join("?" * len(excluded))
        return self._db().execute(f"SELECT id, signal, body FROM batches WHERE id NOT IN ({marks}) "
                                  "ORDER BY id LIMIT 1", excluded).fetchone()

    async def done(self, item_id: int, size: int) -> None:
        """The backend has the batch (or refused it for good): forget it."""
        def delete() -> None:
            self._db().execute("DELETE FROM batches WHERE id = ?", (item_id,))
        await self._run(delete)
        self.in_flight.discard(item_id)
        self.bytes -= size
        self.count -= 1

    def release(self, item_id: int) -> None:
        """A send was interrupted (shutdown): the batch stays queued for the next start."""
        self.in_flight.discard(item_id)

    async def close(self) -> None:
        def close_db() -> None:
            connection = getattr(self._local, "connection", None)
            if connection is not None:
                connection.close()
        await self._run(close_db)
        self._executor.shutdown(wait=True)
