"""``GET /metrics``: the collector's own counters and its cost counters, in the Prometheus text format.

Cost and token counters grow with the calls the ledger commits, so retries never count twice:
``gen_ai_client_cost_total{provider,model,customer,feature,currency}`` and
``gen_ai_client_token_usage_total{provider,model,customer,feature,token_type}``. Label values of the
attribution dimensions are capped by ``genai_attribution.max_cardinality``, model names at
``cardinality.MODEL_LABELS`` (later ones count under ``__other__``).
"""

from __future__ import annotations

import threading
from collections import defaultdict
from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from collector.cardinality import MODEL_LABELS, CardinalityLimit
from collector.storage.rows import CallColumns
from collector.storage.store import WriteTxn
from collector.telemetry import SelfTelemetry
from pricing_catalog.compiled import PICO

COST_LABELS = ("provider", "model", "customer", "feature", "currency")
TOKEN_KINDS = (("input_tokens", "input"), ("output_tokens", "output"), ("cache_read_tokens", "cache_read"),
               ("cache_write_tokens", "cache_write"), ("reasoning_tokens", "reasoning"))
_COUNTERS = {"received": "Items received by a receiver", "accepted": "Items a receiver's pipeline accepted",
             "refused": "Items refused (pipeline full); clients retry", "malformed": "Malformed requests",
             "exported": "Items an exporter delivered", "failed": "Items an exporter gave up on",
             "deduplicated": "Calls the ledger had already stored (retries)"}


class CostCounters:
    """Cumulative cost (pico-units) and tokens per label set, fed by ledger commits."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.cost: dict[tuple, int] = defaultdict(int)
        self.tokens: dict[tuple, int] = defaultdict(int)
        self.calls: dict[tuple, int] = defaultdict(int)
        self.models = CardinalityLimit(MODEL_LABELS)

    def on_commit(self, txn: WriteTxn, columns: CallColumns, added: list[int]) -> None:
        data = columns.columns
        with self.lock:
            for i in added:
                provider, model, *rest = (data[name][i] or "" if name in data else "" for name in COST_LABELS)
                labels = (provider, self.models(model), *rest)
                self.calls[labels] += 1
                self.cost[labels] += data["cost_pico"][i] or 0
                for column, kind in TOKEN_KINDS:
                    if data[column][i]:
                        self.tokens[(*labels[:4], kind)] += data[column][i]


class PrometheusView(Collector):
    """Translates SelfTelemetry and CostCounters into metric families at each scrape."""

    def __init__(self, telemetry: SelfTelemetry, costs: CostCounters, webhook_failures=lambda: 0,
                 budget_statuses=list):
        self.telemetry = telemetry
        self.costs = costs
        self.webhook_failures = webhook_failures
        self.budget_statuses = budget_statuses

    def _labeled(self, name: str, help_text: str, counter: str, labels: tuple[str, ...]) -> CounterMetricFamily:
        family = CounterMetricFamily(name, help_text, labels=labels)
        for label_values, value in self.telemetry.labeled(counter).items():
            values = dict(label_values)
            family.add_metric(tuple(values[label] for label in labels), value)
        return family

    def collect(self) -> Iterator[Metric]:
        snapshot = self.telemetry.snapshot()
        items = {name: CounterMetricFamily(f"genai_collector_{name}_items", help_text,
                                           labels=("component", "signal")) for name, help_text in _COUNTERS.items()}
        queue = GaugeMetricFamily("genai_collector_queue_size", "Batches waiting in an exporter's queue",
                                  labels=("component",))
        for component, values in snapshot.items():
            if component == "labeled":
                continue
            for signal, counters in values.items():
                if isinstance(counters, dict):
                    for name, value in counters.items():
                        if name in items:
                            items[name].add_metric((component, signal), value)
                elif signal == "queue_size":
                    queue.add_metric((component,), counters)
        yield from items.values()
        yield queue
        yield self._labeled("genai_collector_unpriced_calls", "Calls of models without a price", "unpriced_calls",
                            ("provider", "model"))
        yield self._labeled("genai_collector_budget_alerts", "Budget thresholds crossed", "budget_alerts",
                            ("budget", "threshold"))
        yield CounterMetricFamily("genai_collector_webhook_failures", "Alert webhooks given up after retries",
                                  value=self.webhook_failures())
        cost = CounterMetricFamily("gen_ai_client_cost", "Cost of GenAI calls, in the currency label",
                                   labels=COST_LABELS)
        tokens = CounterMetricFamily("gen_ai_client_token_usage", "Tokens of GenAI calls",
                                     labels=(*COST_LABELS[:4], "token_type"))
        calls = CounterMetricFamily("gen_ai_client_calls", "GenAI calls stored in the ledger", labels=COST_LABELS)
        with self.costs.lock:
            for labels, pico in self.costs.cost.items():
                cost.add_metric(labels, pico / PICO)
                calls.add_metric(labels, self.costs.calls[labels])
            for labels, count in self.costs.tokens.items():
                tokens.add_metric(labels, count)
        yield from (cost, tokens, calls)
        spent = GaugeMetricFamily("gen_ai_budget_spent", "Spend of a budget in its current period",
                                  labels=("budget", "period"))
        limit = GaugeMetricFamily("gen_ai_budget_limit", "Limit of a budget", labels=("budget", "period"))
        utilization = GaugeMetricFamily("gen_ai_budget_utilization", "Spent / limit", labels=("budget", "period"))
        for status in self.budget_statuses():
            labels = (status.budget.id, status.budget.period)
            spent.add_metric(labels, status.spent_pico / PICO)
            limit.add_metric(labels, status.budget.limit_pico / PICO)
            utilization.add_metric(labels, status.utilization)
        yield from (spent, limit, utilization)
