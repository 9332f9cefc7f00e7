"""Starting an aiohttp application on an endpoint, with a clear error when the port is taken."""

from __future__ import annotations

import errno
import ssl

from aiohttp import web

from collector.errors import StartupError


async def serve(app: web.Application, host: str, port: int, owner: str, ssl_context: ssl.SSLContext | None = None,
                **runner_options) -> web.AppRunner:
    runner = web.AppRunner(app, access_log=None, handle_signals=False, **runner_options)
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port, reuse_address=True, ssl_context=ssl_context).start()
    except OSError as exc:
        await runner.cleanup()
        reason = "address already in use" if exc.errno == errno.EADDRINUSE else exc.strerror
        raise StartupError(f"{owner}: cannot listen on {host}:{port}: {reason}") from None
    return runner
