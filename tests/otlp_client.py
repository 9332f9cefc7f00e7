"""A minimal OTLP/HTTP JSON client, standard library only, so a test can start many client processes fast.

Run as a script it is one app spending on a budget: ``python tests/otlp_client.py spend <api> <otlp-http>
<customer> <mode> <first span id>``. In ``reserve`` mode each call is preceded by a reservation of its
cost (the span carries the reservation id); in ``check`` mode by a check. It stops at the first refusal
and prints how many calls it sent.
"""

from __future__ import annotations

import json
import sys
import time
import urllib.error
import urllib.request

GPT4O = {"gen_ai.provider.name": "openai", "gen_ai.operation.name": "chat", "gen_ai.request.model": "gpt-4o",
         "gen_ai.usage.input_tokens": 1000, "gen_ai.usage.output_tokens": 100}
GPT4O_COST = "0.0035"  # 1000 × $2.50 + 100 × $10 per MTok


def _value(value: object) -> dict:
    return {"intValue": str(value)} if isinstance(value, int) else {"stringValue": str(value)}


def request_body(span_id: int, tenant: str, trace_id: int = 1, **attributes: object) -> bytes:
    """One gpt-4o call of 0.0035 as an OTLP JSON traces request; the span's ids are given."""
    now = time.time_ns()
    span = {"traceId": f"{trace_id:032x}", "spanId": f"{span_id:016x}", "name": "chat gpt-4o", "kind": 3,
            "startTimeUnixNano": str(now), "endTimeUnixNano": str(now + 1_000_000),
            "attributes": [{"key": k, "value": _value(v)} for k, v in {**GPT4O, **attributes}.items()]}
    resource = {"attributes": [{"key": "service.name", "value": {"stringValue": "shop"}},
                               {"key": "tenant.id", "value": {"stringValue": tenant}}]}
    return json.dumps({"resourceSpans": [{"resource": resource,
                                          "scopeSpans": [{"scope": {"name": "tests"}, "spans": [span]}]}]}).encode()


def post(url: str, body: bytes, content_type: str = "application/json", timeout: float = 10) -> tuple[int, dict]:
    req = urllib.request.Request(url, data=body, method="POST", headers={"Content-Type": content_type})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as reply:
            raw = reply.read()
            return reply.status, json.loads(raw) if raw else {}
    except urllib.error.HTTPError as error:
        raw = error.read()
        return error.code, json.loads(raw) if raw.startswith(b"{") else {}


def get(url: str) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(url, timeout=10) as reply:
            return reply.status, json.loads(reply.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"{}")


def spend(api: str, otlp: str, customer: str, mode: str, first_span: int) -> int:
    sent = 0
    while True:
        extra = {}
        if mode == "reserve":
            status, body = post(f"{api}/api/v1/budgets/reserve",
                                json.dumps({"customer": customer, "estimated_cost": GPT4O_COST}).encode())
            if status == 402:
                return sent
            extra["gen_ai.budget.reservation"] = body["reservation"]
        else:
            status, _ = get(f"{api}/api/v1/budgets/check?customer={customer}&estimated_cost={GPT4O_COST}")
            if status == 402:
                return sent
        status, _ = post(f"{otlp}/v1/traces", request_body(first_span + sent, customer, **extra))
        assert status == 200, status
        sent += 1


if __name__ == "__main__" and sys.argv[1] == "spend":
    print(spend(sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5], int(sys.argv[6])))
