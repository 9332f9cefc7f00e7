"""Starting an aiohttp application on an endpoint: a clear error when the port is taken, and on loopback
a check of the ``Host`` header against DNS rebinding.

A web page the developer visits can point a name it controls at 127.0.0.1 and then make the browser
send requests to a collector listening there (the class of bug behind CVE-2024-28224 in Ollama). Such a
request carries the attacker's name in ``Host``, so a listener bound to loopback answers only requests
for ``localhost``, ``127.0.0.1``, ``[::1]`` (any port) or a name listed in ``allowed_hosts``.
"""

from __future__ import annotations

import errno
import ipaddress
import ssl
from collections.abc import Iterable

from aiohttp import web

from collector.errors import StartupError

LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})


def is_loopback(host: str) -> bool:
    """Whether a listen address is reachable from this machine only."""
    if host.lower() in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def request_host(header: str) -> str:
    """The name of a ``Host`` header, without its port: ``[::1]:8888`` → ``::1``."""
    header = header.strip().lower()
    if header.startswith("["):
        return header[1:].split("]", 1)[0]
    return header.rsplit(":", 1)[0] if header.count(":") == 1 else header


def host_check(allowed: Iterable[str]):
    """Middleware: 403 for a request whose ``Host`` is not a loopback name or one of ``allowed``."""
    names = LOOPBACK_NAMES | {name.lower() for name in allowed}

    @web.middleware
    async def middleware(request: web.Request, handler) -> web.StreamResponse:
        host = request.headers.get("Host", "")
        if request_host(host) not in names:
            return web.json_response(
                {"error": {"code": "host_not_allowed", "message": (
                    f"Host {host!r} is not allowed: this listener is bound to loopback and answers requests "
                    "for localhost, 127.0.0.1 and [::1] only (a defence against DNS rebinding); "
                    "add the name to allowed_hosts if you reach it through another")}}, status=403)
        return await handler(request)
    return middleware


async def serve(app: web.Application, host: str, port: int, owner: str, ssl_context: ssl.SSLContext | None = None,
                allowed_hosts: Iterable[str] = (), reuse_port: bool = False, **runner_options) -> web.AppRunner:
    """Listen on host:port; ``reuse_port``: the workers of one collector share the port (SO_REUSEPORT)."""
    if is_loopback(host):
        app.middlewares.insert(0, host_check(allowed_hosts))
    runner = web.AppRunner(app, access_log=None, handle_signals=False, **runner_options)
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port, reuse_address=True, reuse_port=reuse_port or None,
                          ssl_context=ssl_context).start()
    except OSError as exc:
        await runner.cleanup()
        reason = "address already in use" if exc.errno == errno.EADDRINUSE else exc.strerror
        raise StartupError(f"{owner}: cannot listen on {host}:{port}: {reason}") from None
    return runner
