"""``genai_budget``: budget state on every billable span, threshold alerts, and the data behind the check API.

::

    genai_budget:
      timezone: Europe/Berlin
      budgets:
        - {id: acme-monthly, match: {customer: acme}, limit: 500, period: monthly,
           thresholds: [0.5, 0.8, 1.0], hard: true}
        - {id: gpt5-daily, match: {model: "gpt-5*"}, limit: 50, period: daily}
      alerts:
        webhook: {url: "${env:ALERT_URL}", secret: "${env:ALERT_SECRET}"}

Spend is what the ledger committed (the ``duckdb`` exporter must be in the pipeline): each commit
adds its new calls to the budgets they match, so retries and failed writes never count, and on
start the spend of the current periods is read back from the ledger. A threshold crossing raises
one alert per (budget, threshold, period) — a log line, an OTLP log record in the logs pipelines,
and the webhook — also across restarts (fired alerts are stored in the ledger).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from dataclasses import dataclass
from typing import Annotated, Any

from collector import attributes, log
from collector.attributes import value_of
from collector.batch import TelemetryBatch
from collector.component import BuildContext, Processor
from collector.errors import BudgetError, Conflict, NotFound, ReadOnly
from collector.schema import AtLeast, Duration, Invalid, Parse
from collector.signals import Signal
from collector.storage.ledger import Ledger
from collector.storage.rows import CallColumns
from pricing_catalog.compiled import to_double
from processors.budget_alerts import Webhook, log_record
from processors.budgets import (
    MATCH_KEYS_FIXED,
    Alert,
    Budget,
    BudgetLedger,
    parse_budget,
    spend_in_ledger,
    zone_named,
)

_LOG = log.get("processor.genai_budget")
PREFIX = "gen_ai.budget."
_SPENT, _REMAINING, _UTILIZATION, _STATUS = (PREFIX + name for name in ("spent", "remaining", "utilization", "status"))


def _timezone(name: Any) -> dt.tzinfo:
    try:
        return zone_named(str(name))
    except BudgetError as exc:
        raise Invalid((), exc.message) from None


def _budgets(items: Any) -> tuple[Budget, ...]:
    """The budget list of the config (match keys are checked against the dimensions in bind_service)."""
    if not isinstance(items, list):
        raise ValueError("a list of budgets, each with id, match, limit, period")
    budgets: list[Budget] = []
    for index, item in enumerate(items):
        try:
            budget = parse_budget(item, None)
        except BudgetError as exc:
            raise Invalid((index, *exc.key.split(".")) if exc.key else (index,), exc.message) from None
        if any(b.id == budget.id for b in budgets):
            raise Invalid((index, "id"), f"duplicate budget id {budget.id!r}")
        budgets.append(budget)
    return tuple(budgets)


@dataclass(frozen=True)
class WebhookConfig:
    url: str = ""  # none: no webhook
    secret: str = ""  # signs each body (HMAC-SHA256)
    timeout: Duration = 5.0
    attempts: Annotated[int, AtLeast(1)] = 5
    initial_interval: Duration = 1.0

    def check(self) -> None:
        if self.url and not self.url.startswith(("http://", "https://")):
            raise Invalid("url", f"{self.url!r} is not an http(s) URL")


@dataclass(frozen=True)
class AlertsConfig:
    webhook: WebhookConfig = WebhookConfig()


@dataclass(frozen=True)
class BudgetConfig:
    timezone: Annotated[dt.tzinfo, Parse(_timezone)] = dt.UTC  # calendar periods start at midnight here
    budgets: Annotated[tuple[Budget, ...], Parse(_budgets)] = ()
    alerts: AlertsConfig = AlertsConfig()


class GenAIBudget(Processor):
    signals = frozenset({Signal.TRACES})
    config_class = BudgetConfig
    reads_genai = True

    def __init__(self, config: BudgetConfig, context: BuildContext, clock=None):
        self.component_id = context.component_id
        self.telemetry = context.telemetry
        self.book = BudgetLedger(config.timezone, clock)
        self._fixed: dict[tuple, bytes] = {}  # encoded attributes that depend on the budgets only
        self.configured = config.budgets  # validated against the dimensions in bind_service
        hook = config.alerts.webhook
        self.webhook = Webhook(hook.url, hook.secret, hook.timeout, hook.attempts, hook.initial_interval) \
            if hook.url else None
        self.exporter = None
        self.service = None
        self.match_keys: tuple[str, ...] = MATCH_KEYS_FIXED
        self.loop: asyncio.AbstractEventLoop | None = None
        self.tasks: set[asyncio.Task] = set()

    def bind_service(self, service) -> None:
        from collector.exporters.duckdb import ledger_of
        self.exporter = ledger_of(service, f"processor {self.component_id}")
        self.exporter.listeners.append(self._on_commit)
        self.service = service
        self.match_keys = (*MATCH_KEYS_FIXED, *service.attribution_dimensions())
        for index, budget in enumerate(self.configured):
            for key, _ in budget.match:
                if key not in self.match_keys:
                    raise service.document.error(("processors", self.component_id, "budgets", index, "match", key),
                                                 "not a dimension", f"use {', '.join(self.match_keys)}")

    # state -----------------------------------------------------------------------------------------------

    async def start(self) -> None:
        self.loop = asyncio.get_running_loop()
        await asyncio.to_thread(self._load)

    def _load(self) -> None:
        """Budgets from the config and the API, with their current spend read from the ledger."""
        con = self.exporter.reader()
        try:
            stored = [parse_budget(json.loads(spec), self.match_keys, source="api")
                      for (spec,) in con.execute("SELECT spec FROM budgets ORDER BY id").fetchall()]
            for budget in [*self.configured, *stored]:
                self.book.set_budget(budget, self.ledger_spend(con, budget))
            for budget_id, period_start, threshold in con.execute(
                    "SELECT budget_id, period_start, threshold FROM budget_alerts").fetchall():
                self.book.fired.add((budget_id, period_start.astimezone(dt.UTC).isoformat(), threshold))
        finally:
            con.close()
        _LOG.info("budgets loaded", extra={"budgets": [s.as_dict() for s in self.book.statuses()]})

    def ledger_spend(self, con, budget: Budget) -> int:
        return spend_in_ledger(con, budget, self.book.clock(), self.book.zone)

    def _on_commit(self, ledger: Ledger, columns: CallColumns, added: list[int]) -> None:
        """Writer thread: the calls this commit added count towards the budgets they match."""
        data = columns.columns
        keys = [k for k in self.match_keys if k in data]
        calls = [(data["start_us"][i], data["cost_pico"][i] or 0, {k: data[k][i] for k in keys}) for i in added]
        alerts = self.book.record(calls)
        for alert in alerts:
            ledger.con.execute("INSERT OR IGNORE INTO budget_alerts VALUES (?, ?, ?, ?)",
                               [alert.budget.id, alert.period_start, alert.threshold, alert.at])
            if self.loop is not None:
                self.loop.call_soon_threadsafe(self._raise, alert)

    def _raise(self, alert: Alert) -> None:
        payload = alert.payload()
        _LOG.warning("budget threshold crossed", extra=payload)
        self.telemetry.add_labeled("budget_alerts", (("budget", alert.budget.id),
                                                     ("threshold", str(alert.threshold))))
        self._spawn(self.service.emit(TelemetryBatch(Signal.LOGS, log_record(payload))))
        if self.webhook is not None:
            self._spawn(self.webhook.deliver(payload))

    def _spawn(self, work) -> None:
        task = asyncio.ensure_future(work)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    # budgets through the API -----------------------------------------------------------------------------

    def save(self, data: dict[str, Any], replace: str | None = None) -> Budget:
        """Create (or, with ``replace``, update) an API-managed budget; raises BudgetError, ReadOnly (a budget
        of the config file), Conflict (it exists) or NotFound (nothing to replace)."""
        budget = parse_budget(data, self.match_keys, source="api")
        existing = self.book.budgets.get(replace or budget.id)
        if existing is not None and existing.source == "config":
            raise ReadOnly(f"budget {existing.id} is defined in the config file: change it there")
        if replace is None and existing is not None:
            raise Conflict(f"budget {budget.id} exists: PUT /api/v1/budgets/{budget.id} to change it")
        if replace is not None and existing is None:
            raise NotFound(f"no budget {replace!r}")
        if replace is not None and budget.id != replace:
            raise BudgetError("id", "cannot be changed")
        con = self.exporter.reader()
        try:
            con.execute("INSERT OR REPLACE INTO budgets VALUES (?, ?, now())",
                        [budget.id, json.dumps(budget.spec())])
            self.book.set_budget(budget, self.ledger_spend(con, budget))
        finally:
            con.close()
        return budget

    def delete(self, budget_id: str) -> None:
        existing = self.book.budgets.get(budget_id)
        if existing is None:
            raise NotFound(f"no budget {budget_id!r}")
        if existing.source == "config":
            raise ReadOnly(f"budget {budget_id} is defined in the config file: remove it there")
        con = self.exporter.reader()
        try:
            con.execute("DELETE FROM budgets WHERE id = ?", [budget_id])
        finally:
            con.close()
        self.book.remove(budget_id)

    # spans -----------------------------------------------------------------------------------------------

    def process(self, batch: TelemetryBatch) -> None:
        if not self.book.budgets:
            return
        statuses = self.book.statuses()  # one clock read and one lock per batch
        services: dict[int, Any] = {}
        matched: dict[tuple, list] = {}  # dimension values → the statuses of the budgets they match
        batch_spend: dict[str, int] = {}  # budget id → what the calls of this batch so far add to it
        for call in batch.genai:
            cost = call.cost
            if not call.billable or cost is None or cost.amount_pico is None:
                continue
            service = services.get(id(call.resource), "")
            if service == "":
                service = services[id(call.resource)] = next(
                    (value_of(kv) for kv in call.resource.attributes if kv.key == "service.name"), None)
            attribution = call.attribution or {}
            key = (call.provider, call.model, service, *attribution.items())
            matching = matched.get(key)
            if matching is None:
                values = {"provider": call.provider, "model": call.model, "service": service, **attribution}
                matching = matched[key] = [status for status in statuses if status.budget.matches(values)]
            if matching:
                call.append(self._encode(matching, cost.amount_pico, batch_spend))

    def _encode(self, statuses, amount: int, batch_spend: dict[str, int]) -> bytes:
        """gen_ai.budget.* of the tightest budget after this call, and every matching id. The spend is the
        running total: what the ledger committed, plus this batch's calls up to and including this one."""
        for status in statuses:
            batch_spend[status.budget.id] = batch_spend.get(status.budget.id, 0) + amount
        tightest = max(statuses, key=lambda s: (s.spent_pico + batch_spend[s.budget.id]) / s.budget.limit_pico)
        budget = tightest.budget
        spent = tightest.spent_pico + batch_spend[budget.id]
        utilization = spent / budget.limit_pico
        status = "exceeded" if spent >= budget.limit_pico else \
            "warning" if any(t < 1 and utilization >= t for t in budget.thresholds) else "ok"
        ids = tuple(s.budget.id for s in statuses)
        key = (budget.id, budget.period, budget.limit_pico, ids)
        fixed = self._fixed.get(key)
        if fixed is None:  # the same for every call of these budgets: encoded once
            if len(self._fixed) > 1000:
                self._fixed.clear()
            fixed = self._fixed[key] = b"".join(attributes.encode(k, v) for k, v in (
                (PREFIX + "id", budget.id), (PREFIX + "period", budget.period),
                (PREFIX + "limit", to_double(budget.limit_pico)), (PREFIX + "ids", list(ids))))
        encode = attributes.encode
        return b"".join((fixed, encode(_SPENT, to_double(spent)),
                         encode(_REMAINING, to_double(budget.limit_pico - spent)),
                         encode(_UTILIZATION, round(utilization, 6)), encode(_STATUS, status)))

    async def shutdown(self, timeout: float) -> None:
        if self.tasks:
            await asyncio.wait(self.tasks, timeout=min(timeout, 10))
