"""A local stand-in for the OpenAI, Anthropic, Gemini and Bedrock HTTP APIs, answering with fixed usage.

Real provider SDKs talk to it through their ``base_url``; nothing leaves 127.0.0.1. It serves:

- OpenAI chat completions (also streamed, with the usage chunk when ``stream_options.include_usage`` is
  set; a prompt starting with ``CACHED_PROMPT`` is a cache hit), the Responses API (a function tool offered
  and not yet answered is called), and embeddings;
- Anthropic messages with cache tokens;
- Gemini's generateContent with cached-content and thinking tokens;
- Bedrock Runtime's Converse (``/model/<id>/converse``) with cache reads and writes.
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

OPENAI_USAGE = {"prompt_tokens": 2048, "completion_tokens": 312, "total_tokens": 2360}
ANTHROPIC_USAGE = {"input_tokens": 150, "cache_read_input_tokens": 4000, "cache_creation_input_tokens": 1000,
                   "output_tokens": 420}
RESPONSES_USAGE = {"input_tokens": 1500, "input_tokens_details": {"cached_tokens": 1024}, "output_tokens": 900,
                   "output_tokens_details": {"reasoning_tokens": 640}, "total_tokens": 2400}
# a chat request whose first message starts with CACHED_PROMPT is answered as a prompt-cache hit
CACHED_PROMPT = "[cached prefix]"
OPENAI_CACHED_USAGE = {"prompt_tokens": 1200, "completion_tokens": 300, "total_tokens": 1500,
                       "prompt_tokens_details": {"cached_tokens": 200}}
TEXT = "Hello from the fake provider."


def _cached(body: dict) -> bool:
    messages = body.get("messages") or [{}]
    return str(messages[0].get("content", "")).startswith(CACHED_PROMPT)


def openai_chat(body: dict, serial: int) -> dict:
    return {
        "id": f"chatcmpl-fake{serial}", "object": "chat.completion", "created": int(time.time()),
        "model": "gpt-4o-mini-2024-07-18", "service_tier": "default", "system_fingerprint": "fp_fake",
        "choices": [{"index": 0, "finish_reason": "stop", "logprobs": None,
                     "message": {"role": "assistant", "content": TEXT, "refusal": None}}],
        "usage": OPENAI_CACHED_USAGE if _cached(body) else OPENAI_USAGE,
    }


def openai_chat_chunks(body: dict, serial: int) -> list[dict]:
    base = {"id": f"chatcmpl-fake{serial}", "object": "chat.completion.chunk", "created": int(time.time()),
            "model": "gpt-4o-mini-2024-07-18", "system_fingerprint": "fp_fake"}
    chunks = [{**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": word + " "},
                                    "finish_reason": None}]} for word in TEXT.split()]
    chunks.append({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
    if (body.get("stream_options") or {}).get("include_usage"):
        chunks.append({**base, "choices": [], "usage": OPENAI_USAGE})
    return chunks


def _tool_to_call(body: dict) -> str | None:
    """The first function tool of a Responses request that has no tool result yet: the model calls it."""
    inputs = body.get("input") if isinstance(body.get("input"), list) else []
    if any(isinstance(item, dict) and item.get("type") == "function_call_output" for item in inputs):
        return None
    return next((tool.get("name") for tool in body.get("tools") or [] if tool.get("type") == "function"), None)


def openai_response(body: dict, serial: int) -> dict:
    tool = _tool_to_call(body)
    output = [{"type": "function_call", "id": f"fc_fake{serial}", "call_id": f"call_fake{serial}", "name": tool,
               "arguments": "{}", "status": "completed"}] if tool else [
        {"type": "message", "id": f"msg_fake{serial}", "status": "completed", "role": "assistant",
         "content": [{"type": "output_text", "text": TEXT, "annotations": []}]}]
    return {
        "id": f"resp_fake{serial}", "object": "response", "created_at": int(time.time()), "status": "completed",
        "model": "o4-mini-2025-04-16", "service_tier": "default", "output": output,
        "parallel_tool_calls": True, "tool_choice": "auto", "tools": [], "usage": RESPONSES_USAGE,
    }


def openai_embeddings(body: dict, serial: int) -> dict:
    inputs = body.get("input") if isinstance(body.get("input"), list) else [body.get("input")]
    return {"object": "list", "model": "text-embedding-3-small",
            "data": [{"object": "embedding", "index": i, "embedding": [0.1, 0.2, 0.3]} for i in range(len(inputs))],
            "usage": {"prompt_tokens": 8 * len(inputs), "total_tokens": 8 * len(inputs)}}


def anthropic_message(body: dict, serial: int) -> dict:
    return {
        "id": f"msg_fake{serial}", "type": "message", "role": "assistant", "model": "claude-sonnet-4-5-20250929",
        "content": [{"type": "text", "text": TEXT}],
        "stop_reason": "end_turn", "stop_sequence": None, "usage": ANTHROPIC_USAGE,
    }


# Gemini: 400 of 1,200 prompt tokens from a cached content, 500 thinking tokens beside 300 of answer
GEMINI_USAGE = {"promptTokenCount": 1200, "cachedContentTokenCount": 400, "candidatesTokenCount": 300,
                "thoughtsTokenCount": 500, "totalTokenCount": 2000}


def gemini_generate(body: dict, serial: int) -> dict:
    return {"candidates": [{"content": {"role": "model", "parts": [{"text": TEXT}]}, "finishReason": "STOP",
                            "index": 0}],
            "usageMetadata": GEMINI_USAGE, "modelVersion": "gemini-2.5-flash", "responseId": f"resp-fake{serial}"}


# Bedrock Converse: inputTokens exclude the cache, as Anthropic's input_tokens do
BEDROCK_USAGE = {"inputTokens": 150, "cacheReadInputTokens": 4000, "cacheWriteInputTokens": 1000, "outputTokens": 420,
                 "totalTokens": 5570}


def bedrock_converse(body: dict, serial: int) -> dict:
    return {"output": {"message": {"role": "assistant", "content": [{"text": TEXT}]}}, "stopReason": "end_turn",
            "usage": BEDROCK_USAGE, "metrics": {"latencyMs": 42}}


ROUTES = {"/v1/chat/completions": openai_chat, "/v1/responses": openai_response,
          "/v1/embeddings": openai_embeddings, "/v1/messages": anthropic_message}
GEMINI_METHOD = ":generateContent"  # POST /v1/models/<model>:generateContent (v1beta too)


class FakeProvider:
    def __init__(self, port: int = 0):
        self.requests: list[tuple[str, dict]] = []
        provider = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
                path = self.path.split("?", 1)[0]
                route = gemini_generate if path.startswith(("/v1/models/", "/v1beta/models/")) \
                    and path.endswith(GEMINI_METHOD) else bedrock_converse if path.startswith("/model/") \
                    and path.endswith("/converse") else ROUTES.get(path)
                if route is None:
                    self.send_error(404)
                    return
                provider.requests.append((path, body))
                serial = len(provider.requests)
                if body.get("stream") and path == "/v1/chat/completions":
                    self._stream(openai_chat_chunks(body, serial))
                    return
                self._json(route(body, serial))

            def _json(self, payload: dict[str, Any]) -> None:
                data = json.dumps(payload).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _stream(self, chunks: list[dict]) -> None:
                events = b"".join(f"data: {json.dumps(chunk)}\n\n".encode() for chunk in chunks) + b"data: [DONE]\n\n"
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Content-Length", str(len(events)))
                self.end_headers()
                self.wfile.write(events)

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
