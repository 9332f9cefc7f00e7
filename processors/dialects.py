"""GenAI span dialects → one canonical reading of an LLM call (see design/DIALECTS.md).

``SpanReader.read`` scans a span's attributes once, keeping only the keys any dialect
uses, detects the dialect from the instrumentation scope and the attribute
shape, and returns a :class:`GenAICall` with cache-inclusive input tokens, the
normalised provider and whether the span is a billable leaf call.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Collection, Mapping
from typing import Any

from opentelemetry.proto.trace.v1.trace_pb2 import Span

from collector.attributes import value_of

# Canonical attribute names (OpenTelemetry GenAI semantic conventions).
PROVIDER = "gen_ai.provider.name"
OPERATION = "gen_ai.operation.name"
REQUEST_MODEL = "gen_ai.request.model"
RESPONSE_MODEL = "gen_ai.response.model"
RESPONSE_ID = "gen_ai.response.id"
INPUT_TOKENS = "gen_ai.usage.input_tokens"
OUTPUT_TOKENS = "gen_ai.usage.output_tokens"
CACHE_READ_TOKENS = "gen_ai.usage.cache_read.input_tokens"
CACHE_WRITE_TOKENS = "gen_ai.usage.cache_creation.input_tokens"
REASONING_TOKENS = "gen_ai.usage.reasoning.output_tokens"
DIALECT = "gen_ai.normalize.dialect"

# Where each canonical field may come from, most specific first.
SOURCES: dict[str, tuple[str, ...]] = {
    "provider": (PROVIDER, "gen_ai.system", "llm.provider", "ai.model.provider"),
    "operation": (OPERATION, "llm.request.type", "openinference.span.kind", "langfuse.observation.type"),
    "request_model": (REQUEST_MODEL, "llm.request.model_name", "ai.model.id", "embedding.model_name"),
    "response_model": (RESPONSE_MODEL, "llm.response.model_name", "llm.model_name", "ai.response.model",
                       "langfuse.observation.model.name"),
    "response_id": (RESPONSE_ID, "ai.response.id"),
    "input": (INPUT_TOKENS, "gen_ai.usage.prompt_tokens", "llm.token_count.prompt", "ai.usage.inputTokens",
              "ai.usage.promptTokens", "gen_ai.response.prompt_tokens"),
    "output": (OUTPUT_TOKENS, "gen_ai.usage.completion_tokens", "llm.token_count.completion",
               "ai.usage.outputTokens", "ai.usage.completionTokens", "gen_ai.response.completion_tokens"),
    "cache_read": (CACHE_READ_TOKENS, "gen_ai.usage.cache_read_input_tokens",
                   "llm.token_count.prompt_details.cache_read", "llm.token_count.prompt_details.cache_input",
                   "ai.usage.inputTokenDetails.cacheReadTokens", "ai.usage.cachedInputTokens",
                   "gen_ai.usage.prompt_tokens_details.cached_tokens", "gen_ai.usage.details.cache_read_tokens"),
    "cache_write": (CACHE_WRITE_TOKENS, "gen_ai.usage.cache_write.input_tokens",  # Anthropic SDK's own spans
                    "gen_ai.usage.cache_creation_input_tokens",
                    "llm.token_count.prompt_details.cache_write", "ai.usage.inputTokenDetails.cacheWriteTokens",
                    "gen_ai.usage.prompt_tokens_details.cache_creation_tokens",
                    "gen_ai.usage.details.cache_write_tokens"),
    "reasoning": (REASONING_TOKENS, "gen_ai.usage.reasoning_tokens", "llm.usage.reasoning_tokens",
                  "llm.token_count.completion_details.reasoning", "ai.usage.outputTokenDetails.reasoningTokens",
                  "ai.usage.reasoningTokens", "gen_ai.usage.details.reasoning_tokens",
                  "gen_ai.usage.completion_tokens_details.reasoning_tokens"),
    "input_audio": ("llm.token_count.prompt_details.audio", "gen_ai.usage.details.input_audio_tokens",
                    "gen_ai.usage.prompt_tokens_details.audio_tokens"),
    "output_audio": ("llm.token_count.completion_details.audio", "gen_ai.usage.details.output_audio_tokens",
                     "gen_ai.usage.completion_tokens_details.audio_tokens"),
    "tier": ("openai.response.service_tier", "gen_ai.openai.response.service_tier",
             "openai.request.service_tier", "gen_ai.openai.request.service_tier"),
    "reported_cost": ("gen_ai.usage.cost", "operation.cost", "llm.cost.total"),
    "server": ("server.address", "gen_ai.openai.api_base"),
}
TOKEN_FIELDS = ("input", "output", "cache_read", "cache_write", "reasoning", "input_audio", "output_audio")

# Keys read for dialect shape, wrappers and JSON-encoded details.
MARKERS = (
    "gen_ai.aggregated_usage.input_tokens", "traceloop.span.kind", "telemetry.sdk.name", "ai.operationId",
    "ai.usage.inputTokenDetails.noCacheTokens", "ai.response.providerMetadata", "llm.system",
    "llm.invocation_parameters", "langfuse.observation.usage_details", "langfuse.observation.cost_details",
)
KNOWN_KEYS = frozenset(k for keys in SOURCES.values() for k in keys) | frozenset(MARKERS)
# What the collector itself writes: indexed too, so a span processed twice is updated, not duplicated.
COST_PREFIX = "gen_ai.usage.cost."
OUTPUT_KEYS = frozenset({DIALECT} | {COST_PREFIX + name for name in (
    "amount", "currency", "source", "input", "output", "cache_read", "cache_write", "other", "status", "tier",
    "pricing.model", "pricing.provider", "pricing.snapshot", "reported", "mismatch", "exchange_rate")})
# Seeing one of these makes a span a GenAI span worth reading.
GENAI_EVIDENCE = frozenset(SOURCES["provider"] + SOURCES["request_model"] + SOURCES["response_model"]
                           + SOURCES["input"] + SOURCES["output"] + ("openinference.span.kind",
                                                                     "langfuse.observation.type"))

# DIALECTS.md §d: seen provider values → gen_ai.provider.name well-known (or lower-snake custom) values.
_PROVIDER_ALIASES = {
    "openai": "openai", "azure.ai.openai": "azure.ai.openai", "az.ai.openai": "azure.ai.openai",
    "azure": "azure.ai.openai", "azure-openai": "azure.ai.openai", "azure_openai": "azure.ai.openai",
    "azure.ai.inference": "azure.ai.inference", "az.ai.inference": "azure.ai.inference",
    "anthropic": "anthropic", "aws.bedrock": "aws.bedrock", "aws": "aws.bedrock", "bedrock": "aws.bedrock",
    "bedrock-mantle": "aws.bedrock", "bedrock_converse": "aws.bedrock", "amazon-bedrock": "aws.bedrock",
    "gcp.gemini": "gcp.gemini", "gemini": "gcp.gemini", "google-gla": "gcp.gemini",
    "gcp.vertex_ai": "gcp.vertex_ai", "vertex_ai": "gcp.vertex_ai", "vertexai": "gcp.vertex_ai",
    "google-vertex": "gcp.vertex_ai", "google-cloud": "gcp.vertex_ai", "gcp.gen_ai": "gcp.gen_ai",
    "google": "gcp.gen_ai", "mistral_ai": "mistral_ai", "mistralai": "mistral_ai", "mistral": "mistral_ai",
    "cohere": "cohere", "groq": "groq", "deepseek": "deepseek", "perplexity": "perplexity", "x_ai": "x_ai",
    "xai": "x_ai", "ibm.watsonx.ai": "ibm.watsonx.ai", "watsonx": "ibm.watsonx.ai", "ibm.watson.ai": "ibm.watsonx.ai",
    "ollama": "ollama", "together_ai": "together_ai", "togetherai": "together_ai", "together": "together_ai",
    "fireworks": "fireworks", "openrouter": "openrouter", "hugging_face": "hugging_face",
    "huggingface": "hugging_face", "replicate": "replicate", "aleph_alpha": "aleph_alpha",
    "alephalpha": "aleph_alpha", "vllm": "vllm", "oci_genai": "oci_genai", "cerebras": "cerebras",
    "moonshot": "moonshot", "moonshotai": "moonshot", "litellm": "litellm",
}
# Vercel AI SDK provider prefixes (``google.generative-ai`` → the part before the first dot is too coarse).
_VERCEL_PROVIDERS = {"google.generative-ai": "gcp.gemini", "google.vertex": "gcp.vertex_ai"}
FRAMEWORKS = frozenset({"spring_ai", "langchain", "crewai", "pydantic_ai", "llama_index", "haystack",
                        "gcp.vertex.agent", "semantic_kernel", "autogen"})
# Host (suffix) → provider, for instrumentations that say "openai" for any OpenAI-compatible endpoint.
_HOSTS = (
    (".openai.azure.com", "azure.ai.openai"), (".services.ai.azure.com", "azure.ai.inference"),
    (".cognitiveservices.azure.com", "azure.ai.openai"), ("api.groq.com", "groq"),
    ("api.deepseek.com", "deepseek"), ("openrouter.ai", "openrouter"),
    ("generativelanguage.googleapis.com", "gcp.gemini"), ("aiplatform.googleapis.com", "gcp.vertex_ai"),
    ("api.x.ai", "x_ai"), ("api.mistral.ai", "mistral_ai"), ("api.together.xyz", "together_ai"),
    ("api.fireworks.ai", "fireworks"), ("api.perplexity.ai", "perplexity"), ("api.cerebras.ai", "cerebras"),
    ("amazonaws.com", "aws.bedrock"), ("api.anthropic.com", "anthropic"), ("api.openai.com", "openai"),
    ("api.moonshot.ai", "moonshot"), ("api.cohere.com", "cohere"), ("api.cohere.ai", "cohere"),
)
# providers an instrumentation reports for any compatible endpoint: the server address tells the real one
_HOST_DERIVED = frozenset({None, "openai", "gcp.gen_ai"})
_WRAPPER_OPERATIONS = frozenset({"invoke_agent", "create_agent", "execute_tool", "invoke_workflow", "framework",
                                 "retrieval", "agent", "chain", "tool", "retriever", "reranker", "guardrail",
                                 "evaluator", "prompt", "decision", "span", "event", "workflow", "task"})
_OPERATIONS = {"completion": "text_completion", "embedding": "embeddings", "llm": "chat", "generation": "chat",
               "chat.completions": "chat", "text.completions": "text_completion",
               "chat.streaming_completions": "chat"}
_TIERS = {"auto": "standard", "default": "standard", "standard": "standard", "scale": "standard",
          "on_demand": "standard", "flex": "flex", "priority": "priority", "batch": "batch"}


class GenAICall:
    """The canonical reading of one GenAI span; the index every GenAI processor works from.

    Fields not read from the span keep the class defaults below (no per-instance work).
    """

    dialect = "otel_semconv"
    provider: str | None = None
    operation: str | None = None
    request_model: str | None = None
    response_model: str | None = None
    response_id: str | None = None
    input: int | None = None
    output: int | None = None
    cache_read = 0
    cache_write = 0
    reasoning = 0
    input_audio = 0
    output_audio = 0
    tier = "standard"
    reported_cost: float | None = None
    billable = True
    skip_reason = ""  # why a GenAI span is not priced: wrapper, duplicate
    usage_error = ""  # token counts that cannot be right (negative, absurd)
    cost = None  # processors.genai_cost.CostResult once priced
    server: str | None = None  # server.address or the API base URL
    pending = b""  # encoded attributes to append to the span
    attribution: dict[str, str] | None = None  # dimension → value (genai_attribution)

    def __init__(self, span: Span, resource: Any, index: dict[str, int], sent: dict[str, Any]):
        self.span = span
        self.resource = resource
        self.index = index  # key → position in span.attributes, for the keys any dialect uses
        self.sent = sent  # key → value of each attribute a field was read from

    def append(self, encoded: bytes) -> None:
        """Queue encoded attributes for the span; the pipeline appends them all at once (``flush``)."""
        if encoded:
            self.pending = self.pending + encoded

    def flush(self) -> None:
        if self.pending:
            self.span.MergeFromString(self.pending)
            self.pending = b""

    def value(self, key: str) -> Any:
        """The value of one of the indexed attributes, or None."""
        position = self.index.get(key)
        return None if position is None else value_of(self.span.attributes[position])

    @property
    def model(self) -> str | None:
        """The model to price: the response model (a dated snapshot) when the span has it."""
        return self.response_model or self.request_model

    @property
    def has_usage(self) -> bool:
        return self.input is not None or self.output is not None


def as_int(value: Any) -> int | None:
    """Token counts arrive as ints, doubles or (OTLP/JSON, Vercel) strings."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value) if value == value and abs(value) < 1e18 else None
    if isinstance(value, str):
        text = value.strip()
        if text.lstrip("-").isdigit():
            return int(text)
        try:
            return as_int(json.loads(text).get("intValue"))
        except (ValueError, AttributeError):
            return None
    return None


MAX_TOKENS = 10**12  # per call: anything above is a broken emitter, not a bill


def token_count(value: Any) -> int:
    """A token count from an attribute value; ValueError when it cannot be one (not a number, absurd)."""
    number = value if type(value) is int else as_int(value)
    if number is None:
        raise ValueError(f"token count {value!r} is not a whole number")
    if not 0 <= number <= MAX_TOKENS:
        raise ValueError(f"token count {number} is negative or absurd")
    return number


def as_float(value: Any) -> float | None:
    if isinstance(value, bool) or value is None:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if number == number and abs(number) != float("inf") else None


def json_attr(call: GenAICall, key: str) -> dict:
    """A JSON-object attribute (Vercel providerMetadata, OpenInference invocation parameters, Langfuse usage)."""
    value = call.value(key)
    return _parse_json_object(value) if isinstance(value, str) else {}


@functools.lru_cache(maxsize=1024)
def _parse_json_object(text: str) -> dict:
    """Parsed once per distinct string; callers must not mutate the result."""
    try:
        parsed = json.loads(text)
    except ValueError:
        return {}
    return parsed if isinstance(parsed, dict) else {}


@functools.lru_cache(maxsize=4096)
def normalize_provider(value: str | None) -> str | None:
    if not value:
        return None
    lowered = value.strip().lower()
    if lowered in _PROVIDER_ALIASES:
        return _PROVIDER_ALIASES[lowered]
    for prefix, provider in _VERCEL_PROVIDERS.items():
        if lowered.startswith(prefix):
            return provider
    head = lowered.split(".", 1)[0]
    if head in _PROVIDER_ALIASES:
        return _PROVIDER_ALIASES[head]
    return lowered.replace("-", "_").replace(" ", "_")


@functools.lru_cache(maxsize=4096)
def provider_from_host(address: str | None) -> str | None:
    if not address:
        return None
    host = address.split("://", 1)[-1].split("/", 1)[0].split(":", 1)[0].lower()
    for suffix, provider in _HOSTS:
        if host == suffix.lstrip(".") or host.endswith(suffix):
            return provider
    return None


def provider_from_model(model: str | None) -> str | None:
    """For framework spans (Google ADK) that name no provider: guess it from the model family."""
    if not model:
        return None
    lowered = model.lower()
    if lowered.startswith("gemini"):
        return "gcp.gen_ai"
    if lowered.startswith("claude"):
        return "anthropic"
    if lowered.startswith(("gpt-", "o1", "o3", "o4", "text-embedding")):
        return "openai"
    return None


def normalize_tier(value: Any) -> str:
    if not isinstance(value, str) or not value:
        return "standard"
    return _TIERS.get(value.lower(), value.lower())


@functools.lru_cache(maxsize=1024)
def _normalize_operation(value: Any) -> str:
    operation = str(value).lower()
    return _OPERATIONS.get(operation, operation)


def _provider_value(value: Any) -> str | None:
    return normalize_provider(value) if isinstance(value, str) else None


@functools.lru_cache(maxsize=1024)
def _scope_dialect(scope: str) -> str | None:
    """The dialect a scope name settles on its own, or None when the attribute shape must decide."""
    for prefix, dialect in (("openinference", "openinference"), ("langfuse", "langfuse"), ("openlit", "openlit"),
                            ("pydantic-ai", "pydantic_ai"), ("pydantic_ai", "pydantic_ai"), ("logfire", "pydantic_ai"),
                            ("opentelemetry.instrumentation.botocore", "otel_botocore"),
                            ("gcp.vertex.agent", "google_adk")):
        if scope.startswith(prefix):
            return dialect
    return "vercel_ai" if scope == "ai" else None


def detect_dialect(scope: str, keys: Collection[str]) -> str:
    """The instrumentation family, from the scope name first and the attribute keys second.

    (OpenLIT spans from an unknown scope are recognised later by ``telemetry.sdk.name=openlit``.)
    """
    by_scope = _scope_dialect(scope)
    if by_scope is not None:
        return by_scope
    if "openinference.span.kind" in keys:
        return "openinference"
    if "langfuse.observation.type" in keys:
        return "langfuse"
    if "ai.operationId" in keys:
        return "vercel_ai"
    legacy = "gen_ai.usage.prompt_tokens" in keys or "llm.request.type" in keys
    if "traceloop.span.kind" in keys or (
            scope.startswith("opentelemetry.instrumentation.") and not scope.startswith(_OTEL_CONTRIB_SCOPES)):
        return "openllmetry_legacy" if legacy else "openllmetry"
    return "otel_semconv_legacy" if legacy else "otel_semconv"


# Official OpenTelemetry contrib GenAI instrumentations; other opentelemetry.instrumentation.* scopes
# that emit GenAI attributes are OpenLLMetry's.
_OTEL_CONTRIB_SCOPES = ("opentelemetry.instrumentation.openai_v2", "opentelemetry.instrumentation.google_genai",
                        "opentelemetry.instrumentation.vertexai", "opentelemetry.instrumentation.botocore")


class _Shape:
    """What a span's attribute keys (and scope) tell before any value is read; cached per shape."""

    __slots__ = ("dialect", "fields", "index", "openlit_sdk", "server_keys")

    def __init__(self, dialect: str, index: dict[str, int], fields: tuple[tuple[str, int, bool], ...],
                 openlit_sdk: bool, server_keys: tuple[str, ...] = ()):
        self.dialect = dialect
        self.index = index  # key → position, for the keys any dialect uses
        self.fields = fields  # (field, position, integer?) of the attribute each field is read from
        self.openlit_sdk = openlit_sdk  # telemetry.sdk.name on the span may say "openlit"
        self.server_keys = server_keys  # server.address / API base keys on the span, best first


_NOT_GENAI = _Shape("", {}, (), False)
_SHAPE_CACHE_LIMIT = 20_000


class SpanReader:
    """Reads spans as GenAI calls; ``custom`` maps canonical fields to extra source keys (read first), and
    ``extra_keys`` are other span attributes the processors read from calls (attribution's ``span.K``).

    A span's attribute keys are read once; everything that follows from the keys alone (is it a GenAI
    span, which dialect, which attribute feeds which field) is cached per (scope, keys), so for the
    shapes an instrumentation emits again and again only the needed values are read.
    """

    def __init__(self, custom: Mapping[str, tuple[str, ...]] | None = None, extra_keys: Collection[str] = ()):
        custom = custom or {}
        # key → (field, priority)
        self.slots: dict[str, tuple[str, int]] = {}
        for field, keys in SOURCES.items():
            for priority, key in enumerate((*custom.get(field, ()), *keys)):
                if key not in self.slots or priority < self.slots[key][1]:
                    self.slots[key] = (field, priority)
        custom_keys = frozenset(k for keys in custom.values() for k in keys)
        self.evidence = GENAI_EVIDENCE | custom_keys
        self.known = KNOWN_KEYS | custom_keys | OUTPUT_KEYS | frozenset(extra_keys)  # keys indexed on GenAI spans
        self.shapes: dict[tuple[str, tuple[str, ...]], _Shape] = {}

    def _shape(self, scope: str, keys: tuple[str, ...]) -> _Shape:
        index = {key: position for position, key in enumerate(keys) if key in self.known}
        if self.evidence.isdisjoint(index):
            return _NOT_GENAI
        best: dict[str, tuple[int, int]] = {}
        for key, position in index.items():
            slot = self.slots.get(key)
            if slot is not None and (slot[0] not in best or slot[1] < best[slot[0]][0]):
                best[slot[0]] = (slot[1], position)
        fields = tuple((field, position, field in TOKEN_FIELDS) for field, (_, position) in best.items()
                       if field != "server")  # read only when the provider needs re-deriving
        server_keys = tuple(key for key in SOURCES["server"] if key in index)
        dialect = detect_dialect(scope, index)
        return _Shape(dialect, index, fields, _scope_dialect(scope) is None and "telemetry.sdk.name" in index,
                      server_keys)

    def read(self, span: Span, scope: str, resource: Any) -> GenAICall | None:
        """Read a span as a GenAI call, or None when it is not one."""
        attributes = span.attributes
        keys = tuple([kv.key for kv in attributes])
        shape = self.shapes.get((scope, keys))
        if shape is None:
            if len(self.shapes) >= _SHAPE_CACHE_LIMIT:
                self.shapes.clear()
            shape = self.shapes[(scope, keys)] = self._shape(scope, keys)
        if shape is _NOT_GENAI:
            return None
        sent: dict[str, Any] = {}
        call = GenAICall(span, resource, shape.index, sent)
        for field, position, integer in shape.fields:
            kv = attributes[position]
            value = kv.value
            read = value.int_value if integer else value.string_value
            if not read:
                read = value_of(kv)
            sent[keys[position]] = read
            convert = _CONVERTERS.get(field)
            try:
                setattr(call, field, read if convert is None else convert(read))
            except ValueError as exc:
                call.usage_error = f"{field}: {exc}"
        call.dialect = shape.dialect
        if shape.openlit_sdk and call.value("telemetry.sdk.name") == "openlit":
            call.dialect = "openlit"
        rule = _DIALECT_RULES.get(call.dialect)
        if rule is not None:
            rule(call, span)
        if shape.server_keys and call.provider in _HOST_DERIVED:
            call.server = call.value(shape.server_keys[0])
        _finish(call)
        return call


def _finish(call: GenAICall) -> None:
    """The rules every dialect shares: provider re-derivation, wrappers, cache-inclusive input."""
    _resolve_provider(call)
    if _is_wrapper(call):
        call.billable, call.skip_reason = False, "wrapper"
    elif call.operation is None:
        call.operation = "chat"
    if not call.usage_error:
        _make_input_inclusive(call)


def _resolve_provider(call: GenAICall) -> None:
    """Re-derive the provider from the endpoint when an instrumentation says ``openai`` for any
    OpenAI-compatible API, and from the model for framework spans."""
    if call.provider in _HOST_DERIVED and isinstance(call.server, str):
        call.provider = provider_from_host(call.server) or call.provider
    if call.provider is None:
        call.provider = provider_from_model(call.model)


def _is_wrapper(call: GenAICall) -> bool:
    """Agent, chain, workflow and framework spans aggregate their children."""
    if call.operation in _WRAPPER_OPERATIONS or "gen_ai.aggregated_usage.input_tokens" in call.index:
        return True
    if call.provider in FRAMEWORKS and call.dialect != "google_adk":
        return True
    return "traceloop.span.kind" in call.index and call.value("traceloop.span.kind") in (
        "workflow", "task", "agent", "tool")


def _make_input_inclusive(call: GenAICall) -> None:
    """DIALECTS.md pitfalls 1 and 2: input includes cache tokens, output includes reasoning."""
    cached = call.cache_read + call.cache_write
    if call.input is not None and cached and (_input_excludes_cache(call) or cached > call.input):
        call.input += cached
    if call.output is not None and call.reasoning > call.output:
        call.output += call.reasoning


def _input_excludes_cache(call: GenAICall) -> bool:
    family = call.provider
    if call.dialect == "openlit":
        return family == "anthropic"
    if call.dialect == "otel_botocore":
        return True
    if call.dialect == "vercel_ai":
        return "ai.usage.inputTokenDetails.noCacheTokens" not in call.index and (
            family == "anthropic" or family == "aws.bedrock")
    return False


def _openinference(call: GenAICall, span: Span) -> None:
    kind = str(call.value("openinference.span.kind") or "").upper()
    call.operation = {"LLM": "chat", "EMBEDDING": "embeddings"}.get(kind, kind.lower() or None)
    parameters = json_attr(call, "llm.invocation_parameters")
    if not call.request_model and call.response_model:
        call.request_model = parameters.get("model")
    tier = parameters.get("service_tier")
    if tier:
        call.tier = normalize_tier(tier)


def _vercel(call: GenAICall, span: Span) -> None:
    operation_id = str(call.value("ai.operationId") or span.name)
    if operation_id.endswith((".doGenerate", ".doStream")):
        call.operation = "chat"
    elif operation_id.endswith(".doEmbed"):
        call.operation = "embeddings"
    else:
        call.operation = "chain"  # ai.generateText & co. aggregate their steps
    metadata = json_attr(call, "ai.response.providerMetadata")
    tier = (metadata.get("openai") or {}).get("serviceTier") or \
        ((metadata.get("anthropic") or {}).get("usage") or {}).get("service_tier")
    if tier:
        call.tier = normalize_tier(tier)


def _langfuse(call: GenAICall, span: Span) -> None:
    """Langfuse usage_details: ``input`` excludes the cached subsets, ``output`` excludes reasoning."""
    usage = json_attr(call, "langfuse.observation.usage_details")
    if usage:
        try:
            numbers = {k: token_count(v) for k, v in usage.items()}
        except ValueError as exc:
            call.usage_error = f"usage_details: {exc}"
            return
        call.cache_read = sum(numbers.get(k, 0) for k in ("input_cached_tokens", "input_cache_read",
                                                           "cache_read_input_tokens"))
        call.cache_write = sum(numbers.get(k, 0) for k in ("input_cache_creation", "input_cache_write",
                                                            "cache_creation_input_tokens"))
        call.reasoning = sum(numbers.get(k, 0) for k in ("output_reasoning_tokens", "output_reasoning"))
        call.input = sum(v for k, v in numbers.items() if k.startswith("input"))
        call.output = sum(v for k, v in numbers.items() if k.startswith("output"))
    cost = json_attr(call, "langfuse.observation.cost_details").get("total")
    if cost is not None:
        call.reported_cost = as_float(cost)
    if call.provider is None:
        call.provider = provider_from_model(call.model)


def _google_adk(call: GenAICall, span: Span) -> None:
    call.provider = provider_from_model(call.model) or call.provider
    if span.name == "call_llm":
        call.operation = "chat"


def _openlit(call: GenAICall, span: Span) -> None:
    """OpenLIT writes ``gen_ai.usage.cost = 0`` when its pricing JSON (fetched from GitHub at start) has no
    price for the model or could not be fetched: that is no report, not a free call."""
    if call.reported_cost == 0 and (call.input or call.output):
        call.reported_cost = None


# How a raw attribute value becomes a GenAICall field (fields not listed are taken as they are).
_CONVERTERS = {**dict.fromkeys(TOKEN_FIELDS, token_count), "tier": normalize_tier, "reported_cost": as_float,
               "provider": _provider_value, "operation": _normalize_operation}

_DIALECT_RULES = {
    "openinference": _openinference,
    "vercel_ai": _vercel,
    "langfuse": _langfuse,
    "google_adk": _google_adk,
    "openlit": _openlit,
}
