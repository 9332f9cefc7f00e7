"""``duckdb`` exporter: the cost ledger in an embedded DuckDB file (the default; one process writes it).

The writer thread, group commits and the durability contract are :mod:`collector.exporters.ledger_writer`'s.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import duckdb

from collector.component import BuildContext
from collector.errors import LedgerError
from collector.exporters.ledger_writer import LedgerExporter, RetentionConfig
from collector.schema import AtLeast, Duration
from collector.storage.ledger import Ledger


@dataclass(frozen=True)
class DuckDBConfig:
    path: str = "data/costs.duckdb"  # relative to the working directory
    flush_interval: Duration = 0.1  # the longest a call waits for company before its transaction
    min_rows: Annotated[int, AtLeast(1)] = 1_000  # this many waiting are written at once
    max_rows: Annotated[int, AtLeast(1)] = 50_000  # per transaction
    retention: RetentionConfig = field(default_factory=RetentionConfig)
    threads: Annotated[int, AtLeast(1)] = 1  # DuckDB worker threads: the pipeline needs the other cores


class DuckDBExporter(LedgerExporter):
    config_class = DuckDBConfig

    def __init__(self, config: DuckDBConfig, context: BuildContext):
        super().__init__(config, context)
        self.path = Path(config.path).expanduser()
        self.threads = config.threads

    def open_store(self) -> Ledger:
        try:
            return Ledger.open(self.path, self.dimensions, threads=self.threads)
        except duckdb.Error as exc:
            raise LedgerError(f"cannot open {self.path}: {exc}") from None

    def where(self) -> dict[str, Any]:
        return {"path": str(self.path)}
