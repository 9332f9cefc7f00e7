"""The errors a user gets to see, in one hierarchy, each with its HTTP status, API error code and exit code.

::

    CollectorError
    ├── ConfigError        a config file is wrong (file:line: key: problem)         exit 1
    ├── StartupError       a component cannot start (a port in use)                 exit 1
    ├── LedgerError        the ledger cannot be used (locked, newer schema)         503, exit 1
    ├── CommandError       a command cannot do what was asked                       exit 1
    └── RequestError       an API request cannot be served as asked
        ├── InvalidRequest     400  (QueryError: bad_parameter, a bad CLI argument: exit 2;
        │                            BudgetError: invalid_budget)
        ├── ReadOnly           403  read_only
        ├── NotFound           404  not_found
        └── Conflict           409  exists

The API answers any of them as ``{"error": {"code", "message"}}`` with its status, and the CLI prints
``error: <message>`` and exits with its code; anything else is a bug, never mistaken for one of them.
"""

from __future__ import annotations

from typing import ClassVar


class CollectorError(Exception):
    http_status: ClassVar[int] = 500
    code: ClassVar[str] = "internal"
    exit_code: ClassVar[int] = 1


class ConfigError(CollectorError):
    """A configuration problem, located in its source file."""

    def __init__(self, message: str, *, source: str = "", line: int | None = None, key: str = "",
                 hint: str = ""):
        self.message, self.source, self.line, self.key, self.hint = message, source, line, key, hint
        super().__init__(str(self))

    def __str__(self) -> str:
        where = self.source + (f":{self.line}" if self.line else "")
        text = f"{where}: " if where else ""
        text += f"{self.key}: " if self.key else ""
        text += self.message
        return text + (f"\n  hint: {self.hint}" if self.hint else "")


class StartupError(CollectorError):
    """The collector cannot start (a port in use, a file it cannot open)."""


class LedgerError(CollectorError):
    """The ledger file cannot be used (locked by another process, newer schema, unreadable)."""

    http_status = 503
    code = "ledger_unavailable"


class CommandError(CollectorError):
    """A command cannot do what was asked; the message says why."""


class RequestError(CollectorError):
    """An API request that cannot be served as asked."""


class InvalidRequest(RequestError, ValueError):
    http_status = 400
    code = "bad_request"


class ReadOnly(RequestError):
    http_status = 403
    code = "read_only"


class NotFound(RequestError):
    http_status = 404
    code = "not_found"


class Conflict(RequestError):
    http_status = 409
    code = "exists"


class QueryError(InvalidRequest):
    """A bad query parameter or command-line argument; ``parameter`` names it."""

    code = "bad_parameter"
    exit_code = 2  # as argparse's usage errors

    def __init__(self, parameter: str, message: str):
        super().__init__(f"{parameter}: {message}")
        self.parameter = parameter
        self.message = message


class BudgetError(InvalidRequest):
    """A budget definition is wrong; ``key`` names the field."""

    code = "invalid_budget"

    def __init__(self, key: str, message: str):
        super().__init__(f"{key}: {message}" if key else message)
        self.key = key
        self.message = message
