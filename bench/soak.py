"""Soak: `churn serve` under load for minutes, logging every payload to a running drift service.

    .venv/bin/python bench/soak.py [--seconds 300] [--concurrency 32] [--warmup 60]   # make soak

One `churn serve --log-url` (REST, XGBoost bundle fitted on the real data's
training split, or the synthetic stand-in, announced) logs to one `churn
monitor serve` (SQLite). An aiohttp client keeps `--concurrency` requests in
flight (one held-out customer each, cycling over them) for `--warmup`
seconds, then for `--seconds` more while the resident memory of both
processes is sampled. Then the event path is reconciled:

- every request answered 200 (errors: any other status or a broken request);
- RSS growth of each server from the end of the warm-up to the end, under 10%;
- logger: requests x 2 = events sent + failed + dropped;
- drift service: events received = the logger's sent; every received event is
  in a joined pair, unmatched, a duplicate, or still waiting for its partner;
  predictions stored (rows in the database) = joined pairs x customers per
  request, none refused after acceptance.

The figures are printed (and written as JSON with `--report`); the exit
status is 1 when a check fails. tests/integration/test_soak.py runs the
same checks for 60 s.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
sys.path[:0] = [str(REPO), str(BENCH)]

RSS_LIMIT = 0.10  # growth after the warm-up
SAMPLE_S = 5.0


def log(message: str) -> None:
    print(f"[soak] {message}", file=sys.stderr, flush=True)


def rss_bytes(pid: int) -> int:
    """Resident memory of one process (VmRSS), 0 when it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        return 0
    return 0


def metric_sum(text: str, name: str, **labels: str) -> float:
    """The sum of every sample of `name` (Prometheus text) whose labels include `labels`."""
    total = 0.0
    for line in text.splitlines():
        if not line.startswith(name) or line[len(name) : len(name) + 1] not in ("{", " "):
            continue
        series, value = line.rsplit(" ", 1)
        if all(f'{k}="{v}"' in series for k, v in labels.items()):
            total += float(value)
    return total


@dataclass
class Load:
    """What the client saw."""

    ok: int = 0
    errors: int = 0
    first_errors: list[str] = field(default_factory=list)
    latencies: list[float] = field(default_factory=list)

    def error(self, what: str) -> None:
        self.errors += 1
        if len(self.first_errors) < 5:
            self.first_errors.append(what[:300])


async def drive(
    url: str, bodies: list[bytes], concurrency: int, seconds: float, load: Load
) -> None:
    """`concurrency` workers POST the bodies in turn for `seconds`."""
    import aiohttp

    deadline = time.perf_counter() + seconds
    counter = [0]
    headers = {"content-type": "application/json"}
    connector = aiohttp.TCPConnector(limit=concurrency)
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:

        async def worker() -> None:
            while time.perf_counter() < deadline:
                body = bodies[counter[0] % len(bodies)]
                counter[0] += 1
                t0 = time.perf_counter()
                try:
                    async with session.post(url, data=body, headers=headers) as resp:
                        data = await resp.read()
                        if resp.status == 200:
                            load.ok += 1
                        else:
                            load.error(f"HTTP {resp.status}: {data[:200]!r}")
                except (TimeoutError, aiohttp.ClientError) as err:
                    load.error(f"{type(err).__name__}: {err}")
                load.latencies.append(time.perf_counter() - t0)

        await asyncio.gather(*(worker() for _ in range(concurrency)))


async def sample_rss(pids: dict[str, int], until: float, out: dict[str, list[int]]) -> None:
    """RSS of each process every SAMPLE_S seconds until `until` (perf_counter)."""
    while True:
        for name, pid in pids.items():
            out.setdefault(name, []).append(rss_bytes(pid))
        left = until - time.perf_counter()
        if left <= 0:
            return
        await asyncio.sleep(min(SAMPLE_S, left))


def _get(url: str) -> Any:
    import requests

    r = requests.get(url, timeout=10)
    r.raise_for_status()
    return r


def wait_settled(serve_url: str, monitor_url: str, requests_sent: int, timeout: float) -> None:
    """Until the logger has accounted for every event and the drift service's queue is empty."""
    deadline = time.monotonic() + timeout
    last: tuple[float, ...] = ()
    stable_since = time.monotonic()
    while time.monotonic() < deadline:
        text = _get(f"{serve_url}/metrics").text
        logged = sum(
            metric_sum(text, f"churn_payload_events_{k}_total")
            for k in ("sent", "failed", "dropped")
        )
        mtext = _get(f"{monitor_url}/metrics").text
        now = (
            logged,
            metric_sum(mtext, "churn_drift_events_received_total"),
            metric_sum(mtext, "churn_drift_predictions_total"),
            metric_sum(mtext, "churn_drift_queue_depth"),
        )
        if now != last:
            last, stable_since = now, time.monotonic()
        elif logged >= 2 * requests_sent and now[3] == 0 and time.monotonic() - stable_since > 2:
            return
        time.sleep(0.5)
    raise TimeoutError(f"the event path did not settle in {timeout:.0f} s: {last}")


def reconcile(
    serve_metrics: str,
    monitor_metrics: str,
    status: dict[str, Any],
    stored_rows: int,
    requests_sent: int,
    rows_per_request: int,
) -> dict[str, Any]:
    """The event counts on both sides and the differences that must be zero."""
    sent = metric_sum(serve_metrics, "churn_payload_events_sent_total")
    failed = metric_sum(serve_metrics, "churn_payload_events_failed_total")
    dropped = metric_sum(serve_metrics, "churn_payload_events_dropped_total")
    received = metric_sum(monitor_metrics, "churn_drift_events_received_total")
    unmatched = metric_sum(monitor_metrics, "churn_drift_events_unmatched_total")
    duplicates = metric_sum(monitor_metrics, "churn_drift_events_duplicate_total")
    rejected = metric_sum(monitor_metrics, "churn_drift_events_rejected_total")
    rejected_by = {
        reason: metric_sum(monitor_metrics, "churn_drift_events_rejected_total", reason=reason)
        for reason in (
            "overloaded",
            "store_unavailable",
            "bad_body",
            "bad_request",
            "bad_response",
            "mismatch",
            "internal",
            "not_cloudevent",
            "too_large",
        )
    }
    predictions = metric_sum(monitor_metrics, "churn_drift_predictions_total")
    waiting = int(status.get("waiting_halves", 0))
    joined_events = received - unmatched - duplicates - waiting
    pairs = joined_events / 2
    refused_after_accept = sum(
        rejected_by[r] for r in ("bad_body", "bad_request", "bad_response", "mismatch", "internal")
    )
    return {
        "requests": requests_sent,
        "logger": {"sent": sent, "failed": failed, "dropped": dropped},
        "drift_service": {
            "received": received,
            "rejected": rejected,
            "rejected_by": {k: v for k, v in rejected_by.items() if v},
            "unmatched": unmatched,
            "duplicates": duplicates,
            "waiting_halves": waiting,
            "joined_pairs": pairs,
            "predictions_counted": predictions,
            "predictions_stored": stored_rows,
        },
        "lost": {
            # requests x 2 = events sent + failed + dropped
            "logger": 2 * requests_sent - (sent + failed + dropped),
            # events received by the drift service = the logger's sent
            "intake": sent - received,
            # every joined pair stored, one row per customer
            "storage": pairs * rows_per_request
            - refused_after_accept * rows_per_request
            - stored_rows,
            "counter_vs_rows": predictions - stored_rows,
        },
    }


def growth(samples: list[int], warm_index: int) -> dict[str, float]:
    """RSS at the end of the warm-up, at the end and at the peak after it; the growth share."""
    base = samples[warm_index]
    after = samples[warm_index:]
    return {
        "warm_mb": base / 2**20,
        "end_mb": after[-1] / 2**20,
        "peak_mb": max(after) / 2**20,
        "growth": (after[-1] - base) / base if base else float("inf"),
    }


def failures(figures: dict[str, Any]) -> list[str]:
    """The checks a soak must pass, as sentences; [] when all pass."""
    out = []
    if figures["errors"]:
        out.append(f"{figures['errors']} request(s) failed: {figures['first_errors']}")
    for name, rss in figures["rss"].items():
        if rss["growth"] >= RSS_LIMIT:
            out.append(
                f"{name}: RSS grew {rss['growth']:.1%} after the warm-up "
                f"({rss['warm_mb']:.0f} -> {rss['end_mb']:.0f} MB)"
            )
    for where, n in figures["events"]["lost"].items():
        if n != 0:
            out.append(f"events unaccounted for ({where}): {n}")
    return out


def soak(
    bundle: Path,
    frame: Any,
    work: Path,
    *,
    seconds: float,
    warmup: float,
    concurrency: int = 32,
    rows_per_request: int = 1,
) -> dict[str, Any]:
    """Run the soak against fresh servers in `work`; the figures (see the module docstring)."""
    from monitor import start_monitor, stop
    from procstat import tree_cpu_seconds
    from servers import start_churn

    from tests.fixtures.model_server import v2_body

    work.mkdir(parents=True, exist_ok=True)
    frame = frame.reset_index(drop=True)
    bodies = [
        orjson.dumps(v2_body(frame.iloc[i : i + rows_per_request]))
        for i in range(0, len(frame) - rows_per_request + 1, rows_per_request)
    ]
    # the dedupe memory holds every (ce-id, ce-type) for monitor.events.dedupe_seconds: it
    # grows with the rate for that long, then stays level. The soak sets the window to the
    # warm-up so that its plateau is reached before RSS is measured (a leak still shows)
    import yaml

    from churn_core.config import expand_env

    source = REPO / "model_config.yaml"
    raw = yaml.safe_load(expand_env(source.read_text(), source))
    events = raw["monitor"]["events"]
    events["dedupe_seconds"] = warmup
    events["join_timeout_seconds"] = min(events["join_timeout_seconds"], warmup)
    config_path = work / "model_config.yaml"
    config_path.write_text(yaml.safe_dump(raw))
    log(f"dedupe window and join timeout: {warmup:.0f} s (the warm-up)")
    monitor_proc, monitor_url = start_monitor(bundle, work, config_path)
    server = None
    try:
        server = start_churn("churn", bundle, work, ["--no-grpc", "--log-url", f"{monitor_url}/"])
        target = f"{server.url}/v2/models/churn/infer"
        pids = {"predictor": server.pid, "drift_service": monitor_proc.pid}
        load = Load()
        samples: dict[str, list[int]] = {}
        cpu: dict[str, float] = {}  # CPU seconds over the measured span

        async def run() -> int:
            log(f"warm-up: {warmup:.0f} s at concurrency {concurrency}")
            await drive(target, bodies, concurrency, warmup, load)
            warm_index = 0
            for name, pid in pids.items():
                samples[name] = [rss_bytes(pid)]
                cpu[name] = -tree_cpu_seconds(pid)
            log(f"soak: {seconds:.0f} s at concurrency {concurrency}")
            t0 = time.perf_counter()
            await asyncio.gather(
                drive(target, bodies, concurrency, seconds, load),
                sample_rss(pids, t0 + seconds, samples),
            )
            for name, pid in pids.items():
                samples[name].append(rss_bytes(pid))
                cpu[name] += tree_cpu_seconds(pid)
            return warm_index

        warm_index = asyncio.run(run())
        requests_sent = load.ok + load.errors
        log(f"{requests_sent} requests; waiting for the event path to settle")
        wait_settled(server.url, monitor_url, requests_sent, timeout=120)
        serve_metrics = _get(f"{server.url}/metrics").text
        monitor_metrics = _get(f"{monitor_url}/metrics").text
        status = _get(f"{monitor_url}/status").json()
        from churn_monitoring.store import MonitorStore

        port = monitor_url.rsplit(":", 1)[1]
        store = MonitorStore(f"sqlite:///{work / f'monitor-{port}.db'}")
        try:
            stored_rows = store.counts()["predictions"]
            windows = store.counts()["windows"]
        finally:
            store.close()
        import numpy as np

        ms = np.asarray(load.latencies) * 1000.0
        return {
            "seconds": seconds,
            "warmup_s": warmup,
            "concurrency": concurrency,
            "requests": requests_sent,
            "errors": load.errors,
            "first_errors": load.first_errors,
            "throughput_rps": requests_sent / (seconds + warmup),
            "p50_ms": float(np.percentile(ms, 50)),
            "p99_ms": float(np.percentile(ms, 99)),
            "rss": {name: growth(s, warm_index) for name, s in samples.items()},
            "cpu_cores": {name: c / seconds for name, c in cpu.items()},
            "events": reconcile(
                serve_metrics,
                monitor_metrics,
                status,
                stored_rows,
                requests_sent,
                rows_per_request,
            ),
            "windows_closed": windows,
        }
    finally:
        if server is not None:
            server.stop()
        stop(monitor_proc)


def report(figures: dict[str, Any]) -> str:
    """The figures as a few lines of text."""
    ev = figures["events"]
    lg, ds = ev["logger"], ev["drift_service"]
    lines = [
        f"soak: {figures['seconds']:.0f} s after a {figures['warmup_s']:.0f} s warm-up, "
        f"concurrency {figures['concurrency']}",
        f"requests {figures['requests']} ({figures['throughput_rps']:.0f}/s, "
        f"p50 {figures['p50_ms']:.1f} ms, p99 {figures['p99_ms']:.1f} ms), "
        f"errors {figures['errors']}",
    ]
    for name, rss in figures["rss"].items():
        lines.append(
            f"RSS {name}: {rss['warm_mb']:.0f} MB after warm-up -> {rss['end_mb']:.0f} MB "
            f"(peak {rss['peak_mb']:.0f} MB): growth {rss['growth']:+.1%}; "
            f"CPU {figures['cpu_cores'][name]:.2f} cores"
        )
    lines += [
        f"logger: {2 * figures['requests']} events = sent {lg['sent']:.0f} + failed "
        f"{lg['failed']:.0f} + dropped {lg['dropped']:.0f} "
        f"({lg['dropped'] / max(1, 2 * figures['requests']):.0%} dropped: counted, not lost)",
        f"drift service: received {ds['received']:.0f}, rejected {ds['rejected']:.0f} "
        f"{ds['rejected_by'] or ''}, unmatched {ds['unmatched']:.0f}, duplicates "
        f"{ds['duplicates']:.0f}, waiting {ds['waiting_halves']}; joined pairs "
        f"{ds['joined_pairs']:.0f}, predictions stored {ds['predictions_stored']} "
        f"in {figures['windows_closed']} windows",
        "events lost: " + ", ".join(f"{k} {v:.0f}" for k, v in ev["lost"].items()),
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=300.0, help="measured span")
    parser.add_argument("--warmup", type=float, default=60.0, help="warm-up before measuring")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--report", type=Path, help="write the figures as JSON here")
    args = parser.parse_args(argv)
    os.environ.setdefault("OMP_NUM_THREADS", "1")

    from tests.fixtures.bundles import build_bundle, customers, split
    from tests.fixtures.data import real_csv_path

    data = "real" if real_csv_path() else "synthetic (announced: not the real customers)"
    log(f"data: {data}")
    work = Path(tempfile.mkdtemp(prefix="churn-soak-"))
    train, held_out = split(customers(rows=7043, seed=11, real=True))
    bundle = build_bundle(work / "bundle", "xgboost", train, version="soak")
    figures = soak(
        bundle,
        held_out,
        work / "run",
        seconds=args.seconds,
        warmup=args.warmup,
        concurrency=args.concurrency,
    )
    figures["data"] = data
    print(f"data: {data}")
    print(report(figures))
    if args.report:
        args.report.write_text(json.dumps(figures, indent=2))
    problems = failures(figures)
    for problem in problems:
        print(f"FAILED: {problem}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
