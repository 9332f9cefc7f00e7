"""The ledger store: the one interface the exporters, processors, API and CLI use; only stores speak SQL.

Two backends implement it: :class:`collector.storage.ledger.Ledger` (a DuckDB file, one process) and
:class:`collector.storage.postgresql.PostgresLedger` (a PostgreSQL database that any number of collector
processes share). A write is one transaction (:meth:`LedgerStore.write`): the calls not already in the
ledger are inserted, and in the same transaction the budget counters move for those rows only.
"""

from __future__ import annotations

import contextlib
import datetime as dt
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import pyarrow as pa

from collector import log
from collector.storage.budget_tables import BudgetTables
from collector.storage.dialect import SqlDialect
from collector.storage.queries import LedgerQueries

_LOG = log.get("ledger")


class WriteTxn(ABC):
    """One write transaction: calls appended, budget state moved, and what to do once it has committed."""

    budgets: BudgetTables

    def __init__(self) -> None:
        self.after_commit: list[Callable[[], None]] = []

    @abstractmethod
    def append(self, calls: pa.Table) -> list[int]:
        """Insert the calls not already in the ledger (``calls`` has the columns of ``rows.CallColumns``);
        returns the positions, in ``calls``, of the rows inserted."""

    def committed(self) -> None:
        """Run what was to happen once the transaction committed; a failure there is logged, the write stands."""
        for action in self.after_commit:
            try:
                action()
            except Exception:
                _LOG.exception("after-commit action failed")


class LedgerStore(ABC):
    backend: str  # duckdb | postgresql
    shared: bool  # other processes write to it too: budget state is read back for every batch
    commits = 0  # write transactions this process committed (on a DuckDB file: through any store open on it)
    dialect: SqlDialect
    dimensions: tuple[str, ...]

    @abstractmethod
    def write(self) -> contextlib.AbstractContextManager[WriteTxn]:
        """A write transaction on the writer's connection; committed when the block ends, rolled back (and
        a LedgerError raised) on an error."""

    @abstractmethod
    def reading(self) -> contextlib.AbstractContextManager[Any]:
        """A connection for reads, usable from any thread for the duration of the block."""

    @abstractmethod
    def roll_up(self) -> int:
        """Bring the rollups up to date; returns the calls rolled up."""

    @abstractmethod
    def prune(self, older_than: dt.datetime, tables: Iterable[str] = ("llm_calls",)) -> dict[str, int]:
        """Delete the calls (and listed rollups) of the whole UTC days before ``older_than``'s day."""

    @abstractmethod
    def diagnostics(self, statuses: list) -> dict[str, Any]:
        """What ``doctor`` checks in the ledger: ``{"ledger": ..., "budgets": ...}``."""

    @abstractmethod
    def close(self) -> None: ...

    def append(self, calls: pa.Table) -> list[int]:
        """Add the calls not already in the ledger, in a transaction of their own (see WriteTxn.append)."""
        with self.write() as txn:
            return txn.append(calls)

    @contextlib.contextmanager
    def queries(self) -> Iterator[LedgerQueries]:
        with self.reading() as con:
            yield LedgerQueries(con, self.dimensions, dialect=self.dialect)

    @contextlib.contextmanager
    def budget_tables(self) -> Iterator[BudgetTables]:
        """The budget tables on a reading connection, in one transaction (changes commit at the end)."""
        with self.reading() as con:
            yield BudgetTables(con, self.dialect)

    def __enter__(self) -> LedgerStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
