"""The one way commands talk to a running collector's API: JSON over HTTP, errors as CommandError."""

from __future__ import annotations

import argparse
import json
import os
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from typing import Any

from collector.errors import CommandError


class ApiError(CommandError):
    """The API answered with an error; ``status`` is its HTTP status."""

    def __init__(self, message: str, status: int):
        super().__init__(message)
        self.status = status


TOKEN_VARIABLE = "GENAI_COLLECTOR_TOKEN"


def add_token_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--token", default=os.environ.get(TOKEN_VARIABLE),
                        help=f"bearer token for the API when cost_api.auth is on (default: ${TOKEN_VARIABLE})")


class ApiClient:
    """``ApiClient("http://127.0.0.1:8888").get("/api/v1/costs", {"group_by": "model"})`` → the JSON body."""

    def __init__(self, url: str, token: str | None = None, timeout: float = 30.0):
        self.url = url.rstrip("/")
        self.headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.timeout = timeout

    def get(self, path: str, params: Mapping[str, str] | None = None, timeout: float | None = None) -> Any:
        """The JSON body; ApiError for an error answer, CommandError when the API cannot be reached."""
        target = self.url + path + (f"?{urllib.parse.urlencode(params)}" if params else "")
        request = urllib.request.Request(target, headers=self.headers)
        try:
            with urllib.request.urlopen(request, timeout=timeout or self.timeout) as reply:
                return json.loads(reply.read())
        except urllib.error.HTTPError as exc:
            try:
                message = json.loads(exc.read())["error"]["message"]
            except (ValueError, KeyError, TypeError):
                message = f"HTTP {exc.code}"
            if exc.code == 401:
                message += f" (give it with --token or ${TOKEN_VARIABLE})"
            raise ApiError(f"{self.url}: {message}", exc.code) from None
        except (urllib.error.URLError, OSError, ValueError) as exc:
            raise CommandError(f"cannot reach the collector API at {self.url}: {getattr(exc, 'reason', exc)}") \
                from None

    def answers(self, path: str, timeout: float = 3.0) -> Any | None:
        """The JSON body, or None when nothing answers there (doctor's probes); ApiError when the API answers
        with an error."""
        try:
            return self.get(path, timeout=timeout)
        except ApiError:
            raise
        except CommandError:
            return None
