"""A downstream OTLP/gRPC backend that counts what it receives without parsing it.

``python -m bench.sink PORT``; prints ``{"requests": N, "bytes": B}`` on SIGTERM.
"""

from __future__ import annotations

import asyncio
import json
import signal
import sys

import grpc

from collector.signals import Signal


async def main(port: int) -> None:
    counts = {"requests": 0, "bytes": 0}

    async def export(request: bytes, context) -> bytes:
        counts["requests"] += 1
        counts["bytes"] += len(request)
        return b""

    server = grpc.aio.server(options=[("grpc.max_receive_message_length", -1)])
    server.add_generic_rpc_handlers(tuple(
        grpc.method_handlers_generic_handler(s.spec.grpc_service,
                                             {"Export": grpc.unary_unary_rpc_method_handler(export)})
        for s in Signal))
    server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    print("ready", flush=True)
    await stop.wait()
    await server.stop(0)
    print(json.dumps(counts), flush=True)


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1])))
