"""/api/v1/budgets: list, create, change, delete budgets, and what apps call around an LLM call.

The collector sees a call after it happened, so it cannot stop one. An app that must not overspend
asks before each call: ``GET /api/v1/budgets/check`` (calls in flight between two checks can overshoot
a hard budget by what they cost), or ``POST /api/v1/budgets/reserve``, which holds the estimated cost
until the call's span arrives, so concurrent callers never pass the limit together.
"""

from __future__ import annotations

import asyncio
import json
from decimal import Decimal, InvalidOperation
from typing import Any

from aiohttp import web

from collector.api.routes import json_response
from collector.config import parse_duration
from collector.errors import InvalidRequest, QueryError
from pricing_catalog.compiled import to_pico
from processors.budgets import Status
from processors.genai_budget import GenAIBudget


class BudgetRoutes:
    def __init__(self, processor: GenAIBudget):
        self.processor = processor

    def add_to(self, app: web.Application) -> None:
        app.router.add_get("/api/v1/budgets", self.list)
        app.router.add_post("/api/v1/budgets", self.create)
        app.router.add_get("/api/v1/budgets/check", self.check)
        app.router.add_post("/api/v1/budgets/reserve", self.reserve)
        app.router.add_delete("/api/v1/budgets/reservations/{id}", self.release)
        app.router.add_get("/api/v1/budgets/{id}", self.get)
        app.router.add_put("/api/v1/budgets/{id}", self.update)
        app.router.add_delete("/api/v1/budgets/{id}", self.delete)

    async def list(self, request: web.Request) -> web.Response:
        statuses = await asyncio.to_thread(self.processor.statuses)
        return json_response({"budgets": [s.as_dict() for s in statuses]})

    async def get(self, request: web.Request) -> web.Response:
        status = await asyncio.to_thread(self.processor.status, request.match_info["id"])
        return json_response(status.as_dict())

    async def create(self, request: web.Request) -> web.Response:
        return await self._save(request, None)

    async def update(self, request: web.Request) -> web.Response:
        return await self._save(request, request.match_info["id"])

    async def _save(self, request: web.Request, replace: str | None) -> web.Response:
        data = await _json_body(request)
        if replace is not None and isinstance(data, dict):
            data.setdefault("id", replace)
        budget = await asyncio.to_thread(self.processor.save, data, replace)
        status = await asyncio.to_thread(self.processor.status, budget.id)
        return json_response(status.as_dict(), 200 if replace else 201)

    async def delete(self, request: web.Request) -> web.Response:
        await asyncio.to_thread(self.processor.delete, request.match_info["id"])
        return web.Response(status=204)

    def _call(self, params: Any, extra: tuple[str, ...] = ()) -> tuple[dict[str, str], int]:
        """The dimension values and estimated cost (pico-units) of the call an app is about to make."""
        values: dict[str, str] = {}
        estimate = 0
        for key, value in params.items():
            if key == "estimated_cost":
                try:
                    amount = Decimal(str(value))
                except InvalidOperation:
                    amount = Decimal(-1)
                if not amount.is_finite() or amount < 0:
                    raise QueryError("estimated_cost", f"{value!r} is not an amount >= 0")
                estimate = to_pico(amount)
            elif key in self.processor.match_keys:
                values[key] = str(value)
            elif key not in extra:
                known = ", ".join(("estimated_cost", *extra, *self.processor.match_keys))
                raise QueryError(key, f"unknown parameter; use {known}")
        return values, estimate

    async def check(self, request: web.Request) -> web.Response:
        """200 {"allowed": true, ...}, or 402 for the first hard budget that is, or would be, exceeded."""
        values, estimate = self._call(request.query)
        applying = [status for status in await asyncio.to_thread(self.processor.statuses)
                    if all(key in values for key, _ in status.budget.match) and status.budget.matches(values)]
        for status in sorted(applying, key=lambda s: -s.utilization):
            if status.refuses(estimate):
                return _refused(status, applying)
        return json_response({"allowed": True, "budgets": [s.as_dict() for s in applying]})

    async def reserve(self, request: web.Request) -> web.Response:
        """Hold an estimated cost against the budgets a call would count towards: 200 with the reservation id
        (put it on the call's span as gen_ai.budget.reservation), or 402 as the check answers."""
        body = await _json_body(request)
        if not isinstance(body, dict):
            raise QueryError("body", "a JSON object: {\"estimated_cost\": \"0.002\", \"customer\": \"acme\", ...}")
        values, estimate = self._call(body, ("ttl",))
        try:
            ttl = parse_duration(body.get("ttl", "60s"))
        except ValueError as exc:
            raise QueryError("ttl", str(exc)) from None
        if not 0 < ttl <= 86400:
            raise QueryError("ttl", "between 1s and 24h")
        reservation, statuses = await asyncio.to_thread(self.processor.reserve, values, estimate, ttl)
        if reservation is None:
            return _refused(statuses[0], statuses)
        return json_response({"allowed": True, "reservation": reservation, "ttl": ttl,
                              "budgets": [s.as_dict() for s in statuses]})

    async def release(self, request: web.Request) -> web.Response:
        await asyncio.to_thread(self.processor.release, request.match_info["id"])
        return web.Response(status=204)


class BadJson(InvalidRequest):
    code = "bad_json"


async def _json_body(request: web.Request) -> Any:
    try:
        return json.loads(await request.read())
    except ValueError as exc:
        raise BadJson(f"the body is not JSON: {exc}") from None


def _refused(status: Status, applying: list[Status]) -> web.Response:
    body = status.as_dict()
    return json_response({"allowed": False, "budget": status.budget.id, "spent": body["spent"],
                          "reserved": body["reserved"], "limit": body["limit"], "resets_at": body["resets_at"],
                          "budgets": [s.as_dict() for s in applying]}, 402)
