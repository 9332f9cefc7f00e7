r"""GenAI span dialects: the canonical names, where each dialect puts them, and how values are normalised.

The tables say what to read (design/DIALECTS.md); :mod:`processors.span_reader` reads spans with them
into :class:`~processors.genai_call.GenAICall`\ s, and :mod:`processors.dialect_rules` holds what a
single dialect needs beyond the tables.
"""

from __future__ import annotations

import functools
from collections.abc import Collection
from typing import Any

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

# LiteLLM's ``raw_gen_ai_request`` spans hold the provider's own response as ``llm.<provider>.<field>``,
# <provider> being LiteLLM's name for it (processors.dialect_rules reads them).
LITELLM_RAW_PROVIDERS = ("openai", "azure", "anthropic", "bedrock", "vertex_ai", "gemini", "mistral", "groq",
                         "deepseek", "cohere", "together_ai", "fireworks_ai", "xai", "openrouter", "ollama",
                         "hosted_vllm", "perplexity", "cerebras", "databricks", "watsonx")
LITELLM_RAW_USAGE = tuple(f"llm.{provider}.usage" for provider in LITELLM_RAW_PROVIDERS)

# Where each canonical field may come from, most specific first.
SOURCES: dict[str, tuple[str, ...]] = {
    "provider": (PROVIDER, "gen_ai.system", "llm.provider", "ai.model.provider"),
    "operation": (OPERATION, "llm.request.type", "openinference.span.kind", "langfuse.observation.type"),
    "request_model": (REQUEST_MODEL, "llm.request.model_name", "ai.model.id", "embedding.model_name"),
    "response_model": (RESPONSE_MODEL, "llm.response.model_name", "llm.model_name", "ai.response.model",
                       "langfuse.observation.model.name", *(f"llm.{p}.model" for p in LITELLM_RAW_PROVIDERS)),
    "response_id": (RESPONSE_ID, "ai.response.id", *(f"llm.{p}.id" for p in LITELLM_RAW_PROVIDERS)),
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
    "total": ("gen_ai.usage.total_tokens", "llm.usage.total_tokens", "ai.usage.totalTokens", "llm.token_count.total"),
    "tier": ("openai.response.service_tier", "gen_ai.openai.response.service_tier",
             "openai.request.service_tier", "gen_ai.openai.request.service_tier"),
    "reported_cost": ("gen_ai.usage.cost", "operation.cost", "llm.cost.total", "gen_ai.cost.total_cost"),
    "server": ("server.address", "gen_ai.openai.api_base"),
}
TOKEN_FIELDS = ("input", "output", "cache_read", "cache_write", "reasoning", "input_audio", "output_audio", "total")

# Keys read for dialect shape, wrappers and JSON-encoded details.
MARKERS = (
    "gen_ai.aggregated_usage.input_tokens", "traceloop.span.kind", "telemetry.sdk.name", "ai.operationId",
    "ai.usage.inputTokenDetails.noCacheTokens", "ai.response.providerMetadata", "llm.system",
    "llm.invocation_parameters", "langfuse.observation.usage_details", "langfuse.observation.cost_details",
    "metadata.usage_object", *LITELLM_RAW_USAGE, "output.value",
)
KNOWN_KEYS = frozenset(k for keys in SOURCES.values() for k in keys) | frozenset(MARKERS)
# What the collector itself writes: indexed too, so a span processed twice is updated, not duplicated.
COST_PREFIX = "gen_ai.usage.cost."
OUTPUT_KEYS = frozenset({DIALECT} | {COST_PREFIX + name for name in (
    "amount", "currency", "source", "input", "output", "cache_read", "cache_write", "other", "status", "tier",
    "pricing.model", "pricing.provider", "pricing.snapshot", "reported", "mismatch", "exchange_rate", "reason")})
# Seeing one of these makes a span a GenAI span worth reading.
GENAI_EVIDENCE = frozenset(SOURCES["provider"] + SOURCES["request_model"] + SOURCES["response_model"]
                           + SOURCES["input"] + SOURCES["output"] + LITELLM_RAW_USAGE
                           + ("openinference.span.kind", "langfuse.observation.type"))

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
    "moonshot": "moonshot", "moonshotai": "moonshot", "litellm": "litellm", "fireworks_ai": "fireworks",
    "hosted_vllm": "vllm",
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
HOST_DERIVED = frozenset({None, "openai", "gcp.gen_ai"})
WRAPPER_OPERATIONS = frozenset({"invoke_agent", "create_agent", "execute_tool", "invoke_workflow", "framework",
                                 "retrieval", "agent", "chain", "tool", "retriever", "reranker", "guardrail",
                                 "evaluator", "prompt", "decision", "span", "event", "workflow", "task"})
_OPERATIONS = {"completion": "text_completion", "embedding": "embeddings", "llm": "chat", "generation": "chat",
               "chat.completions": "chat", "text.completions": "text_completion",
               "chat.streaming_completions": "chat"}
_TIERS = {"auto": "standard", "default": "standard", "standard": "standard", "scale": "standard",
          "on_demand": "standard", "flex": "flex", "priority": "priority", "batch": "batch"}


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
def normalize_operation(value: Any) -> str:
    operation = str(value).lower()
    return _OPERATIONS.get(operation, operation)


def provider_value(value: Any) -> str | None:
    return normalize_provider(value) if isinstance(value, str) else None


@functools.lru_cache(maxsize=1024)
def scope_dialect(scope: str) -> str | None:
    """The dialect a scope name settles on its own, or None when the attribute shape must decide."""
    for prefix, dialect in (("openinference", "openinference"), ("langfuse", "langfuse"), ("openlit", "openlit"),
                            ("pydantic-ai", "pydantic_ai"), ("pydantic_ai", "pydantic_ai"), ("logfire", "pydantic_ai"),
                            ("opentelemetry.instrumentation.botocore", "otel_botocore"),
                            ("gcp.vertex.agent", "google_adk"), ("litellm", "litellm")):
        if scope.startswith(prefix):
            return dialect
    return "vercel_ai" if scope == "ai" else None


def detect_dialect(scope: str, keys: Collection[str]) -> str:
    """The instrumentation family, from the scope name first and the attribute keys second.

    (OpenLIT spans from an unknown scope are recognised later by ``telemetry.sdk.name=openlit``.)
    """
    by_scope = scope_dialect(scope)
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
