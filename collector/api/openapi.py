"""The OpenAPI document of the cost API, served at /api/v1/openapi.json."""

from __future__ import annotations

from collector import __version__

_TIME = {"type": "string", "description": "2026-01-31, 2026-01-31T12:00:00Z, now, or a duration ago (24h, 7d)"}
_FILTER = {"name": "filter", "in": "query", "style": "deepObject", "explode": True,
           "schema": {"type": "object", "additionalProperties": {"type": "string"}},
           "description": "exact match on a dimension: filter[customer]=acme&filter[model]=gpt-4o"}
_ERROR = {"description": "a bad parameter: which one and why",
          "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}


def _param(name: str, schema: dict, description: str = "") -> dict:
    return {"name": name, "in": "query", "schema": schema, "description": description}


def document() -> dict:
    return {
        "openapi": "3.0.3",
        "info": {"title": "GenAI Cost Collector API", "version": __version__,
                 "description": "Spend per model, customer, feature and team, from the collector's cost ledger. "
                                "Money is a decimal string in the ledger currency."},
        "paths": {
            "/api/v1/costs": {"get": {
                "summary": "Cost series and totals",
                "parameters": [_param("from", _TIME, "start (default: 30 days before to)"),
                               _param("to", _TIME, "end, exclusive (default: now)"),
                               _param("group_by", {"type": "string"},
                                      "comma list of provider, model, service, currency, customer, user, feature, "
                                      "team and declared dimensions"),
                               _param("granularity", {"type": "string", "enum": ["hour", "day", "month"]}),
                               _param("top", {"type": "integer", "minimum": 0},
                                      "the N most expensive groups (without granularity)"),
                               _FILTER],
                "responses": {"200": {"description": "series and totals",
                                      "content": {"application/json": {"schema": {"type": "object"}}}},
                              "400": _ERROR}}},
            "/api/v1/calls": {"get": {
                "summary": "Ledger rows, newest first, cursor-paginated",
                "parameters": [_param("from", _TIME), _param("to", _TIME),
                               _param("limit", {"type": "integer", "minimum": 1, "maximum": 1000}),
                               _param("cursor", {"type": "string"}, "next_cursor of the previous page"),
                               _param("order", {"type": "string", "enum": ["time", "cost"]},
                                      "time (newest first, paginated) or cost (most expensive first, one page)"),
                               _FILTER],
                "responses": {"200": {"description": "calls and next_cursor",
                                      "content": {"application/json": {"schema": {"type": "object"}}}},
                              "400": _ERROR}}},
            "/api/v1/calls/{trace_id}/{span_id}/cost": {"get": {
                "summary": "How a stored call's cost is made up, priced by the catalog at its start time",
                "parameters": [{"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
                               for name in ("trace_id", "span_id")],
                "responses": {"200": {"description": "the call, its explanation (lines, adjustment, rate, "
                                                     "total) and whether the ledger agrees"},
                              "404": _ERROR}}},
            "/api/v1/info": {"get": {
                "summary": "Version, the hot path (native or python), dimensions, the ledger backend, trace link "
                           "template, whether budgets are on, "
                           "the price snapshot and currency of genai_cost",
                "responses": {"200": {"description": "info",
                                      "content": {"application/json": {"schema": {"type": "object"}}}}}}},
            "/api/v1/budgets": {"get": {"summary": "Budgets with their spend, status and reset time",
                                        "responses": {"200": {"description": "budgets"}}},
                                "post": {"summary": "Create a budget (id, match, limit, period, thresholds, hard)",
                                         "responses": {"201": {"description": "created"}, "400": _ERROR,
                                                       "409": {"description": "exists"}}}},
            "/api/v1/budgets/{id}": {"parameters": [{"name": "id", "in": "path", "required": True,
                                                     "schema": {"type": "string"}}],
                                     "get": {"summary": "One budget", "responses": {"200": {"description": "ok"},
                                                                                     "404": _ERROR}},
                                     "put": {"summary": "Change an API budget",
                                             "responses": {"200": {"description": "ok"}, "400": _ERROR,
                                                           "403": _ERROR, "404": _ERROR}},
                                     "delete": {"summary": "Delete an API budget",
                                                "responses": {"204": {"description": "deleted"}, "403": _ERROR,
                                                              "404": _ERROR}}},
            "/api/v1/budgets/check": {"get": {
                "summary": "May the app make this call? 402 when a hard budget is or would be exceeded",
                "parameters": [_param("estimated_cost", {"type": "string"}, "the call's expected cost"),
                               {"name": "dimensions", "in": "query", "style": "form", "explode": True,
                                "schema": {"type": "object", "additionalProperties": {"type": "string"}},
                                "description": "customer=acme&model=gpt-5: the call's dimensions"}],
                "responses": {"200": {"description": "allowed"}, "402": {"description": "refused"},
                              "400": _ERROR}}},
            "/api/v1/budgets/reserve": {"post": {
                "summary": "Hold the call's estimated cost against the budgets it counts towards until its span "
                           "(carrying gen_ai.budget.reservation) is stored or the ttl passes; 402 as the check",
                "requestBody": {"required": True, "content": {"application/json": {"schema": {
                    "type": "object", "required": ["estimated_cost"],
                    "properties": {"estimated_cost": {"type": "string"},
                                   "ttl": {"type": "string", "description": "how long to hold (default 60s)"}},
                    "additionalProperties": {"type": "string", "description": "the call's dimensions"}}}}},
                "responses": {"200": {"description": "held: the reservation id"}, "402": {"description": "refused"},
                              "400": _ERROR}}},
            "/api/v1/budgets/reservations/{id}": {"delete": {
                "summary": "Release a reservation whose call was not made",
                "parameters": [{"name": "id", "in": "path", "required": True, "schema": {"type": "string"}}],
                "responses": {"204": {"description": "released"}, "404": _ERROR}}},
            "/api/v1/unpriced": {"get": {
                "summary": "Models seen without a price, with counts and last seen",
                "responses": {"200": {"description": "models",
                                      "content": {"application/json": {"schema": {"type": "object"}}}}}}},
        },
        "components": {"schemas": {"Error": {"type": "object", "properties": {"error": {
            "type": "object", "properties": {"code": {"type": "string"}, "message": {"type": "string"}}}}}}},
    }
