"""Bearer tokens (constant-time comparison) and server TLS settings, shared by the receivers and the API."""

from __future__ import annotations

import functools
import hmac
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated

from collector.schema import ExistingFile, Invalid, MinLength

TENANT_HEADER = "tenant"  # the authenticated tenant, as genai_attribution reads it: header.tenant


def bearer(headers: Mapping[str, str]) -> str:
    value = headers.get("authorization", "")
    scheme, _, token = value.partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""


def find_token(presented: str, known: Mapping[str, str]) -> str | None:
    """The value (tenant or role) of the token presented, comparing with every known token in constant time."""
    found = None
    for token, value in known.items():
        if hmac.compare_digest(presented.encode(), token.encode()) and presented:
            found = value
    return found


TOKEN_TOO_SHORT = "at least 16 characters (is the environment variable set?)"
Token = Annotated[str, MinLength(16, TOKEN_TOO_SHORT)]


@dataclass(frozen=True)
class BearerToken:
    token: Token
    tenant: str


@dataclass(frozen=True)
class BearerAuth:
    """``auth: {bearer_tokens: [{token: ..., tenant: acme}, ...]}`` of a receiver."""

    bearer_tokens: tuple[BearerToken, ...] | None = None

    def check(self) -> None:
        if self.bearer_tokens is not None and not self.bearer_tokens:
            raise Invalid("bearer_tokens", "a list of {token, tenant}")

    @property
    def enabled(self) -> bool:
        return bool(self.bearer_tokens)

    @functools.cached_property
    def tenants(self) -> dict[str, str]:
        return {t.token: t.tenant for t in self.bearer_tokens or ()}

    def tenant(self, headers: Mapping[str, str]) -> str | None:
        return find_token(bearer(headers), self.tenants)


def request_headers(raw: Mapping[str, str], tenant: str | None) -> dict[str, str]:
    """Headers a batch carries: lower-case, without the credentials, with the authenticated tenant (a client
    cannot set ``tenant`` itself when auth is on)."""
    headers = {k.lower(): v for k, v in raw.items() if k.lower() != "authorization"}
    if tenant is not None:
        headers[TENANT_HEADER] = tenant
    return headers


@dataclass(frozen=True)
class ServerTls:
    """``tls`` of a server; ``client_ca_file`` makes clients present a certificate it signed (mTLS)."""

    cert_file: ExistingFile
    key_file: ExistingFile
    client_ca_file: ExistingFile | None = None

    def ssl_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.cert_file, self.key_file)
        if self.client_ca_file is not None:
            context.verify_mode = ssl.CERT_REQUIRED
            context.load_verify_locations(self.client_ca_file)
        return context
