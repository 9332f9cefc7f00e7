"""``genai_normalize``: map every GenAI dialect onto the OpenTelemetry GenAI conventions.

Adds the canonical attributes (``gen_ai.provider.name``, ``gen_ai.usage.input_tokens``
cache-inclusive, …) and ``gen_ai.normalize.dialect`` to each GenAI span, marks
wrapper spans and duplicate reports of one provider call as not billable, and
leaves an index of the calls on the batch for the cost, attribution and budget
processors. Values the app sent under a canonical name with other semantics
(OpenLIT's Anthropic input tokens, say) are corrected; the sent value is kept as
``gen_ai.normalize.original.<name>`` unless ``keep_original: false``, which also
drops the dialect-specific keys that were mapped.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field
from typing import Annotated

from collector import native
from collector.batch import TelemetryBatch
from collector.component import BuildContext, Processor
from collector.schema import AtLeast, Duration, Invalid
from collector.signals import Signal
from processors import dialects
from processors.genai_call import GenAICall

# canonical attribute → GenAICall field (the targets a custom mapping may name)
CANONICAL_FIELDS = {
    dialects.PROVIDER: "provider", dialects.OPERATION: "operation", dialects.REQUEST_MODEL: "request_model",
    dialects.RESPONSE_MODEL: "response_model", dialects.RESPONSE_ID: "response_id",
    dialects.INPUT_TOKENS: "input", dialects.OUTPUT_TOKENS: "output", dialects.CACHE_READ_TOKENS: "cache_read",
    dialects.CACHE_WRITE_TOKENS: "cache_write", dialects.REASONING_TOKENS: "reasoning",
    "openai.response.service_tier": "tier", "gen_ai.usage.cost": "reported_cost",
}
IDENTITY = (("provider", dialects.PROVIDER), ("operation", dialects.OPERATION),
             ("request_model", dialects.REQUEST_MODEL), ("response_model", dialects.RESPONSE_MODEL),
             ("response_id", dialects.RESPONSE_ID))
USAGE = (("input", dialects.INPUT_TOKENS), ("output", dialects.OUTPUT_TOKENS),
          ("cache_read", dialects.CACHE_READ_TOKENS), ("cache_write", dialects.CACHE_WRITE_TOKENS),
          ("reasoning", dialects.REASONING_TOKENS))
ORIGINAL_PREFIX = "gen_ai.normalize.original."
OPTIONAL_COUNTS = frozenset({"cache_read", "cache_write", "reasoning"})  # written only when non-zero
# dialect-specific names of what the canonical attributes now say (dropped with keep_original: false)
DIALECT_ONLY_KEYS = frozenset(key for field, keys in dialects.SOURCES.items() if field != "server"
                               for key in keys) - frozenset(CANONICAL_FIELDS)


def dedupe_key(*parts: bytes | None) -> bytes:
    """The bytes of a tuple of byte strings, as the native core makes them: each length-prefixed, None apart."""
    return b"".join(b"\x00" if part is None else b"\x01" + len(part).to_bytes(4, "little") + part for part in parts)


class RecentKeys:
    """Keys seen in the last ``window`` seconds (at most ``max_entries``), each with the first value given
    (``collector._native.RecentKeys`` is the same, shared with the native stage)."""

    def __init__(self, window: float, max_entries: int):
        self.window = window
        self.max_entries = max_entries
        self.first: dict[bytes, bytes] = {}
        self.expiry: deque[tuple[float, bytes]] = deque()

    def remember(self, key: bytes, value: bytes, now: float) -> bytes:
        """The value first remembered for ``key`` (this one, if it is new)."""
        while self.expiry and (self.expiry[0][0] < now or len(self.expiry) > self.max_entries):
            self.first.pop(self.expiry.popleft()[1], None)
        first = self.first.get(key)
        if first is None:
            self.first[key] = first = value
            self.expiry.append((now + self.window, key))
        return first

    def __contains__(self, key: bytes) -> bool:
        return key in self.first


@dataclass(frozen=True)
class DedupeConfig:
    """The response ids, and the parents of priced spans, remembered to recognise a call reported twice."""

    enabled: bool = True
    window: Duration = 600.0
    max_entries: Annotated[int, AtLeast(1)] = 100_000


@dataclass(frozen=True)
class NormalizeConfig:
    keep_original: bool = True
    custom_mappings: dict[str, str] = field(default_factory=dict)  # source key → canonical key
    dedupe: DedupeConfig = DedupeConfig()

    def check(self) -> None:
        for source, target in self.custom_mappings.items():
            if target not in CANONICAL_FIELDS:
                raise Invalid("custom_mappings", f"{source}: {target!r} is not a canonical attribute",
                              f"map to one of: {', '.join(CANONICAL_FIELDS)}")

    def custom_sources(self) -> dict[str, tuple[str, ...]]:
        """Canonical field → the custom source keys that feed it, in the order given."""
        custom: dict[str, tuple[str, ...]] = {}
        for source, target in self.custom_mappings.items():
            name = CANONICAL_FIELDS[target]
            custom[name] = (*custom.get(name, ()), source)
        return custom


class GenAINormalize(Processor):
    signals = frozenset({Signal.TRACES})
    config_class = NormalizeConfig
    reads_genai = True
    reads_message = False

    def __init__(self, config: NormalizeConfig = NormalizeConfig(), context: BuildContext | None = None):
        self.keep_original = config.keep_original
        self.source_mappings = config.custom_sources()  # the pipeline's span reader reads them first
        dedupe = config.dedupe
        enabled = dedupe.enabled and dedupe.window
        memory = native.recent_keys if native.available() else RecentKeys
        self.responses = memory(dedupe.window, dedupe.max_entries) if enabled else None
        self.parents = memory(dedupe.window, dedupe.max_entries) if enabled else None

    def process(self, batch: TelemetryBatch) -> None:
        calls = batch.genai
        if self.responses is not None:
            self._mark_duplicates(calls)
        for call in calls:
            self.write(call)

    def _mark_duplicates(self, calls: list[GenAICall]) -> None:
        """One provider call reported by two spans (an instrumentation and the SDK's own) is priced once:
        the second span with the same response id, and a priced span whose child span is priced too (the
        child is the leaf: the provider SDK's own span inside the instrumentation's), are duplicates."""
        now = time.monotonic()
        for call in calls:
            span = call.span
            if call.billable and span.parent_span_id:
                self.parents.remember(dedupe_key(span.trace_id, span.parent_span_id), b"\x01", now)
        reporting_wrappers: dict[bytes, GenAICall] = {}
        for call in calls:
            if not call.billable:
                continue
            identity = dedupe_key(call.span.trace_id, call.span.span_id)
            if identity in self.parents or (call.response_id and self.responses.remember(
                    dedupe_key(_utf8(call.provider), call.response_id.encode()), identity, now) != identity):
                call.billable, call.skip_reason = False, "duplicate"
                if call.reported_cost is not None:
                    reporting_wrappers[identity] = call
        if reporting_wrappers:  # rare: looked for only when a duplicate reports a cost
            self._hand_down_reported_costs(calls, reporting_wrappers)

    @staticmethod
    def _hand_down_reported_costs(calls: list[GenAICall], wrappers: dict[bytes, GenAICall]) -> None:
        """The cost a wrapper span reports (LiteLLM's ``litellm_request``) belongs to the one call it wraps,
        when that call reports none (the provider's raw response)."""
        children: dict[bytes, list[GenAICall]] = {}
        for call in calls:
            parent = dedupe_key(call.span.trace_id, call.span.parent_span_id)
            if call.billable and parent in wrappers:
                children.setdefault(parent, []).append(call)
        for parent, kids in children.items():
            if len(kids) == 1 and kids[0].reported_cost is None:
                kids[0].reported_cost = wrappers[parent].reported_cost

    def write(self, call: GenAICall) -> None:
        """Add the canonical attributes the span lacks, and correct those that differ."""
        sent = call.sent
        changes = [(dialects.DIALECT, call.dialect)]
        fields = IDENTITY + USAGE if call.billable or call.skip_reason == "duplicate" else IDENTITY
        for name, key in fields:
            value = getattr(call, name)
            if value is None or (value == 0 and name in OPTIONAL_COUNTS and key not in call.index):
                continue
            if key in sent and sent[key] == value and type(sent[key]) is type(value):
                continue
            changes.append((key, value))
        call.put(changes, ORIGINAL_PREFIX if self.keep_original else None)
        if not self.keep_original:
            mapped = {k for k in call.index if k in DIALECT_ONLY_KEYS}
            if mapped:
                call.drop(mapped)


def _utf8(text: str | None) -> bytes | None:
    return None if text is None else text.encode()
