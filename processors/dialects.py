"""GenAI span dialects → one canonical reading of an LLM call (see design/DIALECTS.md).

``read_call`` scans a span's attributes once, keeping only the keys any dialect
uses, detects the dialect from the instrumentation scope and the attribute
shape, and returns a :class:`GenAICall` with cache-inclusive input tokens, the
normalised provider and whether the span is a billable leaf call.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from opentelemetry.proto.common.v1.common_pb2 import KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span

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
_WRAPPER_OPERATIONS = frozenset({"invoke_agent", "create_agent", "execute_tool", "invoke_workflow", "framework",
                                 "retrieval", "agent", "chain", "tool", "retriever", "reranker", "guardrail",
                                 "evaluator", "prompt", "decision", "span", "event", "workflow", "task"})
_OPERATIONS = {"completion": "text_completion", "embedding": "embeddings", "llm": "chat", "generation": "chat",
               "chat.completions": "chat", "text.completions": "text_completion",
               "chat.streaming_completions": "chat"}
_TIERS = {"auto": "standard", "default": "standard", "standard": "standard", "scale": "standard",
          "on_demand": "standard", "flex": "flex", "priority": "priority", "batch": "batch"}


class GenAICall:
    """The canonical reading of one GenAI span; the index every GenAI processor works from."""

    __slots__ = ("attributes", "billable", "cache_read", "cache_write", "cost", "dialect", "input", "input_audio",
                 "operation", "output", "output_audio", "provider", "reasoning", "reported_cost", "request_model",
                 "resource", "response_id", "response_model", "skip_reason", "span", "tier", "usage_error")

    def __init__(self, span: Span, resource: Any, attributes: dict[str, KeyValue]):
        self.span = span
        self.resource = resource
        self.attributes = attributes  # key → KeyValue of the keys any dialect uses
        self.dialect = "otel_semconv"
        self.provider: str | None = None
        self.operation: str | None = None
        self.request_model: str | None = None
        self.response_model: str | None = None
        self.response_id: str | None = None
        self.input: int | None = None
        self.output: int | None = None
        self.cache_read = 0
        self.cache_write = 0
        self.reasoning = 0
        self.input_audio = 0
        self.output_audio = 0
        self.tier = "standard"
        self.reported_cost: float | None = None
        self.billable = True
        self.skip_reason = ""  # why a GenAI span is not priced: wrapper, duplicate
        self.usage_error = ""  # token counts that cannot be right (negative, absurd)
        self.cost = None  # processors.genai_cost.CostResult once priced

    @property
    def model(self) -> str | None:
        """The model to price: the response model (a dated snapshot) when the span has it."""
        return self.response_model or self.request_model

    @property
    def has_usage(self) -> bool:
        return self.input is not None or self.output is not None


def value_of(kv: KeyValue) -> Any:
    value = kv.value
    kind = value.WhichOneof("value")
    return getattr(value, kind) if kind else None


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


def as_float(value: Any) -> float | None:
    if isinstance(value, bool) or value is None:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if number == number and abs(number) != float("inf") else None


def json_attr(attributes: Mapping[str, KeyValue], key: str) -> dict:
    kv = attributes.get(key)
    if kv is None:
        return {}
    try:
        parsed = json.loads(value_of(kv))
    except (TypeError, ValueError):
        return {}
    return parsed if isinstance(parsed, dict) else {}


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


def detect_dialect(scope: str, attributes: Mapping[str, KeyValue]) -> str:
    """The instrumentation family, from the scope name first and the attribute shape second."""
    if scope.startswith("openinference") or "openinference.span.kind" in attributes:
        return "openinference"
    if scope.startswith("langfuse") or "langfuse.observation.type" in attributes:
        return "langfuse"
    if scope == "ai" or "ai.operationId" in attributes:
        return "vercel_ai"
    sdk = attributes.get("telemetry.sdk.name")
    if scope.startswith("openlit") or (sdk is not None and value_of(sdk) == "openlit"):
        return "openlit"
    if scope.startswith(("pydantic-ai", "pydantic_ai", "logfire")):
        return "pydantic_ai"
    if scope.startswith("opentelemetry.instrumentation.botocore"):
        return "otel_botocore"
    if scope.startswith("gcp.vertex.agent"):
        return "google_adk"
    legacy = "gen_ai.usage.prompt_tokens" in attributes or "llm.request.type" in attributes
    if "traceloop.span.kind" in attributes or (
            scope.startswith("opentelemetry.instrumentation.") and not scope.startswith(_OTEL_CONTRIB_SCOPES)):
        return "openllmetry_legacy" if legacy else "openllmetry"
    return "otel_semconv_legacy" if legacy else "otel_semconv"


# Official OpenTelemetry contrib GenAI instrumentations; other opentelemetry.instrumentation.* scopes
# that emit GenAI attributes are OpenLLMetry's.
_OTEL_CONTRIB_SCOPES = ("opentelemetry.instrumentation.openai_v2", "opentelemetry.instrumentation.google_genai",
                        "opentelemetry.instrumentation.vertexai", "opentelemetry.instrumentation.botocore")


def _first(attributes: Mapping[str, KeyValue], field: str, custom: Mapping[str, tuple[str, ...]]) -> Any:
    for key in custom.get(field, ()) + SOURCES[field]:
        kv = attributes.get(key)
        if kv is not None:
            return value_of(kv)
    return None


def read_call(span: Span, scope: str, resource: Any, custom: Mapping[str, tuple[str, ...]] = {},
              custom_keys: frozenset[str] = frozenset()) -> GenAICall | None:
    """Read a span as a GenAI call, or None when it is not one."""
    attributes: dict[str, KeyValue] = {}
    for kv in span.attributes:
        key = kv.key
        if key in KNOWN_KEYS or key in custom_keys:
            attributes[key] = kv
    if not attributes or not (GENAI_EVIDENCE.intersection(attributes) or custom_keys.intersection(attributes)):
        return None
    call = GenAICall(span, resource, attributes)
    call.dialect = dialect = detect_dialect(scope, attributes)
    first = _first
    call.request_model = first(attributes, "request_model", custom)
    call.response_model = first(attributes, "response_model", custom)
    call.response_id = first(attributes, "response_id", custom)
    for field in TOKEN_FIELDS:
        value = as_int(first(attributes, field, custom))
        if value is not None:
            if value < 0:
                call.usage_error = f"negative {field} token count ({value})"
            setattr(call, field, value)
    call.tier = normalize_tier(first(attributes, "tier", custom))
    call.reported_cost = as_float(first(attributes, "reported_cost", custom))
    raw_provider = first(attributes, "provider", custom)
    call.provider = normalize_provider(raw_provider if isinstance(raw_provider, str) else None)
    raw_operation = first(attributes, "operation", custom)
    call.operation = _OPERATIONS.get(str(raw_operation).lower(), str(raw_operation).lower()) \
        if raw_operation is not None else None
    _DIALECT_RULES.get(dialect, _no_rule)(call, attributes, span)
    _resolve_provider(call, first(attributes, "server", custom))
    _mark_wrappers(call, attributes)
    _make_input_inclusive(call)
    return call


def _resolve_provider(call: GenAICall, server: Any) -> None:
    """Re-derive the provider from the endpoint when an instrumentation says ``openai`` for any
    OpenAI-compatible API, and from the model for framework spans."""
    host_provider = provider_from_host(server if isinstance(server, str) else None)
    if call.provider in (None, "openai", "gcp.gen_ai") and host_provider:
        call.provider = host_provider
    if call.provider is None:
        call.provider = provider_from_model(call.model)


def _is_wrapper(call: GenAICall, attributes: Mapping[str, KeyValue]) -> bool:
    """Agent, chain, workflow and framework spans aggregate their children."""
    if call.operation in _WRAPPER_OPERATIONS or "gen_ai.aggregated_usage.input_tokens" in attributes:
        return True
    if call.provider in FRAMEWORKS and call.dialect != "google_adk":
        return True
    kind = attributes.get("traceloop.span.kind")
    return kind is not None and value_of(kind) in ("workflow", "task", "agent", "tool")


def _mark_wrappers(call: GenAICall, attributes: Mapping[str, KeyValue]) -> None:
    """Wrappers are never priced; a billable span without an operation name is a chat call."""
    if _is_wrapper(call, attributes):
        call.billable, call.skip_reason = False, "wrapper"
    elif call.operation is None:
        call.operation = "chat"


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
        return "ai.usage.inputTokenDetails.noCacheTokens" not in call.attributes and (
            family == "anthropic" or family == "aws.bedrock")
    return False


def _no_rule(call: GenAICall, attributes: Mapping[str, KeyValue], span: Span) -> None:
    pass


def _openinference(call: GenAICall, attributes: Mapping[str, KeyValue], span: Span) -> None:
    kind = str(value_of(attributes["openinference.span.kind"])).upper() \
        if "openinference.span.kind" in attributes else ""
    call.operation = {"LLM": "chat", "EMBEDDING": "embeddings"}.get(kind, kind.lower() or None)
    if not call.request_model and call.response_model:
        call.request_model = json_attr(attributes, "llm.invocation_parameters").get("model")
    tier = json_attr(attributes, "llm.invocation_parameters").get("service_tier")
    if tier:
        call.tier = normalize_tier(tier)


def _vercel(call: GenAICall, attributes: Mapping[str, KeyValue], span: Span) -> None:
    operation_id = str(value_of(attributes["ai.operationId"])) if "ai.operationId" in attributes else span.name
    if operation_id.endswith((".doGenerate", ".doStream")):
        call.operation = "chat"
    elif operation_id.endswith(".doEmbed"):
        call.operation = "embeddings"
    else:
        call.operation = "chain"  # ai.generateText & co. aggregate their steps
    metadata = json_attr(attributes, "ai.response.providerMetadata")
    tier = (metadata.get("openai") or {}).get("serviceTier") or \
        ((metadata.get("anthropic") or {}).get("usage") or {}).get("service_tier")
    if tier:
        call.tier = normalize_tier(tier)


def _langfuse(call: GenAICall, attributes: Mapping[str, KeyValue], span: Span) -> None:
    """Langfuse usage_details: ``input`` excludes the cached subsets, ``output`` excludes reasoning."""
    usage = json_attr(attributes, "langfuse.observation.usage_details")
    if usage:
        numbers = {k: as_int(v) or 0 for k, v in usage.items()}
        call.cache_read = sum(numbers.get(k, 0) for k in ("input_cached_tokens", "input_cache_read",
                                                           "cache_read_input_tokens"))
        call.cache_write = sum(numbers.get(k, 0) for k in ("input_cache_creation", "input_cache_write",
                                                            "cache_creation_input_tokens"))
        call.reasoning = sum(numbers.get(k, 0) for k in ("output_reasoning_tokens", "output_reasoning"))
        call.input = sum(v for k, v in numbers.items() if k.startswith("input"))
        call.output = sum(v for k, v in numbers.items() if k.startswith("output"))
    cost = json_attr(attributes, "langfuse.observation.cost_details").get("total")
    if cost is not None:
        call.reported_cost = as_float(cost)
    if call.provider is None:
        call.provider = provider_from_model(call.model)


def _google_adk(call: GenAICall, attributes: Mapping[str, KeyValue], span: Span) -> None:
    call.provider = provider_from_model(call.model) or call.provider
    if span.name == "call_llm":
        call.operation = "chat"


_DIALECT_RULES = {
    "openinference": _openinference,
    "vercel_ai": _vercel,
    "langfuse": _langfuse,
    "google_adk": _google_adk,
}
