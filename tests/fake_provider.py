"""A local stand-in for the OpenAI and Anthropic HTTP APIs, answering with fixed usage.

Real provider SDKs talk to it through their ``base_url``; nothing leaves 127.0.0.1.
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

OPENAI_USAGE = {"prompt_tokens": 2048, "completion_tokens": 312, "total_tokens": 2360}
ANTHROPIC_USAGE = {"input_tokens": 150, "cache_read_input_tokens": 4000, "cache_creation_input_tokens": 1000,
                   "output_tokens": 420}


def openai_chat(body: dict, serial: int) -> dict:
    return {
        "id": f"chatcmpl-fake{serial}", "object": "chat.completion", "created": int(time.time()),
        "model": "gpt-4o-mini-2024-07-18", "service_tier": "default", "system_fingerprint": "fp_fake",
        "choices": [{"index": 0, "finish_reason": "stop", "logprobs": None,
                     "message": {"role": "assistant", "content": "Hello from the fake provider.", "refusal": None}}],
        "usage": OPENAI_USAGE,
    }


def anthropic_message(body: dict, serial: int) -> dict:
    return {
        "id": f"msg_fake{serial}", "type": "message", "role": "assistant", "model": "claude-sonnet-4-5-20250929",
        "content": [{"type": "text", "text": "Hello from the fake provider."}],
        "stop_reason": "end_turn", "stop_sequence": None, "usage": ANTHROPIC_USAGE,
    }


ROUTES = {"/v1/chat/completions": openai_chat, "/v1/messages": anthropic_message}


class FakeProvider:
    def __init__(self, port: int = 0):
        self.requests: list[tuple[str, dict]] = []
        provider = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
                path = self.path.split("?", 1)[0]
                route = ROUTES.get(path)
                if route is None:
                    self.send_error(404)
                    return
                provider.requests.append((path, body))
                payload = json.dumps(route(body, len(provider.requests))).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

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
