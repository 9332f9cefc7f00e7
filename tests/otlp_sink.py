"""A real OTLP backend for tests: gRPC and HTTP servers that record every export request."""

from __future__ import annotations

import gzip
import threading
import time
from concurrent import futures
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import grpc

from collector.signals import Signal


class OtlpSink:
    """Records decoded export requests per signal; ``fail_with`` makes it answer with an error."""

    def __init__(self) -> None:
        self.requests: dict[Signal, list] = {s: [] for s in Signal}
        self.headers: list[dict[str, str]] = []
        self.lock = threading.Lock()
        self.fail_with: grpc.StatusCode | None = None
        self.grpc_server: grpc.Server | None = None
        self.http_server: ThreadingHTTPServer | None = None

    def record(self, signal: Signal, body: bytes, headers: dict[str, str]) -> None:
        message = signal.spec.request_type.FromString(body)
        with self.lock:
            self.requests[signal].append(message)
            self.headers.append(headers)

    def spans(self) -> list:
        with self.lock:
            return [span for req in self.requests[Signal.TRACES] for rs in req.resource_spans
                    for ss in rs.scope_spans for span in ss.spans]

    def count(self, signal: Signal) -> int:
        from collector.signals import count_items
        with self.lock:
            return sum(count_items(signal, r) for r in self.requests[signal])

    def wait_for(self, signal: Signal, count: int, timeout: float = 15.0) -> int:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.count(signal) >= count:
                return self.count(signal)
            time.sleep(0.05)
        return self.count(signal)

    # gRPC
    def start_grpc(self, port: int) -> None:
        def handler(signal: Signal):
            def export(request: bytes, context: grpc.ServicerContext) -> bytes:
                if self.fail_with is not None:
                    context.abort(self.fail_with, "sink told to fail")
                self.record(signal, request, dict(context.invocation_metadata()))
                return b""
            return grpc.unary_unary_rpc_method_handler(export)

        self.grpc_server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        self.grpc_server.add_generic_rpc_handlers(tuple(
            grpc.method_handlers_generic_handler(s.spec.grpc_service, {"Export": handler(s)}) for s in Signal))
        self.grpc_server.add_insecure_port(f"127.0.0.1:{port}")
        self.grpc_server.start()

    # HTTP (protobuf)
    def start_http(self, port: int) -> None:
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                if self.headers.get("Content-Encoding") == "gzip":
                    body = gzip.decompress(body)
                signal = next(s for s in Signal if s.spec.http_path == self.path)
                sink.record(signal, body, {k.lower(): v for k, v in self.headers.items()})
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        self.http_server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        threading.Thread(target=self.http_server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        if self.grpc_server is not None:
            self.grpc_server.stop(0)
        if self.http_server is not None:
            self.http_server.shutdown()
            self.http_server.server_close()
