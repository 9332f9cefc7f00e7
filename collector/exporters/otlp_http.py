"""``otlphttp`` exporter: OTLP/HTTP with protobuf bodies (``POST {endpoint}/v1/traces`` etc.)."""

from __future__ import annotations

import email.utils
import gzip
import ssl
import time
from dataclasses import dataclass

import aiohttp

from collector.batch import TelemetryBatch
from collector.component import BuildContext
from collector.exporters.network import NetworkExporterConfig, PermanentError, QueuedExporter, RetryableError
from collector.schema import Invalid
from collector.signals import Signal

_RETRYABLE_STATUS = {429, 502, 503, 504}


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header (delta-seconds or an HTTP date)."""
    if not value:
        return None
    if value.strip().isdigit():
        return float(value)
    try:
        return max(0.0, email.utils.parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError):
        return None


@dataclass(frozen=True)
class OtlpHttpConfig(NetworkExporterConfig):
    """``endpoint`` is a base URL (``/v1/<signal>`` is appended); the ``<signal>_endpoint`` keys are full
    URLs that replace it for one signal."""

    traces_endpoint: str | None = None
    metrics_endpoint: str | None = None
    logs_endpoint: str | None = None

    def urls(self) -> dict[Signal, str]:
        return {signal: getattr(self, f"{signal.spec.name}_endpoint")
                or self.endpoint.rstrip("/") + signal.spec.http_path for signal in Signal}

    def check(self) -> None:
        for signal, url in self.urls().items():
            if not url.startswith(("http://", "https://")):
                key = f"{signal.spec.name}_endpoint"
                raise Invalid(key if getattr(self, key) else "endpoint", f"{url!r} is not an http:// or https:// URL")


class OtlpHttpExporter(QueuedExporter):
    config_class = OtlpHttpConfig

    def __init__(self, config: OtlpHttpConfig, context: BuildContext):
        super().__init__(config, context)
        self.urls = config.urls()
        self.session: aiohttp.ClientSession | None = None

    def _ssl_context(self) -> ssl.SSLContext | bool:
        tls = self.config.tls
        context = ssl.create_default_context(cafile=str(tls.ca_file) if tls.ca_file else None)
        if tls.cert_file and tls.key_file:
            context.load_cert_chain(str(tls.cert_file), str(tls.key_file))
        if tls.insecure_skip_verify:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        return context

    async def connect(self) -> None:
        self.session = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=self.config.timeout),
            connector=aiohttp.TCPConnector(ssl=self._ssl_context(), limit=self.num_consumers),
        )

    async def close(self) -> None:
        if self.session is not None:
            await self.session.close()

    async def send(self, batch: TelemetryBatch) -> None:
        assert self.session is not None
        body = batch.serialized()
        headers = {**self.headers, "Content-Type": "application/x-protobuf"}
        if self.config.compression == "gzip":
            body = gzip.compress(body, compresslevel=6)
            headers["Content-Encoding"] = "gzip"
        try:
            async with self.session.post(self.urls[batch.signal], data=body, headers=headers) as reply:
                content = await reply.read()
                status = reply.status
                retry_after = parse_retry_after(reply.headers.get("Retry-After"))
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise RetryableError(f"{type(exc).__name__}: {exc}") from None
        if status in _RETRYABLE_STATUS:
            raise RetryableError(f"HTTP {status}", retry_after)
        if not 200 <= status < 300:
            raise PermanentError(f"HTTP {status}: {content[:200]!r}")
        response = batch.signal.spec.response_type()
        if reply.content_type == "application/x-protobuf" and content:
            response.ParseFromString(content)
            self.check_partial_success(batch, response)
