"""Where a budget alert goes: a structured log line, an OTLP log record, and a signed webhook."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time
from typing import Any

import aiohttp
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.logs.v1 import logs_pb2

from collector import __version__, attributes, log

_LOG = log.get("processor.genai_budget")
SIGNATURE_HEADER = "X-Signature-SHA256"


def sign(secret: str, body: bytes) -> str:
    """Hex HMAC-SHA256 of the request body, the value of ``X-Signature-SHA256``."""
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def log_record(payload: dict[str, Any]) -> ExportLogsServiceRequest:
    """The alert as an OTLP log record, for the logs pipeline (it reaches the backend beside the traces)."""
    request = ExportLogsServiceRequest()
    resource_logs = request.resource_logs.add()
    attributes.add_to(resource_logs.resource.attributes, "service.name", "genai-cost-collector")
    scope_logs = resource_logs.scope_logs.add()
    scope_logs.scope.name, scope_logs.scope.version = "genai-cost-collector.budgets", __version__
    record = scope_logs.log_records.add(time_unix_nano=time.time_ns(), observed_time_unix_nano=time.time_ns())
    exceeded = payload["threshold"] >= 1
    record.severity_number = logs_pb2.SEVERITY_NUMBER_ERROR if exceeded else logs_pb2.SEVERITY_NUMBER_WARN
    record.severity_text = "ERROR" if exceeded else "WARN"
    record.body.string_value = (f"budget {payload['budget']} crossed {payload['threshold']:.0%} of its "
                                f"{payload['period']} limit: {payload['spent']} of {payload['limit']}")
    record.event_name = "gen_ai.budget.threshold_crossed"
    for key, value in (("gen_ai.budget.id", payload["budget"]), ("gen_ai.budget.threshold", payload["threshold"]),
                       ("gen_ai.budget.period", payload["period"]), ("gen_ai.budget.spent", float(payload["spent"])),
                       ("gen_ai.budget.limit", float(payload["limit"])),
                       ("gen_ai.budget.period_start", payload["period_start"])):
        attributes.add_to(record.attributes, key, value)
    return request


class Webhook:
    """POSTs alerts as signed JSON, retrying with backoff; never holds up the pipeline."""

    def __init__(self, url: str, secret: str, timeout: float = 5.0, attempts: int = 5, backoff: float = 1.0):
        self.url, self.secret, self.timeout, self.attempts, self.backoff = url, secret, timeout, attempts, backoff
        self.failures = 0

    async def deliver(self, payload: dict[str, Any]) -> bool:
        body = json.dumps(payload, sort_keys=True).encode()
        headers = {"Content-Type": "application/json", "User-Agent": f"genai-cost-collector/{__version__}"}
        if self.secret:
            headers[SIGNATURE_HEADER] = sign(self.secret, body)
        delay = self.backoff
        for attempt in range(1, self.attempts + 1):
            try:
                async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.timeout)) as session, \
                        session.post(self.url, data=body, headers=headers) as reply:
                    status = reply.status
                if 200 <= status < 300:
                    _LOG.info("alert webhook delivered", extra={"budget": payload["budget"], "attempt": attempt,
                                                                "status": status})
                    return True
                error = f"HTTP {status}"
            except (aiohttp.ClientError, TimeoutError, OSError) as exc:
                error = f"{type(exc).__name__}: {exc}"
            _LOG.warning("alert webhook failed", extra={"budget": payload["budget"], "attempt": attempt,
                                                        "error": error, "retry_in_s": delay
                                                        if attempt < self.attempts else None})
            if attempt < self.attempts:
                await asyncio.sleep(delay)
                delay *= 2
        self.failures += 1
        _LOG.error("alert webhook gave up", extra={"budget": payload["budget"], "attempts": self.attempts})
        return False
