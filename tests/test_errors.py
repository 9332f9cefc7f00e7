"""One exception hierarchy (collector.errors), mapped explicitly to HTTP statuses and exit codes."""

from __future__ import annotations

import asyncio

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from collector.api.server import json_errors
from collector.cli import main
from collector.errors import BudgetError, Conflict, LedgerError, NotFound, QueryError, ReadOnly


def serve(error: Exception) -> tuple[int, dict]:
    async def handler(request: web.Request) -> web.Response:
        raise error

    async def ask() -> tuple[int, dict]:
        app = web.Application(middlewares=[json_errors])
        app.router.add_get("/api/v1/thing", handler)
        async with TestClient(TestServer(app)) as client:
            reply = await client.get("/api/v1/thing")
            return reply.status, await reply.json() if reply.content_type == "application/json" else {}
    return asyncio.run(ask())


@pytest.mark.parametrize(("error", "status", "code"), [
    (QueryError("top", "'x' is not a positive integer"), 400, "bad_parameter"),
    (BudgetError("limit", "must be a positive amount in the cost currency"), 400, "invalid_budget"),
    (ReadOnly("budget a is defined in the config file: change it there"), 403, "read_only"),
    (NotFound("no budget 'a'"), 404, "not_found"),
    (Conflict("budget a exists"), 409, "exists"),
    (LedgerError("the ledger is not open"), 503, "ledger_unavailable"),
])
def test_each_error_has_its_status_and_code(error, status, code):
    answered, body = serve(error)
    assert answered == status and body == {"error": {"code": code, "message": str(error)}}


def test_a_stray_built_in_exception_is_a_server_error_not_a_404():
    assert serve(KeyError("budget"))[0] == 500


def test_the_cli_prints_a_collector_error_and_exits_with_its_code(tmp_path, capsys):
    missing = tmp_path / "none.duckdb"
    assert main(["report", "--db", str(missing)]) == LedgerError.exit_code
    assert capsys.readouterr().err == f"error: {missing}: no such ledger file\n"
