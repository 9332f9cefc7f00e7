"""Load generator: pre-built 512-span requests sent by concurrent OTLP clients.

``python -m bench.loadgen --transport grpc|http|json --port P --seconds S --concurrency C --connections N``.
Prints ``measuring`` when the timed window starts and a JSON summary when it ends.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time

import aiohttp
import grpc

from bench.workload import build_requests
from collector.receivers import otlp_json
from collector.signals import Signal


def prepare(transport: str, requests: list[bytes]) -> list[bytes]:
    if transport != "json":
        return requests
    request_type = Signal.TRACES.spec.request_type
    return [otlp_json.encode(Signal.TRACES, request_type.FromString(r)) for r in requests]


async def run(args: argparse.Namespace) -> dict:
    bodies = prepare(args.transport, build_requests(args.distinct_requests, args.spans, models=args.models))
    latencies: list[float] = []
    errors = 0
    measuring = False
    stop_at = time.monotonic() + args.warmup + args.seconds

    if args.transport == "grpc":
        # a channel of its own per connection: SO_REUSEPORT spreads connections, not requests, over workers
        channels = [grpc.aio.insecure_channel(f"127.0.0.1:{args.port}",
                                              options=[("grpc.max_send_message_length", -1),
                                                       ("grpc.use_local_subchannel_pool", 1)])
                    for _ in range(args.connections)]
        exports = [channel.unary_unary(Signal.TRACES.grpc_method) for channel in channels]

        async def send(body: bytes, offset: int) -> bool:
            try:
                await exports[offset % len(exports)](body, timeout=30)
                return True
            except grpc.aio.AioRpcError:
                return False
    else:
        session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=args.concurrency))
        url = f"http://127.0.0.1:{args.port}/v1/traces"
        content_type = "application/json" if args.transport == "json" else "application/x-protobuf"

        async def send(body: bytes, offset: int) -> bool:
            async with session.post(url, data=body, headers={"Content-Type": content_type}) as reply:
                await reply.read()
                return reply.status == 200

    async def worker(offset: int) -> None:
        nonlocal errors
        index = offset
        while time.monotonic() < stop_at:
            body = bodies[index % len(bodies)]
            index += args.concurrency
            started = time.monotonic()
            ok = await send(body, offset)
            if measuring:
                if ok:
                    latencies.append(time.monotonic() - started)
                else:
                    errors += 1

    workers = [asyncio.create_task(worker(i)) for i in range(args.concurrency)]
    await asyncio.sleep(args.warmup)
    measuring = True
    latencies.clear()
    window_start = time.monotonic()
    print("measuring", flush=True)
    await asyncio.gather(*workers)
    elapsed = time.monotonic() - window_start
    if args.transport == "grpc":
        for channel in channels:
            await channel.close()
    else:
        await session.close()
    latencies.sort()
    return {
        "requests": len(latencies),
        "spans": len(latencies) * args.spans,
        "errors": errors,
        "elapsed_s": elapsed,
        "p50_ms": 1000 * latencies[len(latencies) // 2] if latencies else None,
        "p99_ms": 1000 * latencies[int(len(latencies) * 0.99)] if latencies else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--transport", choices=("grpc", "http", "json"), default="grpc")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--warmup", type=float, default=2)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--connections", type=int, default=1, help="gRPC connections the requests are spread over")
    parser.add_argument("--spans", type=int, default=512)
    parser.add_argument("--distinct-requests", type=int, default=400,
                        help="requests are not resent while there are fresh ones (the ledger would dedupe them)")
    parser.add_argument("--models", type=int, default=1)
    summary = asyncio.run(run(parser.parse_args()))
    print(json.dumps(summary), flush=True)


if __name__ == "__main__":
    main()
