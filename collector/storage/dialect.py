"""Where the two ledger engines' SQL differs: parameter markers, glob matching and what a rollup table is.

Every query of :mod:`collector.storage.queries` and :mod:`collector.storage.diagnostics` is written once,
with ``?`` markers and the SQL both DuckDB and PostgreSQL speak; a dialect turns it into its engine's.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from collector.storage.rollups import rollup_source
from collector.storage.schema import ROLLUPS, rollup_select


def glob_regex(pattern: str) -> str:
    """A budget's glob (``*``, ``?``, ``[...]``, as fnmatch reads it) as an anchored POSIX regular expression."""
    out, index = ["^"], 0
    while index < len(pattern):
        char = pattern[index]
        index += 1
        if char == "*":
            out.append(".*")
        elif char == "?":
            out.append(".")
        elif char == "[":
            start = index + (1 if pattern[index:index + 1] == "!" else 0)
            end = pattern.find("]", start + 1)  # a ] right after [ or [! is part of the set
            if end < 0:
                out.append(re.escape(char))
                continue
            negate = "^" if start > index else ""
            out.append("[" + negate + pattern[start:end].replace("\\", "\\\\") + "]")
            index = end + 1
        else:
            out.append(re.escape(char))
    return "".join(out) + "$"


@dataclass(frozen=True)
class SqlDialect:
    name: str

    def sql(self, text: str) -> str:
        """``text`` with its ``?`` markers in this engine's form."""
        if self.name == "duckdb":
            return text
        return text.replace("%", "%%").replace("?", "%s")

    def glob(self, column: str, pattern: str) -> tuple[str, str]:
        """A condition that ``column`` matches the glob ``pattern``, and the parameter it takes."""
        if self.name == "duckdb":
            return f"{column} GLOB ?", pattern
        return f"{column} ~ ?", glob_regex(pattern)

    def rollup(self, table: str, keys: Sequence[str], lagging: bool = True) -> str:
        """What a rollup table (``cost_hourly``, ``cost_daily``) says, as rows of partial sums. DuckDB keeps the
        tables and adds the calls past the watermark; PostgreSQL sums the calls at read (its index on
        start_time makes that cheap), so every replica answers the same at once."""
        if self.name == "duckdb":
            return rollup_source(table, keys, lagging)
        return f"({rollup_select(ROLLUPS[table], keys)})"


DUCKDB = SqlDialect("duckdb")
POSTGRESQL = SqlDialect("postgresql")
