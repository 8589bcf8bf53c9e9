"""Load generator for the serving benchmark, run as its own process.

asyncio (uvloop when present) with aiohttp for REST and grpc.aio for gRPC,
so the client costs little next to the server. One mode per invocation; the
result is one JSON object on stdout:

    python bench/loadgen.py rest URL BODY_FILE --requests 2000            # latency, c=1
    python bench/loadgen.py rest URL BODY_FILE --concurrency 32 --seconds 5
    python bench/loadgen.py grpc TARGET REQUEST_FILE --requests 2000
    python bench/loadgen.py grpc TARGET REQUEST_FILE --concurrency 32 --seconds 5

BODY_FILE is the raw HTTP body (JSON); REQUEST_FILE a serialized
ModelInferRequest. Every response must be 200 / OK, else the run fails.

With --cpu-pid PID the server's process-tree CPU seconds (procstat.py) are
read after the warm-up and after the measured requests: `server_cpu_s` and
`server_cpu_ms_per_request` cover the measured requests only. The client's
own CPU over the same span is `client_cpu_ms_per_request` (a client near one
core per wall second is the bottleneck, not the server). With --events-url
(bench/receiver.py) the events the server logged for the measured requests
are counted, after waiting for the logger to catch up, and --receiver-pid
bills the receiver's CPU.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

import numpy as np


def summary(latencies_s: list[float], wall_s: float) -> dict[str, Any]:
    if not latencies_s:
        raise SystemExit("no request completed in the measured span")
    ms = np.asarray(latencies_s) * 1000.0
    return {
        "requests": len(ms),
        "p50_ms": float(np.percentile(ms, 50)),
        "p90_ms": float(np.percentile(ms, 90)),
        "p99_ms": float(np.percentile(ms, 99)),
        "mean_ms": float(ms.mean()),
        "throughput_rps": len(ms) / wall_s if wall_s > 0 else 0.0,
        "wall_s": wall_s,
    }


async def drive(
    call: Callable[[], Awaitable[None]],
    concurrency: int,
    requests: int,
    seconds: float,
    warmup: int,
    args: argparse.Namespace,
) -> dict[str, Any]:
    from procstat import tree_cpu_seconds
    from receiver import wait_drained

    cpu_pid, receiver_pid, events_url = args.cpu_pid, args.receiver_pid, args.events_url
    warm_until = time.perf_counter() + args.warmup_seconds
    for i in range(warmup):  # at most `warmup` calls, at most --warmup-seconds (at least 3 calls)
        await call()
        if i >= 2 and time.perf_counter() >= warm_until:
            break
    events0 = wait_drained(events_url) if events_url else 0
    server_cpu0 = tree_cpu_seconds(cpu_pid) if cpu_pid else 0.0
    receiver_cpu0 = tree_cpu_seconds(receiver_pid) if receiver_pid else 0.0
    client_cpu0 = sum(os.times()[:2])
    latencies: list[float] = []
    deadline = time.perf_counter() + seconds if seconds else None
    budget = [requests]

    async def worker() -> None:
        while True:
            if deadline is not None:
                if time.perf_counter() >= deadline:
                    return
            else:
                if budget[0] <= 0:
                    return
                budget[0] -= 1
            t0 = time.perf_counter()
            await call()
            latencies.append(time.perf_counter() - t0)

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    result = summary(latencies, time.perf_counter() - start)
    client_cpu = sum(os.times()[:2]) - client_cpu0
    result["warmup"] = warmup
    result["client_cpu_ms_per_request"] = 1000.0 * client_cpu / len(latencies)
    if events_url:  # the logger sends off the request path: count (and bill) what it still sends
        result["events"] = wait_drained(events_url) - events0
        result["events_per_request"] = result["events"] / len(latencies)
    if receiver_pid:
        receiver_cpu = tree_cpu_seconds(receiver_pid) - receiver_cpu0
        result["receiver_cpu_ms_per_request"] = 1000.0 * receiver_cpu / len(latencies)
    if cpu_pid:
        server_cpu = tree_cpu_seconds(cpu_pid) - server_cpu0
        result["server_cpu_s"] = server_cpu
        result["server_cpu_ms_per_request"] = 1000.0 * server_cpu / len(latencies)
    return result


async def rest(args: argparse.Namespace) -> dict[str, Any]:
    import aiohttp

    body = open(args.payload, "rb").read()
    headers = {"content-type": args.content_type}
    if args.header_length:
        headers["inference-header-content-length"] = str(args.header_length)
    connector = aiohttp.TCPConnector(limit=args.concurrency, force_close=False)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def call() -> None:
            async with session.post(args.target, data=body, headers=headers) as resp:
                data = await resp.read()
                if resp.status != 200:
                    raise SystemExit(f"HTTP {resp.status}: {data[:300]!r}")

        return await drive(call, args.concurrency, args.requests, args.seconds, args.warmup, args)


async def grpc_mode(args: argparse.Namespace) -> dict[str, Any]:
    import grpc
    from kserve.protocol.grpc import grpc_predict_v2_pb2 as pb
    from kserve.protocol.grpc import grpc_predict_v2_pb2_grpc as pbg

    request = pb.ModelInferRequest.FromString(open(args.payload, "rb").read())
    channels = [grpc.aio.insecure_channel(args.target) for _ in range(min(args.concurrency, 4))]
    stubs = [pbg.GRPCInferenceServiceStub(c) for c in channels]
    counter = [0]

    async def call() -> None:
        counter[0] += 1
        await stubs[counter[0] % len(stubs)].ModelInfer(request, timeout=30)

    try:
        return await drive(call, args.concurrency, args.requests, args.seconds, args.warmup, args)
    finally:
        for c in channels:
            await c.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("mode", choices=["rest", "grpc"])
    parser.add_argument("target")
    parser.add_argument("payload")
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=0.0)
    parser.add_argument("--warmup", type=int, default=100, help="warm-up calls, at most")
    parser.add_argument("--warmup-seconds", type=float, default=1.0, help="warm-up time, at most")
    parser.add_argument("--content-type", default="application/json")
    parser.add_argument("--header-length", type=int, default=0)
    parser.add_argument("--cpu-pid", type=int, default=0, help="server pid: measure its CPU")
    parser.add_argument("--receiver-pid", type=int, default=0, help="event receiver pid")
    parser.add_argument("--events-url", default="", help="event receiver URL: count events")
    args = parser.parse_args()
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    result = asyncio.run(rest(args) if args.mode == "rest" else grpc_mode(args))
    json.dump(result, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
