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
from dataclasses import dataclass, field
from typing import Annotated, Any

from collector import attributes, native
from collector.attributes import value_of
from collector.auth import TENANT_HEADER
from collector.batch import TelemetryBatch
from collector.component import BuildContext, Processor
from collector.schema import AtLeast, Invalid
from collector.signals import Signal
from processors.genai_call import GenAICall

STANDARD_DIMENSIONS = ("customer", "user", "feature", "team")
ATTRIBUTE_PREFIX = "gen_ai.attribution."
_SOURCE_KINDS = ("header", "resource", "span", "baggage")


def parse_source(text: str) -> tuple[str, str]:
    kind, _, key = text.partition(".")
    if kind not in _SOURCE_KINDS or not key:
        raise ValueError(f"{text!r}: a source is header.<name>, resource.<key>, span.<key> or baggage.<key>")
    return kind, key.lower() if kind == "header" else key


@dataclass(frozen=True)
class AttributionConfig:
    """One list of sources per dimension, first match wins; ``dimensions`` declares extra ones."""

    customer: tuple[str, ...] = ()
    user: tuple[str, ...] = ()
    feature: tuple[str, ...] = ()
    team: tuple[str, ...] = ()
    dimensions: dict[str, tuple[str, ...]] = field(default_factory=dict)
    default: dict[str, str] = field(default_factory=dict)  # dimension → value when no source has one
    max_cardinality: Annotated[int, AtLeast(1)] = 1000
    trust_client_attribution: bool = True  # false: the customer is always the authenticated tenant

    def check(self) -> None:
        for name in self.dimensions:
            if name in STANDARD_DIMENSIONS or not name.isidentifier():
                raise Invalid(("dimensions", name), f"{name!r} cannot be an extra dimension",
                              "use a new identifier-like name (customer, user, feature, team exist)")
        for path, chain in [((d,), getattr(self, d)) for d in STANDARD_DIMENSIONS] + [
                (("dimensions", d), chain) for d, chain in self.dimensions.items()]:
            for text in chain:
                try:
                    parse_source(text)
                except ValueError as exc:
                    raise Invalid(path, str(exc)) from None
        for dimension in self.default:
            if dimension not in self.sources():
                raise Invalid("default", f"{dimension!r} is not a dimension",
                              f"dimensions: {', '.join(self.sources())}")

    def sources(self) -> dict[str, list[tuple[str, str]]]:
        """Dimension → its (kind, key) sources, in order."""
        chains = {d: getattr(self, d) for d in STANDARD_DIMENSIONS} | self.dimensions
        sources = {dimension: [parse_source(text) for text in chain] for dimension, chain in chains.items()}
        if not self.trust_client_attribution:
            # the customer is the tenant the receiver authenticated, whatever the spans claim
            sources["customer"] = [("header", TENANT_HEADER)]
        return sources


class GenAIAttribution(Processor):
    signals = frozenset({Signal.TRACES})
    config_class = AttributionConfig
    reads_genai = True
    reads_message = False

    def __init__(self, config: AttributionConfig, context: BuildContext | None = None):
        self.sources = config.sources()
        self.attribution_dimensions = tuple(self.sources)  # become ledger columns (Service.attribution_dimensions)
        self.defaults = config.default
        # shared with the native GenAI stage when it attributes too (processors.genai_native)
        self.capped = {dimension: native.cardinality_limit(config.max_cardinality) for dimension in self.sources}
        # the pipeline's span reader indexes them in its one scan
        self.span_keys = frozenset(key for chain in self.sources.values() for kind, key in chain
                                   if kind in ("span", "baggage"))

    def process(self, batch: TelemetryBatch) -> None:
        resources: dict[int, dict[str, Any]] = {}
        for call in batch.genai:
            if call.billable:
                self.apply(call, self.capped_values(self.raw_values(call, resource_values(call, resources),
                                                                    batch.headers)))

    def raw_values(self, call: GenAICall, resource: Mapping[str, Any], headers: Mapping[str, str]) -> list[str | None]:
        """Each dimension's value before the cardinality limits: its first source's, or its default."""
        values = []
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
            values.append(None if value is None else str(value))
        return values

    def capped_values(self, values: list[str | None]) -> dict[str, str]:
        """Dimension → value, past each dimension's cardinality limit ``__other__``; in the order of the calls."""
        return {dimension: self.capped[dimension](value) for dimension, value in zip(self.sources, values, strict=True)
                if value is not None}

    @staticmethod
    def apply(call: GenAICall, values: dict[str, str]) -> None:
        call.attribution = values
        call.append(b"".join([attributes.encode(ATTRIBUTE_PREFIX + d, v) for d, v in values.items()]))


def resource_values(call: GenAICall, memo: dict[int, dict[str, Any]]) -> dict[str, Any]:
    """The attributes of a call's resource by key (each resource read once per ``memo``)."""
    resource = memo.get(id(call.resource))
    if resource is None:
        resource = memo[id(call.resource)] = {kv.key: value_of(kv) for kv in call.resource.attributes}
    return resource
