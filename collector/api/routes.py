"""HTTP handlers of the cost API: parameters in, JSON out, errors as ``{"error": {"code", "message"}}``."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from collector.errors import QueryError
from collector.storage.queries import CostQuery, LedgerQueries, parse_time, utcnow

Handler = Callable[[web.Request], Awaitable[web.Response]]


def json_response(body: Any, status: int = 200) -> web.Response:
    return web.Response(status=status, text=json.dumps(body, indent=None), content_type="application/json")


def error_response(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> web.Response:
    response = json_response({"error": {"code": code, "message": message}}, status)
    response.headers.update(headers or {})
    return response


class Params:
    """Query parameters of one request; anything not read is reported as unknown."""

    def __init__(self, request: web.Request, allowed: tuple[str, ...]):
        self.query = request.query
        self.filters = {key[7:-1]: value for key, value in self.query.items()
                        if key.startswith("filter[") and key.endswith("]")}
        for key in self.query:
            if key not in allowed and not (key.startswith("filter[") and key.endswith("]")):
                raise QueryError(key, f"unknown parameter; this endpoint takes {', '.join(allowed)}, filter[...]")

    def get(self, name: str) -> str | None:
        return self.query.get(name)

    def time_range(self, default_days: int) -> tuple[dt.datetime, dt.datetime]:
        now = utcnow()
        end = parse_time("to", self.get("to"), now + dt.timedelta(seconds=1), now)
        start = parse_time("from", self.get("from"), end - dt.timedelta(days=default_days), now)
        return start, end

    def integer(self, name: str, default: int | None) -> int | None:
        text = self.get(name)
        if text is None:
            return default
        if not text.isdigit():
            raise QueryError(name, f"{text!r} is not a positive integer")
        return int(text)

    def names(self, name: str) -> list[str]:
        text = self.get(name) or ""
        return [part.strip() for part in text.split(",") if part.strip()]


class CostRoutes:
    """The /api/v1 endpoints over one ledger; queries run on worker threads with their own cursor."""

    def __init__(self, connect: Callable[[], contextlib.AbstractContextManager[LedgerQueries]]):
        self.connect = connect

    def add_to(self, app: web.Application) -> None:
        app.router.add_get("/api/v1/costs", self._wrap(self.costs))
        app.router.add_get("/api/v1/calls", self._wrap(self.calls))
        app.router.add_get("/api/v1/unpriced", self._wrap(self.unpriced))

    @staticmethod
    def _wrap(handler: Callable[[web.Request], Any]) -> Handler:
        async def wrapped(request: web.Request) -> web.Response:
            return json_response(await handler(request))
        return wrapped

    async def _query(self, method: str, *args: Any) -> Any:
        def run() -> Any:
            with self.connect() as queries:
                return getattr(queries, method)(*args)
        return await asyncio.to_thread(run)

    async def costs(self, request: web.Request) -> Any:
        params = Params(request, ("from", "to", "group_by", "granularity", "top"))
        start, end = params.time_range(default_days=30)
        query = CostQuery(start, end, params.names("group_by"), params.get("granularity"), params.filters,
                          params.integer("top", None))
        return await self._query("costs", query)

    async def calls(self, request: web.Request) -> Any:
        params = Params(request, ("from", "to", "limit", "cursor", "order"))
        start, end = params.time_range(default_days=3650)
        return await self._query("calls", start, end, params.filters, params.integer("limit", 100),
                                 params.get("cursor"), params.get("order") or "time")

    async def unpriced(self, request: web.Request) -> Any:
        Params(request, ())
        return await self._query("unpriced")
