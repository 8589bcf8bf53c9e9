"""The event path's figures: the drift service's intake, and what logging costs the predictor.

    .venv/bin/python bench/monitor.py [--seconds 10] [--events 40000]    # make bench-monitor

In one run, on the same bundle (XGBoost, fitted by the fixture code on the
real data's training split, or the synthetic stand-in, announced):

1. `churn serve` alone: REST p50 at c=1 and throughput at c=32 (one customer
   per request, bench/loadgen.py);
2. the drift service (`churn monitor serve`, SQLite) ingesting real events
   (the v2 request of one held-out customer and the model's response, a
   fresh ce-id per pair) sent by 4 pipelined HTTP/1.1 connections as fast as
   it acknowledges them: events/s acknowledged, and predictions/s stored
   (the worker joins, decodes, stores, windows and tests them); and the
   acknowledgement latency of one event at a time (p50 / p99: a slow receiver
   is what KServe's logger sidecar must not meet);
3. `churn serve --log-url <drift service>`: the same two predictor figures
   with every request and response logged to the running drift service.

Printed as a table and written as JSON (`--report`).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import orjson

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
sys.path[:0] = [str(REPO), str(BENCH)]

REQUEST = "org.kubeflow.serving.inference.request"
RESPONSE = "org.kubeflow.serving.inference.response"


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def build_events(frame: Any, model: Any, pairs: int, prefix: str = "bench") -> list[bytes]:
    """Raw HTTP/1.1 POSTs of `pairs` request/response CloudEvents (one customer each)."""
    from tests.fixtures.model_server import v2_body

    rows = [frame.iloc[[i % len(frame)]] for i in range(min(pairs, len(frame)))]
    probabilities = model.predict_proba(frame.iloc[: len(rows)])
    bodies = []
    for i, row in enumerate(rows):
        p = float(probabilities[i])
        response = {
            "model_name": "churn",
            "model_version": "bench",
            "outputs": [
                {"name": "churn_probability", "datatype": "FP32", "shape": [1], "data": [p]},
                {"name": "churn", "datatype": "BOOL", "shape": [1], "data": [p >= 0.5]},
            ],
        }
        bodies.append((orjson.dumps(v2_body(row)), orjson.dumps(response)))
    out = []
    for i in range(pairs):
        request, response = bodies[i % len(bodies)]
        for kind, body in ((REQUEST, request), (RESPONSE, response)):
            head = (
                "POST / HTTP/1.1\r\nhost: bench\r\nce-specversion: 1.0\r\n"
                f"ce-id: {prefix}-{i}\r\nce-type: {kind}\r\nce-source: bench\r\n"
                "ce-inferenceservicename: churn\r\nce-component: predictor\r\n"
                f"content-type: application/json\r\ncontent-length: {len(body)}\r\n\r\n"
            )
            out.append(head.encode() + body)
    return out


async def _responses(reader: asyncio.StreamReader, n: int) -> list[int]:
    statuses = []
    for _ in range(n):
        head = await reader.readuntil(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        statuses.append(int(lines[0].split(b" ")[1]))
        for line in lines[1:]:
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":")[1])
                if length:
                    await reader.readexactly(length)
    return statuses


async def blast(
    port: int, events: list[bytes], connections: int = 4, depth: int = 64
) -> dict[str, Any]:
    """Send every event over `connections` pipelined connections; acknowledgement rate."""
    shares = [events[i::connections] for i in range(connections)]
    statuses: list[int] = []

    async def one(share: list[bytes]) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        for start in range(0, len(share), depth):
            chunk = share[start : start + depth]
            writer.write(b"".join(chunk))
            await writer.drain()
            statuses.extend(await _responses(reader, len(chunk)))
        writer.close()

    t0 = time.perf_counter()
    await asyncio.gather(*(one(s) for s in shares))
    wall = time.perf_counter() - t0
    accepted = sum(1 for s in statuses if s == 202)
    return {
        "events": len(events),
        "accepted": accepted,
        "refused": len(statuses) - accepted,
        "ack_events_per_s": len(events) / wall,
        "wall_s": wall,
    }


async def ack_latency(port: int, events: list[bytes]) -> dict[str, float]:
    """One event at a time on one connection: the acknowledgement latency."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    times = []
    for event in events:
        t0 = time.perf_counter()
        writer.write(event)
        await writer.drain()
        await _responses(reader, 1)
        times.append(time.perf_counter() - t0)
    writer.close()
    ms = np.asarray(times) * 1000
    return {"p50_ms": float(np.percentile(ms, 50)), "p99_ms": float(np.percentile(ms, 99))}


def metric(url: str, name: str) -> float:
    import requests

    total = 0.0
    for line in requests.get(f"{url}/metrics", timeout=10).text.splitlines():
        if line.startswith(name):
            total += float(line.rsplit(" ", 1)[1])
    return total


def start_monitor(
    bundle: Path, work: Path, config_path: Path | None = None
) -> tuple[subprocess.Popen[bytes], str]:
    from servers import _popen, free_port, server_env, wait_http

    port = free_port()
    db = work / f"monitor-{port}.db"
    cmd = [sys.executable, "-m", "churn_core.cli", "monitor", "serve", "--bundle", str(bundle)]
    cmd += ["--port", str(port), "--db-url", f"sqlite:///{db}", "--launch", "none"]
    log_path = work / f"monitor-{port}.log"
    env = server_env()
    if config_path is not None:
        env["CHURN_CONFIG_PATH"] = str(config_path)
    proc, _ = _popen(cmd, log_path, env=env, cwd=REPO)
    url = f"http://127.0.0.1:{port}"
    wait_http(f"{url}/readyz", 90, proc, log_path)
    return proc, url


def stop(proc: subprocess.Popen[bytes]) -> None:
    import signal

    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()


def predictor(
    bundle: Path, work: Path, payload: str, seconds: float, extra: list[str]
) -> dict[str, Any]:
    from servers import start_churn

    server = start_churn("churn", bundle, work, ["--no-grpc", *extra])
    try:
        target = f"{server.url}/v2/models/churn/infer"
        base = [sys.executable, str(BENCH / "loadgen.py"), "rest", target, payload]
        c1 = json.loads(
            subprocess.run(
                [*base, "--requests", "2000"], check=True, capture_output=True, text=True
            ).stdout
        )
        c32 = json.loads(
            subprocess.run(
                [*base, "--concurrency", "32", "--seconds", str(seconds)],
                check=True,
                capture_output=True,
                text=True,
            ).stdout
        )
        time.sleep(1.0)  # the logger's last batch
        logged = {
            kind: metric(server.url, f"churn_payload_events_{kind}_total")
            for kind in ("sent", "failed", "dropped")
        }
    finally:
        server.stop()
    return {"p50_ms": c1["p50_ms"], "c32_rps": c32["throughput_rps"], "events": logged}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="c=32 span per predictor run")
    parser.add_argument("--pairs", type=int, default=20_000, help="request/response pairs sent")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds (medians)")
    parser.add_argument("--report", type=Path, help="write the figures as JSON here")
    args = parser.parse_args(argv)
    os.environ.setdefault("OMP_NUM_THREADS", "1")

    from servers import start_receiver

    from churn_model.bundle import load_model
    from tests.fixtures.bundles import build_bundle, customers, split
    from tests.fixtures.data import real_csv_path

    data = "real" if real_csv_path() else "synthetic (announced: not the real customers)"
    log(f"data: {data}")
    work = Path(tempfile.mkdtemp(prefix="churn-bench-monitor-"))
    train, held_out = split(customers(rows=7043, seed=11, real=True))
    bundle = build_bundle(work / "bundle", "xgboost", train, version="bench")
    model, _ = load_model(bundle)
    payload = work / "one.json"
    from tests.fixtures.model_server import v2_body

    payload.write_bytes(orjson.dumps(v2_body(held_out.iloc[[0]])))

    proc, url = start_monitor(bundle, work)
    port = int(url.rsplit(":", 1)[1])
    receiver, receiver_url, receiver_log = start_receiver(work)
    runs: dict[str, list[dict[str, Any]]] = {"alone": [], "bare": [], "drift": []}
    try:
        for i in range(args.rounds):  # the three set-ups alternate, so load changes hit all
            log(
                f"round {i + 1}/{args.rounds}: churn serve alone, logging to a bare receiver, "
                "logging to the drift service"
            )
            runs["alone"].append(predictor(bundle, work, str(payload), args.seconds, []))
            runs["bare"].append(
                predictor(
                    bundle, work, str(payload), args.seconds, ["--log-url", f"{receiver_url}/"]
                )
            )
            runs["drift"].append(
                predictor(bundle, work, str(payload), args.seconds, ["--log-url", f"{url}/"])
            )
        stop(receiver)
        receiver_log.close()

        log("the drift service: intake")
        events = build_events(held_out, model, args.pairs)
        latency = asyncio.run(ack_latency(port, build_events(held_out, model, 500, "latency")))
        stored0 = metric(url, "churn_drift_predictions_total")
        t0 = time.perf_counter()
        intake = asyncio.run(blast(port, events))
        # every accepted pair is stored once the queue is empty (a pair half of which was
        # refused as overloaded is never stored): wait for the count to settle
        last, settled_at = -1.0, time.perf_counter()
        while True:
            stored = metric(url, "churn_drift_predictions_total") - stored0
            queued = metric(url, "churn_drift_queue_depth")
            now = time.perf_counter()
            if stored != last:
                last, settled_at = stored, now
            elif queued == 0 and now - settled_at > 1.0:
                break
            if now - t0 > 300:
                raise SystemExit("the drift service did not settle within 300 s")
            time.sleep(0.05)
        processed_s = settled_at - t0
        intake["stored_predictions"] = int(stored)
        intake["stored_predictions_per_s"] = stored / processed_s
        intake["processed_events_per_s"] = 2 * stored / processed_s
        intake["ack"] = latency
    finally:
        stop(proc)
        if receiver.poll() is None:
            stop(receiver)

    def median(name: str) -> dict[str, float]:
        return {
            key: float(np.median([r[key] for r in runs[name]])) for key in ("p50_ms", "c32_rps")
        }

    alone, bare, logging_on = median("alone"), median("bare"), median("drift")
    figures = {
        "data": data,
        "rounds": args.rounds,
        "runs": runs,
        "predictor_alone": alone,
        "predictor_logging_receiver": bare,
        "predictor_logging": logging_on,
        "drift_service": intake,
        "ratios": {
            "receiver_throughput": bare["c32_rps"] / alone["c32_rps"],
            "receiver_p50": bare["p50_ms"] / alone["p50_ms"],
            "logging_throughput": logging_on["c32_rps"] / alone["c32_rps"],
            "logging_p50": logging_on["p50_ms"] / alone["p50_ms"],
            "processed_events_per_predictor_answer": intake["processed_events_per_s"]
            / alone["c32_rps"],
        },
    }
    r = figures["ratios"]
    print(f"data: {data}; medians of {args.rounds} alternating rounds")
    print(f"{'':44} {'p50 c=1':>10} {'req/s c=32':>12}")
    print(f"{'churn serve, logging off':44} {alone['p50_ms']:>8.2f}ms {alone['c32_rps']:>12.0f}")
    print(
        f"{'churn serve, logging to a bare receiver':44} "
        f"{bare['p50_ms']:>8.2f}ms {bare['c32_rps']:>12.0f}"
    )
    print(
        f"{'churn serve, logging to the drift service':44} "
        f"{logging_on['p50_ms']:>8.2f}ms {logging_on['c32_rps']:>12.0f}"
    )
    print(
        f"logging to a bare receiver keeps {r['receiver_throughput']:.0%} of the throughput, "
        f"p50 x{r['receiver_p50']:.2f}; to the drift service on the same cores "
        f"{r['logging_throughput']:.0%}, p50 x{r['logging_p50']:.2f}"
    )
    print(
        f"drift service: {intake['ack_events_per_s']:.0f} events/s acknowledged, "
        f"{intake['processed_events_per_s']:.0f} events/s processed "
        f"({intake['stored_predictions_per_s']:.0f} predictions/s stored), "
        f"{intake['refused']} refused; ack p50 {latency['p50_ms']:.2f} ms, "
        f"p99 {latency['p99_ms']:.2f} ms"
    )
    for label, name in (("bare receiver", "bare"), ("drift service", "drift")):
        events = {k: sum(r["events"][k] for r in runs[name]) for k in ("sent", "failed", "dropped")}
        print(
            f"logger, to the {label}: sent {events['sent']:.0f}, failed {events['failed']:.0f}, "
            f"dropped {events['dropped']:.0f} (over all rounds)"
        )
    print(
        f"processed events per second / predictor answers per second at c=32: "
        f"{r['processed_events_per_predictor_answer']:.2f}"
    )
    if args.report:
        args.report.write_text(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
