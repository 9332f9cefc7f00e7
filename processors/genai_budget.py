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
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from typing import Annotated, Any

from collector import attributes, log
from collector.attributes import value_of
from collector.batch import TelemetryBatch
from collector.component import BuildContext, Processor
from collector.errors import BudgetError, Conflict, LedgerError, NotFound, ReadOnly
from collector.exporters.ledger_writer import LedgerExporter, ledger_of
from collector.schema import AtLeast, Duration, Invalid, Parse
from collector.signals import Signal
from collector.storage.budget_tables import BudgetTables, StoredBudget
from collector.storage.rows import RESERVATION_KEY, CallColumns
from collector.storage.store import LedgerStore, WriteTxn
from pricing_catalog.compiled import to_double
from processors.budget_alerts import Webhook, log_record
from processors.budgets import MATCH_KEYS_FIXED, Alert, Budget, BudgetBook, Status, parse_budget, zone_named

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
    ledger: str | None = None  # the ledger exporter's id; needed only when the config has two


Spending = tuple[tuple, int, Callable[[bytes], None]]


def _spending(batch: TelemetryBatch) -> Iterator[Spending]:
    """Each priced billable call of a batch, in its order: ((provider, model, service, *attribution items), its
    amount in pico-units, how to append attributes to its span). Where the native GenAI stage made no call
    objects, read from its ledger rows."""
    native = batch.native_result
    spending = native.spending() if native is not None else None
    if spending is not None:
        yield from spending
        return
    services: dict[int, Any] = {}
    for call in batch.genai:
        cost = call.cost
        if not call.billable or cost is None or cost.amount_pico is None:
            continue
        service = services.get(id(call.resource), "")
        if service == "":
            service = services[id(call.resource)] = next(
                (value_of(kv) for kv in call.resource.attributes if kv.key == "service.name"), None)
        attribution = call.attribution or {}
        yield (call.provider, call.model, service, *attribution.items()), cost.amount_pico, call.append


def _matching_indices(statuses: list[Status], key: tuple) -> tuple[list[int], bytes]:
    """The positions of the budgets a spending key matches among ``statuses``, and their encoded ids
    (gen_ai.budget.ids)."""
    provider, model, service, *attribution = key
    values = {"provider": provider, "model": model, "service": service, **dict(attribution)}
    indices = [index for index, status in enumerate(statuses) if status.budget.matches(values)]
    return indices, attributes.encode(PREFIX + "ids", [statuses[index].budget.id for index in indices])


class GenAIBudget(Processor):
    signals = frozenset({Signal.TRACES})
    config_class = BudgetConfig
    reads_genai = True
    reads_message = False
    span_keys = frozenset({RESERVATION_KEY})  # the ledger releases a reservation when its call arrives

    def __init__(self, config: BudgetConfig, context: BuildContext, clock=None):
        self.component_id = context.component_id
        self.telemetry = context.telemetry
        self.book = BudgetBook(config.timezone, clock)
        self._prefixes: dict[tuple, bytes] = {}  # each budget's encoded id, period and limit
        self.configured = config.budgets  # validated against the dimensions in bind_service
        self.ledger_id = config.ledger
        hook = config.alerts.webhook
        self.webhook = Webhook(hook.url, hook.secret, hook.timeout, hook.attempts, hook.initial_interval) \
            if hook.url else None
        self.exporter: LedgerExporter | None = None
        self.service = None
        self.match_keys: tuple[str, ...] = MATCH_KEYS_FIXED
        self.loop: asyncio.AbstractEventLoop | None = None
        self.tasks: set[asyncio.Task] = set()
        # (monotonic time, statuses, the store's commits they include) of an unshared ledger
        self._cached: tuple[float, list[Status], int] | None = None
        # writer thread: budget id → (window start, spend) after the open write, None when it cannot tell
        self._counted: dict[str, tuple[dt.datetime, int]] | None = None

    def bind_service(self, service) -> None:
        self.listen_to(ledger_of(service, f"processor {self.component_id}", self.ledger_id))
        self.service = service
        self.match_keys = (*MATCH_KEYS_FIXED, *service.attribution_dimensions())
        for index, budget in enumerate(self.configured):
            for key, _ in budget.match:
                if key not in self.match_keys:
                    raise service.document.error(("processors", self.component_id, "budgets", index, "match", key),
                                                 "not a dimension", f"use {', '.join(self.match_keys)}")

    def listen_to(self, exporter: LedgerExporter) -> None:
        """Count in the transactions of this ledger exporter, and follow its commits."""
        self.exporter = exporter
        exporter.in_transaction.append(self._count)
        exporter.committed.append(self._committed)

    @property
    def store(self) -> LedgerStore:
        if self.exporter is None or self.exporter.store is None:
            raise LedgerError("the ledger is not open")
        return self.exporter.store

    # definitions -----------------------------------------------------------------------------------------

    async def start(self) -> None:
        self.loop = asyncio.get_running_loop()
        await asyncio.to_thread(self._sync_config)
        _LOG.info("budgets loaded", extra={"budgets": [s.as_dict() for s in self.statuses()]})

    def _sync_config(self) -> None:
        """Put the config file's budgets into the ledger (every replica then counts them), drop those the
        config no longer has, and compute the counters of any budget whose definition they do not hold."""
        configured = {budget.id: budget for budget in self.configured}
        with self.store.write() as txn:
            tables = txn.budgets
            tables.version(lock="update")
            for budget_id, stored in tables.definitions().items():
                if stored.source == "config" and budget_id not in configured:
                    tables.delete(budget_id)
                elif stored.source == "api" and budget_id in configured:
                    _LOG.warning("config budget replaces one made through the API", extra={"budget": budget_id})
            stored = tables.definitions()
            for budget in self.configured:
                if budget.id not in stored or stored[budget.id].counted != self.book.counted(budget) \
                        or stored[budget.id].source != "config":
                    self._define(tables, budget)
            for budget_id, entry in stored.items():  # API budgets of an older ledger, or of another zone
                if entry.source == "api" and budget_id not in configured:
                    budget = self._parse_stored(budget_id, entry)
                    if budget is not None and entry.counted != self.book.counted(budget):
                        self._define(tables, budget)
            self._load(tables)

    def _define(self, tables: BudgetTables, budget: Budget) -> None:
        """Store a definition with counters computed from the calls already in the ledger (the caller holds
        the definitions lock, so no write counts calls meanwhile with the old set)."""
        window = self.book.window(budget, self.book.clock())
        tables.set_counters(budget.id, tables.spend_of_calls(budget.match, window,
                                                             budget.period.startswith("rolling")))
        tables.put(budget.id, budget.spec(), budget.source, self.book.counted(budget))

    def _parse_stored(self, budget_id: str, entry: StoredBudget) -> Budget | None:
        try:
            return parse_budget(entry.spec, self.match_keys, source=entry.source)
        except BudgetError as exc:
            _LOG.error("stored budget ignored", extra={"budget": budget_id, "error": str(exc)})
            return None

    def _load(self, tables: BudgetTables, version: int | None = None) -> None:
        """Take the definitions in the ledger as the budgets in force."""
        version = tables.version() if version is None else version
        budgets = {}
        for budget_id, entry in tables.definitions().items():
            budget = self._parse_stored(budget_id, entry)
            if budget is not None:
                budgets[budget_id] = budget
        self.book.budgets, self.book.version = budgets, version
        self._forget_statuses()

    def save(self, data: dict[str, Any], replace: str | None = None) -> Budget:
        """Create (or, with ``replace``, update) an API-managed budget; raises BudgetError, ReadOnly (a budget
        of the config file), Conflict (it exists) or NotFound (nothing to replace)."""
        budget = parse_budget(data, self.match_keys, source="api")
        if replace is not None and budget.id != replace:
            raise BudgetError("id", "cannot be changed")
        with self.store.write() as txn:
            tables = txn.budgets
            tables.version(lock="update")
            existing = tables.definitions().get(replace or budget.id)
            if existing is not None and existing.source == "config":
                raise ReadOnly(f"budget {budget.id} is defined in the config file: change it there")
            if replace is None and existing is not None:
                raise Conflict(f"budget {budget.id} exists: PUT /api/v1/budgets/{budget.id} to change it")
            if replace is not None and existing is None:
                raise NotFound(f"no budget {replace!r}")
            self._define(tables, budget)
            self._load(tables)
        return budget

    def delete(self, budget_id: str) -> None:
        with self.store.write() as txn:
            tables = txn.budgets
            tables.version(lock="update")
            existing = tables.definitions().get(budget_id)
            if existing is None:
                raise NotFound(f"no budget {budget_id!r}")
            if existing.source == "config":
                raise ReadOnly(f"budget {budget_id} is defined in the config file: remove it there")
            tables.delete(budget_id)
            self._load(tables)

    # spend -----------------------------------------------------------------------------------------------

    def statuses(self) -> list[Status]:
        """Every budget with its spend now. A shared ledger is read each time (other replicas write to it);
        an unshared one when a write this processor did not count committed, or a second later (periods roll
        over)."""
        cached = self._cached
        if cached is not None and time.monotonic() - cached[0] < 1.0 and cached[2] == self.store.commits:
            return cached[1]
        commits = self.store.commits
        now = self.book.clock()
        with self.store.budget_tables() as tables:
            version = tables.version()
            if version != self.book.version:
                self._load(tables, version)
            windows = [self.book.window(budget, now) for budget in self.book.budgets.values()]
            statuses = self.book.statuses(tables.spend(windows), tables.held(now), now)
        if not self.store.shared and commits == self.store.commits:
            self._cached = (time.monotonic(), statuses, commits)  # no write committed while this was read
        return statuses

    def status(self, budget_id: str) -> Status:
        status = next((s for s in self.statuses() if s.budget.id == budget_id), None)
        if status is None:
            raise NotFound(f"no budget {budget_id!r}")
        return status

    def reserve(self, values: dict[str, str], estimate_pico: int, ttl: float) -> tuple[str | None, list[Status]]:
        """Hold ``estimate_pico`` against every budget a call with these dimension values would count towards,
        until the call's span (carrying the reservation id as gen_ai.budget.reservation) is committed or
        ``ttl`` seconds pass. Returns the reservation id, or None when a hard budget refuses the call (its
        status first), with the statuses of the budgets concerned."""
        with self.store.write() as txn:
            tables = txn.budgets
            version = tables.version(lock="share")
            if version != self.book.version:
                self._load(tables, version)
            applying = [budget for budget in self.book.budgets.values()
                        if all(key in values for key, _ in budget.match) and budget.matches(values)]
            tables.lock(budget.id for budget in applying)
            now = self.book.clock()
            spent = tables.spend([self.book.window(budget, now) for budget in applying])
            statuses = sorted(self.book.statuses(spent, tables.held(now), now, applying),
                              key=lambda s: -(s.spent_pico + s.held_pico) / s.budget.limit_pico)
            refusing = [status for status in statuses if status.refuses(estimate_pico)]
            if refusing:
                return None, refusing + [s for s in statuses if s not in refusing]
            reservation = uuid.uuid4().hex
            if applying and estimate_pico:
                tables.hold(reservation, {budget.id: estimate_pico for budget in applying},
                            now + dt.timedelta(seconds=ttl))
        self._forget_statuses()
        return reservation, statuses

    def release(self, reservation: str) -> None:
        """Give back what a reservation holds (the call was not made); NotFound when it holds nothing."""
        with self.store.write() as txn:
            released = txn.budgets.release([reservation], self.book.clock())
        self._forget_statuses()
        if not released:
            raise NotFound(f"no reservation {reservation!r} (released already, expired, or holding nothing)")

    def _forget_statuses(self) -> None:
        """After a write, or a change of budgets."""
        self._cached = None

    def _committed(self, *committed: object) -> None:
        """Writer thread, after a write committed (transaction, columns, rows added). This process alone writes
        an unshared ledger, so when the cached statuses include every commit but this one they move on by the
        spend it counted instead of being read again; anything else it changed (holds, definitions, a period
        begun) forgets them."""
        counted, self._counted = self._counted, None
        cached = self._cached
        if self.store.shared or counted is None or cached is None or cached[2] + 1 != self.store.commits:
            self._forget_statuses()
            return
        statuses = []
        for status in cached[1]:
            spend = counted.get(status.budget.id)
            if spend is not None:
                if spend[0] != status.period_start:
                    self._forget_statuses()
                    return
                status = replace(status, spent_pico=spend[1])
            statuses.append(status)
        self._cached = (cached[0], statuses, self.store.commits)

    def _count(self, txn: WriteTxn, columns: CallColumns, added: list[int]) -> None:
        """Writer thread, in the write's transaction: the calls it inserted add to the counters of the budgets
        they match and release the reservations they carry, and each threshold crossed is claimed (the
        writer that claims it raises the alert)."""
        tables = txn.budgets
        version = tables.version(lock="share")
        reloaded = version != self.book.version
        if reloaded:
            self._load(tables, version)
        self._counted = None if reloaded else {}
        if not added:
            return
        keys = [k for k in self.match_keys if k in columns.names]
        data = columns.select(["start_us", "cost_pico", "reservation", *keys])
        starts, costs = data["start_us"], data["cost_pico"]
        values = list(zip(*(data[k] for k in keys), strict=True)) if keys else [()] * len(starts)
        increments = self.book.increments(keys, ((starts[i], costs[i] or 0, values[i]) for i in added))
        tables.lock(budget_id for budget_id, _ in increments)
        reservations = [data["reservation"][i] for i in added if data["reservation"][i]]
        if reservations:
            tables.release(reservations, self.book.clock())
            self._counted = None  # the holds changed too
        if not increments:
            return
        moved = tables.add(increments)
        now = self.book.clock()
        windows = {budget_id: self.book.window(self.book.budgets[budget_id], now) for budget_id, _ in increments}
        after = tables.spend(list(windows.values()), moved)
        if self._counted is not None:
            self._counted = {budget_id: (window.start, after[budget_id]) for budget_id, window in windows.items()}
        alerts = []
        for budget_id, window in windows.items():
            added_now = sum(amount for (i, bucket), amount in increments.items()
                            if i == budget_id and window.contains(bucket))
            budget = self.book.budgets[budget_id]
            for alert in self.book.crossed(budget, after[budget_id] - added_now, after[budget_id], window.start):
                if tables.claim_alert(budget_id, alert.period_start, alert.threshold, alert.at):
                    alerts.append(alert)
        if alerts and self.loop is not None:
            txn.after_commit.append(lambda: self.loop.call_soon_threadsafe(self._raise_all, alerts))

    def _raise_all(self, alerts: list[Alert]) -> None:
        for alert in alerts:
            self._raise(alert)

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

    # spans -----------------------------------------------------------------------------------------------

    def process(self, batch: TelemetryBatch) -> None:
        if not self.book.budgets and not self.store.shared:  # another replica may define budgets
            return
        statuses = self.statuses()  # one read of the budget state per batch
        native = batch.native_result
        if native is not None and native.spend([self._state(status) for status in statuses],
                                               lambda key: _matching_indices(statuses, key)):
            return
        matched: dict[tuple, tuple] = {}  # dimension values → the statuses of the budgets they match, their ids
        batch_spend: dict[str, int] = {}  # budget id → what the calls of this batch so far add to it
        for key, amount, append in _spending(batch):
            matching = matched.get(key)
            if matching is None:
                indices, ids = _matching_indices(statuses, key)
                matching = matched[key] = ([statuses[index] for index in indices], ids)
            if matching[0]:
                append(self._encode(*matching, amount, batch_spend))

    def _state(self, status: Status) -> tuple[int, int, list[float], bytes]:
        """A budget's status as the native stage takes it: spent and limit, the thresholds that warn, and its
        encoded id, period and limit."""
        budget = status.budget
        return status.spent_pico, budget.limit_pico, [t for t in budget.thresholds if t < 1], self._prefix(budget)

    def _encode(self, statuses: list[Status], ids: bytes, amount: int, batch_spend: dict[str, int]) -> bytes:
        """gen_ai.budget.* of the tightest budget after this call, and every matching id (``ids``). The spend is the
        running total: what the ledger committed, plus this batch's calls up to and including this one.
        ``native/src/budget.rs`` is its twin on the native path."""
        for status in statuses:
            batch_spend[status.budget.id] = batch_spend.get(status.budget.id, 0) + amount
        tightest = max(statuses, key=lambda s: (s.spent_pico + batch_spend[s.budget.id]) / s.budget.limit_pico)
        budget = tightest.budget
        spent = tightest.spent_pico + batch_spend[budget.id]
        utilization = spent / budget.limit_pico
        status = "exceeded" if spent >= budget.limit_pico else \
            "warning" if any(t < 1 and utilization >= t for t in budget.thresholds) else "ok"
        encode = attributes.encode
        return b"".join((self._prefix(budget), ids, encode(_SPENT, to_double(spent)),
                         encode(_REMAINING, to_double(budget.limit_pico - spent)),
                         encode(_UTILIZATION, round(utilization, 6)), encode(_STATUS, status)))

    def _prefix(self, budget: Budget) -> bytes:
        """gen_ai.budget.id, .period and .limit: the same for every call of a budget, so encoded once."""
        key = (budget.id, budget.period, budget.limit_pico)
        prefix = self._prefixes.get(key)
        if prefix is None:
            if len(self._prefixes) > 1000:
                self._prefixes.clear()
            prefix = self._prefixes[key] = b"".join(attributes.encode(k, v) for k, v in (
                (PREFIX + "id", budget.id), (PREFIX + "period", budget.period),
                (PREFIX + "limit", to_double(budget.limit_pico))))
        return prefix

    async def shutdown(self, timeout: float) -> None:
        if self.tasks:
            await asyncio.wait(self.tasks, timeout=min(timeout, 10))
