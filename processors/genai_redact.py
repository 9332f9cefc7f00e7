"""``genai_redact``: remove or hash prompt and completion content before storage and forwarding.

Applies to every span (frameworks put prompts on chain and agent spans too) and to span events
that carry content. Keys are exact names or prefixes ending in ``*``; ``allow`` keeps keys that a
pattern would otherwise catch. ``hash`` replaces a value with ``sha256:<hex>`` of its encoding, so
equal prompts can still be counted without being read.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Literal

from collector.batch import TelemetryBatch
from collector.component import BuildContext, Processor
from collector.signals import Signal

DEFAULT_KEYS = (
    "gen_ai.input.messages", "gen_ai.output.messages", "gen_ai.system_instructions", "gen_ai.tool.definitions",
    "gen_ai.tool.call.arguments", "gen_ai.tool.call.result", "gen_ai.prompt*", "gen_ai.completion*",
    "llm.input_messages*", "llm.output_messages*", "llm.prompts*", "llm.prompt_template*", "input.value",
    "output.value", "ai.prompt*", "ai.response.text", "ai.response.object", "ai.response.toolCalls",
    "gen_ai.content.prompt", "gen_ai.content.completion", "traceloop.entity.input", "traceloop.entity.output",
    "langfuse.observation.input", "langfuse.observation.output",
)
# span events that are content in the GenAI conventions and the libraries that emit them
DEFAULT_EVENTS = ("gen_ai.content.prompt", "gen_ai.content.completion", "gen_ai.system.message",
                  "gen_ai.user.message", "gen_ai.assistant.message", "gen_ai.tool.message", "gen_ai.choice",
                  "gen_ai.client.inference.operation.details")
REDACTED = "[REDACTED]"


class KeyPatterns:
    """Exact keys and ``prefix*`` patterns, minus an allow-list."""

    def __init__(self, patterns: tuple[str, ...], allow: tuple[str, ...] = ()):
        self.exact = frozenset(p for p in patterns if not p.endswith("*"))
        self.prefixes = tuple(p[:-1] for p in patterns if p.endswith("*"))
        self.allow = frozenset(allow)

    def __contains__(self, key: str) -> bool:
        return key not in self.allow and (key in self.exact or (bool(self.prefixes) and key.startswith(self.prefixes)))


@dataclass(frozen=True)
class RedactConfig:
    mode: Literal["remove", "hash"] = "remove"
    keys: tuple[str, ...] = DEFAULT_KEYS  # the content attributes of the GenAI conventions and of the dialects
    allow: tuple[str, ...] = ()
    events: tuple[str, ...] = DEFAULT_EVENTS  # span event names removed whole


class GenAIRedact(Processor):
    signals = frozenset({Signal.TRACES})
    config_class = RedactConfig

    def __init__(self, config: RedactConfig = RedactConfig(), context: BuildContext | None = None):
        self.mode = config.mode
        self.patterns = KeyPatterns(config.keys, config.allow)
        self.events = frozenset(config.events)
        self._plans: dict[tuple[str, ...], tuple[int, ...]] = {}

    def _positions(self, keys: tuple[str, ...]) -> tuple[int, ...]:
        """Which attributes of a span with these keys hold content; cached per key shape."""
        plan = self._plans.get(keys)
        if plan is None:
            if len(self._plans) > 20_000:
                self._plans.clear()
            plan = self._plans[keys] = tuple(i for i, key in enumerate(keys) if key in self.patterns)
        return plan

    def _redact(self, attributes, positions: tuple[int, ...]) -> bool:
        """Redact in place; True when attributes were removed (positions after them moved)."""
        if self.mode == "hash":
            for position in positions:
                value = attributes[position].value
                digest = hashlib.sha256(value.SerializeToString()).hexdigest()
                value.Clear()
                value.string_value = f"sha256:{digest}"
            return False
        removed = set(positions)
        kept = [kv for i, kv in enumerate(attributes) if i not in removed]
        del attributes[:]
        attributes.extend(kept)
        return True

    def process(self, batch: TelemetryBatch) -> None:
        events = self.events
        moved = False
        for resource_spans in batch.message.resource_spans:
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    attributes = span.attributes
                    positions = self._positions(tuple([kv.key for kv in attributes]))
                    if positions:
                        moved |= self._redact(attributes, positions)
                    if span.events:
                        self._redact_events(span, events)
        if moved and batch.genai:  # attribute positions the GenAI processors indexed may have moved
            for call in batch.genai:
                call.index = {kv.key: i for i, kv in enumerate(call.span.attributes) if kv.key in call.index}

    def _redact_events(self, span, events: frozenset[str]) -> None:
        kept = [event for event in span.events if event.name not in events]
        if len(kept) != len(span.events):
            del span.events[:]
            span.events.extend(kept)
        for event in span.events:
            positions = self._positions(tuple([kv.key for kv in event.attributes]))
            if positions:
                self._redact(event.attributes, positions)

