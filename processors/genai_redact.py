"""``genai_redact``: remove or hash prompt and completion content before storage and forwarding.

Traces: every span (frameworks put prompts on chain and agent spans too) and the span events that
carry content. Logs: GenAI events sent as log records (their ``event_name``, or an ``event.name``
attribute, in ``events``) lose their body, and every record the attributes the key patterns name.
Keys are exact names or prefixes ending in ``*``; ``allow`` keeps keys that a pattern would otherwise
catch. ``hash`` replaces a value with ``sha256:<hex>`` of its UTF-8 text (bytes as they are; arrays and
maps as compact JSON with sorted keys), or with ``salt`` set ``hmac-sha256:<hex>`` keyed by the salt,
so equal prompts can be counted, and matched from your side, without being read.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass
from typing import Literal

from opentelemetry.proto.common.v1.common_pb2 import AnyValue

from collector.attributes import plain_value
from collector.batch import TelemetryBatch
from collector.component import BuildContext, Processor
from collector.native import TRACE_WIRE
from collector.signals import Signal

DEFAULT_KEYS = (
    "gen_ai.input.messages", "gen_ai.output.messages", "gen_ai.system_instructions", "gen_ai.tool.definitions",
    "gen_ai.tool.call.arguments", "gen_ai.tool.call.result", "gen_ai.prompt*", "gen_ai.completion*",
    "llm.input_messages*", "llm.output_messages*", "llm.prompts*", "llm.prompt_template*", "input.value",
    "output.value", "ai.prompt*", "ai.response.text", "ai.response.object", "ai.response.toolCalls",
    "gen_ai.content.prompt", "gen_ai.content.completion", "traceloop.entity.input", "traceloop.entity.output",
    "langfuse.observation.input", "langfuse.observation.output",
)
# span events (and log records) that are content in the GenAI conventions and the libraries that emit them
DEFAULT_EVENTS = ("gen_ai.content.prompt", "gen_ai.content.completion", "gen_ai.system.message",
                  "gen_ai.user.message", "gen_ai.assistant.message", "gen_ai.tool.message", "gen_ai.choice",
                  "gen_ai.client.inference.operation.details")


class KeyPatterns:
    """Exact keys and ``prefix*`` patterns, minus an allow-list."""

    def __init__(self, patterns: tuple[str, ...], allow: tuple[str, ...] = ()):
        self.exact = frozenset(p for p in patterns if not p.endswith("*"))
        self.prefixes = tuple(p[:-1] for p in patterns if p.endswith("*"))
        self.allow = frozenset(allow)

    def __contains__(self, key: str) -> bool:
        return key not in self.allow and (key in self.exact or (bool(self.prefixes) and key.startswith(self.prefixes)))


def content_bytes(value: AnyValue) -> bytes:
    """What a hash is taken of: a string's UTF-8 text, bytes as they are, anything else as compact JSON."""
    kind = value.WhichOneof("value")
    if kind == "string_value":
        return value.string_value.encode()
    if kind == "bytes_value":
        return value.bytes_value
    return json.dumps(plain_value(value), sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


@dataclass(frozen=True)
class RedactConfig:
    mode: Literal["remove", "hash"] = "remove"
    keys: tuple[str, ...] = DEFAULT_KEYS  # the content attributes of the GenAI conventions and of the dialects
    allow: tuple[str, ...] = ()
    events: tuple[str, ...] = DEFAULT_EVENTS  # span events removed whole; log records whose body is redacted
    salt: str = ""  # hash mode: HMAC-SHA256 keyed by it instead of SHA-256, so hashes cannot be guessed


class GenAIRedact(Processor):
    signals = frozenset({Signal.TRACES, Signal.LOGS})
    config_class = RedactConfig

    def __init__(self, config: RedactConfig = RedactConfig(), context: BuildContext | None = None):
        self.mode = config.mode
        self.patterns = KeyPatterns(config.keys, config.allow)
        self.events = frozenset(config.events)
        self.salt = config.salt.encode()
        self._plans: dict[tuple[str, ...], tuple[int, ...]] = {}
        # remove mode, on the native path: trace requests redacted on their bytes
        self.wire_redactor = None if config.mode != "remove" or TRACE_WIRE is None else TRACE_WIRE.redactor(
            self.patterns.exact, self.patterns.prefixes, self.patterns.allow, self.events)

    @property
    def edits_wire(self) -> bool:
        return self.wire_redactor is not None

    def digest(self, value: AnyValue) -> str:
        """The hash that replaces a value: ``sha256:<hex>``, or ``hmac-sha256:<hex>`` with a salt."""
        content = content_bytes(value)
        if self.salt:
            return "hmac-sha256:" + hmac.new(self.salt, content, hashlib.sha256).hexdigest()
        return "sha256:" + hashlib.sha256(content).hexdigest()

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
                digest = self.digest(value)
                value.Clear()
                value.string_value = digest
            return False
        removed = set(positions)
        kept = [kv for i, kv in enumerate(attributes) if i not in removed]
        del attributes[:]
        attributes.extend(kept)
        return True

    def process(self, batch: TelemetryBatch) -> None:
        if batch.signal is Signal.LOGS:
            self._redact_logs(batch)
            return
        if self.wire_redactor is not None and not batch.decoded and not batch.genai:
            redacted = self.wire_redactor.redact(batch.wire)
            if redacted is not None:
                batch.rewrite(redacted)
                return
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

    def _redact_logs(self, batch: TelemetryBatch) -> None:
        for resource_logs in batch.message.resource_logs:
            for scope_logs in resource_logs.scope_logs:
                for record in scope_logs.log_records:
                    positions = self._positions(tuple([kv.key for kv in record.attributes]))
                    name = record.event_name or next(
                        (kv.value.string_value for kv in record.attributes if kv.key == "event.name"), "")
                    if name in self.events and record.HasField("body"):
                        if self.mode == "hash":
                            digest = self.digest(record.body)
                            record.body.Clear()
                            record.body.string_value = digest
                        else:
                            record.ClearField("body")
                    if positions:
                        self._redact(record.attributes, positions)
