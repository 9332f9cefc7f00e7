"""What one dialect needs beyond the tables of :mod:`processors.dialects`: operations, tiers and usage read
from its own attributes (OpenInference invocation parameters, Vercel provider metadata, Langfuse usage
details), applied by the span reader after the table-driven fields. The native core applies all but LiteLLM's
itself (``native/src/rules.rs``): a change here is a change there, and ``tests/test_native.py`` fuzzes the two
against each other."""

from __future__ import annotations

import ast
import re
from typing import Any

from opentelemetry.proto.trace.v1.trace_pb2 import Span

from processors.dialects import LITELLM_RAW_USAGE, normalize_provider, normalize_tier, provider_from_model
from processors.genai_call import GenAICall, as_text, json_attr, reported_cost, token_count

# a provider's response id as it opens the JSON of a response: OpenAI chat and responses, Anthropic messages
_RESPONSE_ID = re.compile(r'"id":\s?"((?:chatcmpl|resp|msg)[-_][A-Za-z0-9_-]{1,200})"')
MAX_OUTPUT_SCAN = 1 << 20  # bytes of output.value searched for a response id


def _openinference(call: GenAICall, span: Span) -> None:
    """OpenInference names no response id; its ``output.value`` (the provider's response as JSON, or a
    framework's result that quotes it) does. With it, a LangChain span and the OpenAI SDK span of the same call
    — two traces when both instrumentations are on — are priced once."""
    kind = str(call.value("openinference.span.kind") or "").upper()
    call.operation = {"LLM": "chat", "EMBEDDING": "embeddings"}.get(kind, kind.lower() or None)
    if kind == "LLM" and not call.response_id:
        output = call.value("output.value")
        if isinstance(output, str):
            found = _RESPONSE_ID.search(output, 0, MAX_OUTPUT_SCAN)
            call.response_id = found.group(1) if found else None
    parameters = json_attr(call, "llm.invocation_parameters")
    if not call.request_model and call.response_model:
        call.request_model = as_text(parameters.get("model"))
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
        call.reported_cost = reported_cost(cost)
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


MAX_LITERAL = 64 * 1024  # characters of a Python-repr usage object worth parsing


def _python_literal(text: str) -> Any:
    """A Python literal (``repr`` of a dict) parsed, never evaluated; None when it is not one."""
    if len(text) > MAX_LITERAL:
        return None
    try:
        return ast.literal_eval(text)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return None


def _mapping(value: Any) -> dict[str, Any]:
    """A nested usage object, or an empty one when the text held something else there."""
    return value if isinstance(value, dict) else {}


def _raw_usage(usage: dict[str, Any]) -> dict[str, Any]:
    """Canonical token counts of a provider's own usage object: OpenAI's (input includes the cached tokens),
    Anthropic's and Bedrock's (input excludes them), Gemini's (``thoughts`` apart from the candidates)."""
    if "prompt_tokens" in usage:
        return {"input": usage.get("prompt_tokens"), "output": usage.get("completion_tokens"),
                "cache_read": _mapping(usage.get("prompt_tokens_details")).get("cached_tokens"),
                "reasoning": _mapping(usage.get("completion_tokens_details")).get("reasoning_tokens")}
    if "promptTokenCount" in usage:
        return {"input": usage.get("promptTokenCount"),
                "output": token_count(usage.get("candidatesTokenCount") or 0)
                + token_count(usage.get("thoughtsTokenCount") or 0),
                "cache_read": usage.get("cachedContentTokenCount"), "reasoning": usage.get("thoughtsTokenCount")}
    cache_read = usage.get("cache_read_input_tokens") or usage.get("cacheReadInputTokens") or 0
    cache_write = usage.get("cache_creation_input_tokens") or usage.get("cacheWriteInputTokens") or 0
    uncached = usage.get("input_tokens", usage.get("inputTokens"))
    return {"input": None if uncached is None else token_count(uncached) + token_count(cache_read)
            + token_count(cache_write),
            "output": usage.get("output_tokens", usage.get("outputTokens")),
            "cache_read": cache_read, "cache_write": cache_write}


def _litellm_raw(call: GenAICall) -> None:
    """A ``raw_gen_ai_request`` span: the provider's own response, one per call. Inside an app's span LiteLLM
    writes its ``gen_ai.*`` attributes onto the app's span, where a second call overwrites the first; these
    spans stay one per call, so they are what is priced (the span above them is then a wrapper)."""
    key = next((key for key in LITELLM_RAW_USAGE if key in call.index), None)
    text = call.value(key) if key is not None else None
    usage = _python_literal(text) if isinstance(text, str) else None
    if not isinstance(usage, dict):
        return
    call.provider = normalize_provider(key.split(".")[1])
    call.operation = "chat"
    try:
        for field, value in _raw_usage(usage).items():
            if value is not None:
                setattr(call, field, token_count(value))
    except ValueError as exc:
        call.usage_error = f"{key}: {exc}"


def _litellm(call: GenAICall, span: Span) -> None:
    """LiteLLM's ``litellm_request`` span counts cached tokens in ``gen_ai.usage.input_tokens`` but names them
    only inside ``metadata.usage_object``, the ``repr`` of its Usage object (OpenAI's ``prompt_tokens_details``
    and Anthropic's ``cache_*_input_tokens`` alike)."""
    if span.name == "raw_gen_ai_request":
        _litellm_raw(call)
        return
    text = call.value("metadata.usage_object")
    usage = _python_literal(text) if isinstance(text, str) else None
    if not isinstance(usage, dict):
        return
    prompt = _mapping(usage.get("prompt_tokens_details"))
    completion = _mapping(usage.get("completion_tokens_details"))
    found = {"cache_read": prompt.get("cached_tokens") or usage.get("cache_read_input_tokens"),
             "cache_write": prompt.get("cache_creation_tokens") or prompt.get("cache_write_tokens")
             or usage.get("cache_creation_input_tokens"),
             "reasoning": completion.get("reasoning_tokens")}
    try:
        for field, value in found.items():
            if value and not getattr(call, field):  # the span's own attributes (semconv mode) come first
                setattr(call, field, token_count(value))
    except ValueError as exc:
        call.usage_error = f"metadata.usage_object: {exc}"


# The rule of each dialect that has one, applied after the table-driven fields.
DIALECT_RULES = {
    "openinference": _openinference,
    "vercel_ai": _vercel,
    "langfuse": _langfuse,
    "google_adk": _google_adk,
    "openlit": _openlit,
    "litellm": _litellm,
}
