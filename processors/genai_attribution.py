"""``genai_attribution``: who spent it — customer, user, feature, team (and declared extra dimensions).

Each dimension takes the first source that has a value, in the order the YAML gives::

    genai_attribution:
      customer: [header.x-customer-id, resource.tenant.id, span.customer.id, baggage.customer_id]
      user:     [span.user.id, span.enduser.id, resource.enduser.id]
      feature:  [span.feature, resource.service.name]
      team:     [resource.team]
      dimensions: {project: [span.project]}
      default:  {customer: unknown}
      max_cardinality: 1000

``header.K`` is a header (gRPC metadata) of the OTLP request that carried the span (``header.tenant`` is
the tenant of the receiver's bearer token; with ``trust_client_attribution: false`` the customer is
always that tenant, so a client cannot book its spend to another),
``resource.K`` a resource attribute, ``span.K`` a span attribute, ``baggage.K`` a W3C
baggage entry copied onto the span (as the OpenTelemetry baggage span processor does,
under ``K``). Values beyond ``max_cardinality`` distinct ones per dimension become
``__other__``, so a buggy app cannot explode storage.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from collector import attributes
from collector.attributes import value_of
from collector.auth import TENANT_HEADER
from collector.batch import TelemetryBatch
from collector.cardinality import CardinalityLimit
from collector.component import BuildContext, Processor
from collector.config import Section
from collector.signals import Signal
from processors import dialects
from processors.dialects import GenAICall
from processors.genai_normalize import index_batch

STANDARD_DIMENSIONS = ("customer", "user", "feature", "team")
ATTRIBUTE_PREFIX = "gen_ai.attribution."
_SOURCE_KINDS = ("header", "resource", "span", "baggage")


def parse_source(text: str) -> tuple[str, str]:
    kind, _, key = text.partition(".")
    if kind not in _SOURCE_KINDS or not key:
        raise ValueError(f"{text!r}: a source is header.<name>, resource.<key>, span.<key> or baggage.<key>")
    return kind, key.lower() if kind == "header" else key


class GenAIAttribution(Processor):
    """Config: one list of sources per dimension (``customer``, ``user``, ``feature``, ``team``),
    ``dimensions`` (extra ones), ``default`` ({dimension: value}), ``max_cardinality`` (default 1000),
    ``trust_client_attribution`` (default true)."""

    signals = frozenset({Signal.TRACES})

    def __init__(self, sources: dict[str, list[tuple[str, str]]], defaults: dict[str, str], max_cardinality: int):
        self.sources = sources
        self.attribution_dimensions = tuple(sources)  # become ledger columns (Service.attribution_dimensions)
        self.defaults = defaults
        self.capped = {dimension: CardinalityLimit(max_cardinality) for dimension in sources}
        span_keys = {key for chain in sources.values() for kind, key in chain if kind in ("span", "baggage")}
        dialects.request_span_keys(span_keys)  # the span reader indexes them in its one scan

    @classmethod
    def from_config(cls, section: Section, context: BuildContext) -> GenAIAttribution:
        chains: dict[str, list[str]] = {d: section.str_list(d, []) for d in STANDARD_DIMENSIONS}
        extra = section.section("dimensions")
        for name in extra:
            if name in chains or not name.isidentifier():
                raise extra.error(name, f"{name!r} cannot be an extra dimension",
                                  "use a new identifier-like name (customer, user, feature, team exist)")
            chains[name] = extra.str_list(name)
        extra.finish()
        sources: dict[str, list[tuple[str, str]]] = {}
        for dimension, chain in chains.items():
            try:
                sources[dimension] = [parse_source(text) for text in chain]
            except ValueError as exc:
                raise section.error(dimension, str(exc)) from None
        if not section.bool("trust_client_attribution", True):
            # the customer is the tenant the receiver authenticated, whatever the spans claim
            sources["customer"] = [("header", TENANT_HEADER)]
        defaults = section.str_map("default")
        for dimension in defaults:
            if dimension not in sources:
                raise section.error("default", f"{dimension!r} is not a dimension",
                                    f"dimensions: {', '.join(sources)}")
        return cls(sources, defaults, section.int("max_cardinality", 1000, minimum=1))

    def process(self, batch: TelemetryBatch) -> None:
        if batch.genai is None:
            batch.genai = index_batch(batch)
        resources: dict[int, dict[str, Any]] = {}
        for call in batch.genai:
            if not call.billable:
                continue
            resource = resources.get(id(call.resource))
            if resource is None:
                resource = resources[id(call.resource)] = {kv.key: value_of(kv) for kv in call.resource.attributes}
            call.attribution = values = self._attribute(call, resource, batch.headers)
            call.append(b"".join([attributes.encode(ATTRIBUTE_PREFIX + d, v) for d, v in values.items()]))

    def _attribute(self, call: GenAICall, resource: Mapping[str, Any], headers: Mapping[str, str]) -> dict[str, str]:
        values = {}
        for dimension, chain in self.sources.items():
            value = None
            for kind, key in chain:
                if kind == "header":
                    value = headers.get(key)
                elif kind == "resource":
                    value = resource.get(key)
                else:
                    value = call.value(key)
                if value not in (None, ""):
                    break
            if value in (None, ""):
                value = self.defaults.get(dimension)
            if value is not None:
                values[dimension] = self.capped[dimension](str(value))
        return values
