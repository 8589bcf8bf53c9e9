"""The drift service over HTTP: a fast CloudEvents intake in front of one worker thread.

KServe's logger sidecar holds every event in memory until the receiver
answers (kserve#6167), so `POST /` only checks the CloudEvent headers and the
body size and queues the event (202): decoding, joining, storing and testing
happen on the worker thread (`Monitor`). A full queue, or a database that
cannot be reached, answers 503 (counted), never a slow 200.

Routes:
    POST /          a binary-mode CloudEvent (request or response): 202, 400, 413, 503
    POST /labels    delayed labels (CSV: customerID, churned, date): the count stored
    GET  /metrics   Prometheus text format
    GET  /healthz   200 while the process serves
    GET  /readyz    200 when the database answers and the intake accepts events, else 503
    GET  /status    the windows, trigger state and triggers, JSON
"""

from __future__ import annotations

import asyncio
import logging
import queue
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable, MutableMapping
from pathlib import Path
from typing import Any

import orjson

from churn_core.errors import ChurnError
from churn_monitoring.events import EventRejected, parse_event
from churn_monitoring.labels import read_labels
from churn_monitoring.service import Incoming, Monitor
from churn_monitoring.store import StoreUnavailable

logger = logging.getLogger(__name__)

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]

BATCH = 1000  # events the worker takes at once (one database transaction)
TICK_S = 1.0  # the worker wakes at least this often to expire and age windows
RETRY_S = 1.0  # after a database error, wait this long before retrying the batch
LABELS_MAX_BYTES = 64 * 1024 * 1024


class Worker:
    """The thread that feeds accepted events to the `Monitor`, in batches.

    A database error keeps the batch and retries it (the events are held,
    not lost); while it lasts `available` is False and the intake answers 503.
    """

    def __init__(self, monitor: Monitor, queue_size: int) -> None:
        self.monitor = monitor
        self.queue: queue.Queue[Incoming] = queue.Queue(maxsize=queue_size)
        self.available = True
        self.lock = threading.Lock()  # the Monitor is used by one thread at a time
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="monitor-worker", daemon=True)

    def start(self) -> None:
        """Start the thread."""
        self._thread.start()

    def stop(self, timeout_s: float = 10.0) -> None:
        """Process what is queued, then stop."""
        self._stop.set()
        self._thread.join(timeout_s)

    def _take(self) -> list[Incoming]:
        try:
            first = self.queue.get(timeout=TICK_S)
        except queue.Empty:
            return []
        batch = [first]
        while len(batch) < BATCH:
            try:
                batch.append(self.queue.get_nowait())
            except queue.Empty:
                break
        return batch

    def _run(self) -> None:
        batch: list[Incoming] = []
        while True:
            if not batch:
                if self._stop.is_set() and self.queue.empty():
                    return
                batch = self._take()
            try:
                with self.lock:
                    taken, batch = batch, []  # joined once: held by the Monitor on failure
                    if taken:
                        self.monitor.handle(taken)
                    self.monitor.tick()
                if not self.available:
                    logger.info("the database answers again: accepting events")
                self.available = True
            except StoreUnavailable as err:
                if self.available:
                    logger.error("database unavailable, holding the joined events: %s", err)
                self.available = False
                time.sleep(RETRY_S)
            except Exception:  # never let one bad batch stop the service
                logger.exception("processing a batch of events failed")
                self.monitor.metrics.rejected.labels("internal").inc()
            self.monitor.metrics.queue_depth.set(self.queue.qsize())


def _headers(scope: Scope) -> dict[str, str]:
    return {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}


async def _body(receive: Receive, limit: int) -> bytes | None:
    """The request body, or None as soon as it grows over `limit` bytes."""
    chunks, size = [], 0
    while True:
        message = await receive()
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
        if not message.get("more_body"):
            return b"".join(chunks)


async def _answer(
    send: Send, status: int, body: Any, content_type: str = "application/json"
) -> None:
    data = body if isinstance(body, bytes) else orjson.dumps(body)
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", content_type.encode()),
                (b"content-length", str(len(data)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": data})


def build_app(
    worker: Worker, max_body_bytes: int
) -> Callable[[Scope, Receive, Send], Awaitable[None]]:
    """The ASGI application of one drift service."""
    monitor = worker.monitor
    metrics = monitor.metrics

    async def events(scope: Scope, receive: Receive, send: Send) -> None:
        headers = _headers(scope)
        declared = headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > max_body_bytes:
            metrics.rejected.labels("too_large").inc()
            await _answer(send, 413, {"error": f"event body over {max_body_bytes} bytes"})
            return
        body = await _body(receive, max_body_bytes)
        if body is None:
            metrics.rejected.labels("too_large").inc()
            await _answer(send, 413, {"error": f"event body over {max_body_bytes} bytes"})
            return
        try:
            event = parse_event(headers, body, max_body_bytes)
        except EventRejected as err:
            metrics.rejected.labels(err.reason).inc()
            await _answer(send, 400, {"error": str(err), "reason": err.reason})
            return
        if not worker.available:
            metrics.rejected.labels("store_unavailable").inc()
            await _answer(send, 503, {"error": "the drift service's database is unavailable"})
            return
        try:
            worker.queue.put_nowait(Incoming(event, time.time()))
        except queue.Full:
            metrics.rejected.labels("overloaded").inc()
            await _answer(send, 503, {"error": "the drift service is overloaded; event refused"})
            return
        await _answer(send, 202, b"")

    async def labels(scope: Scope, receive: Receive, send: Send) -> None:
        body = await _body(receive, LABELS_MAX_BYTES)
        if body is None:
            await _answer(send, 413, {"error": f"labels body over {LABELS_MAX_BYTES} bytes"})
            return
        try:
            stored = await asyncio.to_thread(_store_labels, worker, body)
        except StoreUnavailable as err:
            await _answer(send, 503, {"error": str(err)})
            return
        except ChurnError as err:
            await _answer(send, 400, {"error": str(err)})
            return
        await _answer(send, 200, {"stored": stored})

    async def ready(scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await asyncio.to_thread(monitor.store.ping)
        except StoreUnavailable as err:
            await _answer(send, 503, {"ready": False, "error": str(err)})
            return
        if not worker.available:  # ready only once the intake accepts events again
            error = "the database answers again; the held events are being stored"
            await _answer(send, 503, {"ready": False, "error": error})
            return
        await _answer(send, 200, {"ready": True})

    async def status(scope: Scope, receive: Receive, send: Send) -> None:
        def read() -> dict[str, Any]:
            with worker.lock:
                return monitor.status()

        try:
            await _answer(send, 200, await asyncio.to_thread(read))
        except StoreUnavailable as err:
            await _answer(send, 503, {"error": str(err)})

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["type"] != "http":
            return
        method, path = scope["method"], scope["path"]
        if method == "POST" and path == "/":
            await events(scope, receive, send)
        elif method == "GET" and path == "/metrics":
            await _answer(send, 200, metrics.exposition(), "text/plain; version=0.0.4")
        elif method == "GET" and path == "/healthz":
            await _answer(send, 200, {"alive": True})
        elif method == "GET" and path == "/readyz":
            await ready(scope, receive, send)
        elif method == "GET" and path == "/status":
            await status(scope, receive, send)
        elif method == "POST" and path == "/labels":
            await labels(scope, receive, send)
        else:
            await _answer(send, 404, {"error": f"no route {method} {path}"})

    return app


def _store_labels(worker: Worker, body: bytes) -> int:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "labels.csv"
        path.write_bytes(body)
        labels = read_labels(str(path))
    with worker.lock:
        return worker.monitor.ingest_labels(labels)
