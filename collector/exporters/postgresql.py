"""``postgresql`` exporter: the cost ledger in a PostgreSQL database that every replica and worker shares.

::

    exporters:
      postgresql:
        dsn: ${env:GENAI_COLLECTOR_PG_DSN}   # postgresql://user:pass@host:5432/db?sslmode=verify-full
        pool_size: 4

Calls are written in bulk, one transaction per flush, and counted once however many replicas receive
them (:mod:`collector.storage.postgresql`). The writer thread, group commits and the durability
contract are :mod:`collector.exporters.ledger_writer`'s.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, Any

from collector.component import BuildContext
from collector.exporters.ledger_writer import LedgerExporter, Retention
from collector.schema import AtLeast, Duration, Invalid, MinLength
from collector.storage.postgresql import PostgresLedger, where


@dataclass(frozen=True)
class CallRetention:
    calls: Retention = None  # forever: reports sum the calls, so a deleted day is gone from them

    def tables(self) -> dict[str, float | None]:
        return {"llm_calls": self.calls}


@dataclass(frozen=True)
class PostgresConfig:
    dsn: Annotated[str, MinLength(1)]  # libpq URI or key=value string; TLS with sslmode=verify-full
    pool_size: Annotated[int, AtLeast(2)] = 4  # connections: the writer, the budget reads and the API share them
    connect_timeout: Duration = 10.0
    flush_interval: Duration = 0.1  # the longest a call waits for company before its transaction
    min_rows: Annotated[int, AtLeast(1)] = 1_000  # this many waiting are written at once
    max_rows: Annotated[int, AtLeast(1)] = 50_000  # per transaction
    retention: CallRetention = field(default_factory=CallRetention)

    def check(self) -> None:
        if "://" not in self.dsn and "=" not in self.dsn:
            raise Invalid("dsn", "not a PostgreSQL connection string",
                          "postgresql://user:password@host:5432/dbname or 'host=... dbname=...'")


class PostgresExporter(LedgerExporter):
    config_class = PostgresConfig

    def __init__(self, config: PostgresConfig, context: BuildContext):
        super().__init__(config, context)
        self.dsn = config.dsn
        self.pool_size = config.pool_size
        self.connect_timeout = config.connect_timeout

    def open_store(self) -> PostgresLedger:
        return PostgresLedger.open(self.dsn, self.dimensions, self.pool_size, self.connect_timeout)

    def where(self) -> dict[str, Any]:
        return {"postgresql": where(self.dsn)}
