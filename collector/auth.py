"""Bearer tokens (constant-time comparison) and server TLS settings, shared by the receivers and the API."""

from __future__ import annotations

import hmac
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from collector.component import BuildContext
from collector.config import Section

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


class BearerAuth:
    """``auth: {bearer_tokens: [{token: ..., tenant: acme}, ...]}`` of a receiver."""

    def __init__(self, tokens: dict[str, str]):
        self.tokens = tokens

    @classmethod
    def from_section(cls, section: Section) -> BearerAuth | None:
        if not section.keys():
            section.finish()
            return None
        entries = section.raw("bearer_tokens", [])
        if not isinstance(entries, list) or not entries:
            raise section.error("bearer_tokens", "a list of {token, tenant}")
        tokens = {}
        for index, entry in enumerate(entries):
            item = Section(section.doc, (*section.path, "bearer_tokens", index), entry)
            token = item.str("token")
            if len(token) < 16:
                raise item.error("token", "at least 16 characters (is the environment variable set?)")
            tokens[token] = item.str("tenant")
            item.finish()
        section.finish()
        return cls(tokens)

    def tenant(self, headers: Mapping[str, str]) -> str | None:
        return find_token(bearer(headers), self.tokens)


def request_headers(raw: Mapping[str, str], tenant: str | None) -> dict[str, str]:
    """Headers a batch carries: lower-case, without the credentials, with the authenticated tenant (a client
    cannot set ``tenant`` itself when auth is on)."""
    headers = {k.lower(): v for k, v in raw.items() if k.lower() != "authorization"}
    if tenant is not None:
        headers[TENANT_HEADER] = tenant
    return headers


@dataclass(frozen=True)
class ServerTls:
    cert_file: Path
    key_file: Path
    client_ca_file: Path | None

    @classmethod
    def from_section(cls, section: Section, context: BuildContext) -> ServerTls | None:
        if not section.keys():
            section.finish()
            return None
        tls = cls(context.existing_file(section, "cert_file", required=True),
                  context.existing_file(section, "key_file", required=True),
                  context.existing_file(section, "client_ca_file"))
        section.finish()
        return tls

    def ssl_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.cert_file, self.key_file)
        if self.client_ca_file is not None:
            context.verify_mode = ssl.CERT_REQUIRED
            context.load_verify_locations(self.client_ca_file)
        return context
