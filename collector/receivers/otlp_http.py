"""OTLP/HTTP server: ``POST /v1/traces``, ``/v1/metrics``, ``/v1/logs``; protobuf or JSON, gzip.

Status codes follow the OTLP specification: 400 for a malformed body (with a
google.rpc.Status), 413 for a body larger than ``max_request_body_size`` (the
*decompressed* size: a gzip bomb is refused after inflating at most that much),
415 for an unknown content type or encoding, 503 with ``Retry-After`` when the
pipeline cannot take more. Replies use the request's encoding.
"""

from __future__ import annotations

import zlib

from aiohttp import web
from google.protobuf.message import DecodeError
from google.rpc import code_pb2, status_pb2

from collector.batch import TelemetryBatch
from collector.component import Refused
from collector.http_server import serve
from collector.receivers import otlp_json
from collector.receivers.limits import TooManyItems
from collector.receivers.otlp import HttpProtocol, OtlpReceiver
from collector.signals import Signal

PROTOBUF = "application/x-protobuf"
JSON = "application/json"
_WBITS = {"gzip": 16 + zlib.MAX_WBITS, "x-gzip": 16 + zlib.MAX_WBITS, "deflate": zlib.MAX_WBITS}
_READ_CHUNK = 1 << 16


class RequestRejected(Exception):
    def __init__(self, http_status: int, grpc_code: int, message: str):
        super().__init__(message)
        self.http_status = http_status
        self.grpc_code = grpc_code


def _too_large(limit: int) -> RequestRejected:
    return RequestRejected(413, code_pb2.RESOURCE_EXHAUSTED,
                           f"request body exceeds max_request_body_size ({limit} bytes)")


async def read_body(request: web.Request, limit: int) -> bytes:
    """The raw body, refusing one longer than ``limit`` bytes without reading it all."""
    if request.content_length is not None and request.content_length > limit:
        raise _too_large(limit)
    chunks, size = [], 0
    while chunk := await request.content.read(_READ_CHUNK):
        size += len(chunk)
        if size > limit:
            raise _too_large(limit)
        chunks.append(chunk)
    return b"".join(chunks)


def decompress(body: bytes, encoding: str, limit: int) -> bytes:
    """Inflate a gzip/deflate body, never producing more than ``limit`` bytes."""
    if encoding in ("", "identity", "none"):
        return body
    if encoding not in _WBITS:
        raise RequestRejected(415, code_pb2.INVALID_ARGUMENT,
                              f"unsupported Content-Encoding {encoding!r}; use gzip, deflate or none")
    inflater = zlib.decompressobj(_WBITS[encoding])
    try:
        out = inflater.decompress(body, limit + 1)
    except zlib.error as exc:
        raise RequestRejected(400, code_pb2.INVALID_ARGUMENT, f"body is not valid {encoding}: {exc}") from None
    if len(out) > limit or inflater.unconsumed_tail:
        raise _too_large(limit)
    if not inflater.eof:
        raise RequestRejected(400, code_pb2.INVALID_ARGUMENT, f"{encoding} body is truncated")
    return out


class HttpServer:
    def __init__(self, receiver: OtlpReceiver, config: HttpProtocol):
        self.receiver = receiver
        self.tls = config.tls
        self.host, self.port = config.endpoint
        self.max_body_bytes = config.max_request_body_size
        self.allowed_hosts = config.allowed_hosts
        self.runner: web.AppRunner | None = None

    def _handler(self, signal: Signal):
        async def export(request: web.Request) -> web.Response:
            content_type = request.content_type
            headers = self.receiver.authenticate(request.headers)
            if headers is None:
                return self._status_reply(content_type, 401, code_pb2.UNAUTHENTICATED,
                                          "missing or unknown bearer token (Authorization: Bearer <token>)",
                                          {"WWW-Authenticate": "Bearer"})
            try:
                if content_type not in (PROTOBUF, JSON):
                    raise RequestRejected(415, code_pb2.INVALID_ARGUMENT,
                                          f"unsupported Content-Type {content_type!r}; use {PROTOBUF} or {JSON}")
                body = await read_body(request, self.max_body_bytes)
                body = decompress(body, request.headers.get("Content-Encoding", "").strip().lower(),
                                  self.max_body_bytes)
                batch = await self._decode(signal, content_type, body, headers)
            except RequestRejected as exc:
                if exc.http_status == 400:
                    self.receiver.note_malformed(signal, "http", str(exc), request.headers)
                return self._status_reply(content_type, exc.http_status, exc.grpc_code, str(exc))
            try:
                response = await self.receiver.deliver(batch)
            except TooManyItems as exc:
                return self._status_reply(content_type, 400, code_pb2.INVALID_ARGUMENT, str(exc))
            except Refused as exc:
                status, code = (429, code_pb2.RESOURCE_EXHAUSTED) if exc.exhausted else (503, code_pb2.UNAVAILABLE)
                return self._status_reply(content_type, status, code, f"{exc}; retry later",
                                          {"Retry-After": str(max(1, round(exc.retry_after)))})
            return self._reply(content_type, 200, response)

        return export

    @staticmethod
    async def _decode(signal: Signal, content_type: str, body: bytes, headers: dict[str, str]) -> TelemetryBatch:
        try:
            if content_type == JSON:
                return TelemetryBatch(signal, otlp_json.decode(signal, body), headers)
            return await TelemetryBatch.received(signal, body, headers)
        except (DecodeError, otlp_json.OtlpJsonError) as exc:
            raise RequestRejected(400, code_pb2.INVALID_ARGUMENT,
                                  f"malformed {signal.spec.name} request: {exc}") from None

    @staticmethod
    def _reply(content_type: str, http_status: int, message,
               headers: dict[str, str] | None = None) -> web.Response:
        if content_type == PROTOBUF:
            return web.Response(status=http_status, body=message.SerializeToString(), content_type=PROTOBUF,
                                headers=headers)
        return web.Response(status=http_status, body=otlp_json.encode(None, message), content_type=JSON,
                            headers=headers)

    def _status_reply(self, content_type: str, http_status: int, grpc_code: int, message: str,
                      headers: dict[str, str] | None = None) -> web.Response:
        return self._reply(content_type, http_status, status_pb2.Status(code=grpc_code, message=message),
                           headers=headers)

    async def start(self) -> None:
        app = web.Application(client_max_size=self.max_body_bytes)
        for signal in Signal:
            if signal in self.receiver.consumers:
                app.router.add_post(signal.spec.http_path, self._handler(signal))
        self.runner = await serve(app, self.host, self.port, f"receiver {self.receiver.component_id} (http)",
                                  ssl_context=self.tls.ssl_context() if self.tls else None, auto_decompress=False,
                                  allowed_hosts=self.allowed_hosts, reuse_port=self.receiver.shared_ports)

    async def stop(self, timeout: float) -> None:
        if self.runner is not None:
            await self.runner.shutdown()
            await self.runner.cleanup()
