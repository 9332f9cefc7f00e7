"""/api/v1/budgets: list, create, change, delete budgets, and the pre-call check apps can make.

The collector sees a call after it happened, so it cannot stop one. An app that must not overspend
asks ``GET /api/v1/budgets/check`` before each call and skips the call on 402; calls in flight
between two checks can overshoot a hard budget by what they cost.
"""

from __future__ import annotations

import asyncio
import json
from decimal import Decimal, InvalidOperation
from typing import Any

from aiohttp import web

from collector.api.routes import error_response, json_response
from collector.errors import QueryError
from pricing_catalog.compiled import to_pico
from processors.genai_budget import GenAIBudget


class BudgetRoutes:
    def __init__(self, processor: GenAIBudget):
        self.processor = processor

    def add_to(self, app: web.Application) -> None:
        app.router.add_get("/api/v1/budgets", self.list)
        app.router.add_post("/api/v1/budgets", self.create)
        app.router.add_get("/api/v1/budgets/check", self.check)
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
        try:
            data = json.loads(await request.read())
        except ValueError as exc:
            return error_response(400, "bad_json", f"the body is not JSON: {exc}")
        if replace is not None and isinstance(data, dict):
            data.setdefault("id", replace)
        budget = await asyncio.to_thread(self.processor.save, data, replace)
        status = await asyncio.to_thread(self.processor.status, budget.id)
        return json_response(status.as_dict(), 200 if replace else 201)

    async def delete(self, request: web.Request) -> web.Response:
        await asyncio.to_thread(self.processor.delete, request.match_info["id"])
        return web.Response(status=204)

    async def check(self, request: web.Request) -> web.Response:
        """200 {"allowed": true, ...}, or 402 for the first hard budget that is, or would be, exceeded."""
        values: dict[str, Any] = {}
        estimate = 0
        for key, value in request.query.items():
            if key == "estimated_cost":
                try:
                    amount = Decimal(value)
                except InvalidOperation:
                    amount = Decimal(-1)
                if not amount.is_finite() or amount < 0:
                    raise QueryError("estimated_cost", f"{value!r} is not an amount >= 0")
                estimate = to_pico(amount)
            elif key in self.processor.match_keys:
                values[key] = value
            else:
                raise QueryError(key, f"unknown parameter; use estimated_cost and "
                                      f"{', '.join(self.processor.match_keys)}")
        applying = [status for status in await asyncio.to_thread(self.processor.statuses)
                    if all(key in values for key, _ in status.budget.match) and status.budget.matches(values)]
        for status in sorted(applying, key=lambda s: -s.utilization):
            if (status.budget.hard and status.spent_pico + estimate > status.budget.limit_pico) \
                    or (status.budget.hard and status.spent_pico >= status.budget.limit_pico):
                body = status.as_dict()
                return json_response({"allowed": False, "budget": status.budget.id, "spent": body["spent"],
                                      "limit": body["limit"], "resets_at": body["resets_at"],
                                      "budgets": [s.as_dict() for s in applying]}, 402)
        return json_response({"allowed": True, "budgets": [s.as_dict() for s in applying]})
