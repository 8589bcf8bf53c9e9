"""Payload logging: every inference request and response as a CloudEvent, as KServe's logger.

KServe's agent (`logger.mode: all`) POSTs binary-mode CloudEvents to a sink:
the body is the raw payload and the `ce-*` headers say what it is. `churn
serve --log-url URL` does the same in process, so a laptop logs exactly as
the cluster does: one request event and, for an HTTP 200, one response event,
both with `ce-id` = the request id (the v2 `id`, a uuid4 when absent).

Off the request path: `emit` only puts the event on a bounded queue; a
sender task on the server's event loop sends each event once (no retry).
An idle sender that is woken waits `FLUSH_INTERVAL_S` (20 ms) before it
writes, so at any rate the events of many requests go out in one write
instead of costing the loop a wake-up and a write per request.
A full queue drops the event and counts it; a sink that is down or
slow costs failed or dropped events, never inference time.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import threading
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import numpy as np
import orjson
from prometheus_client import Counter

logger = logging.getLogger(__name__)

REQUEST_TYPE = "org.kubeflow.serving.inference.request"
RESPONSE_TYPE = "org.kubeflow.serving.inference.response"
DEFAULT_QUEUE_SIZE = 10_000
SEND_TIMEOUT_S = 2.0
BATCH = 256  # events written to the sink at once
FLUSH_INTERVAL_S = 0.02  # an idle sender waits this long for more events before it writes

_lock = threading.Lock()
_counters: tuple[Any, Any, Any] | None = None


def payload_counters() -> tuple[Any, Any, Any]:
    """(sent, failed, dropped) counters, registered in the default registry on first call."""
    global _counters
    with _lock:
        if _counters is None:
            _counters = (
                Counter(
                    "churn_payload_events_sent", "Payload events the sink accepted", ["model_name"]
                ),
                Counter(
                    "churn_payload_events_failed",
                    "Payload events the sink refused or did not answer (not retried)",
                    ["model_name", "reason"],
                ),
                Counter(
                    "churn_payload_events_dropped",
                    "Payload events dropped before sending",
                    ["model_name", "reason"],
                ),
            )
        return _counters


@dataclass(frozen=True)
class Event:
    """One CloudEvent: its headers and its body."""

    model_name: str
    headers: dict[str, str]
    body: bytes


def source_of(model_name: str) -> str:
    """`ce-source`: the revision (K_REVISION) or pod when known, else a local URI."""
    revision = os.environ.get("K_REVISION") or os.environ.get("POD_NAME")
    if revision:
        return f"http://localhost/{revision}"
    return f"http://localhost/churn-serve/{model_name}"


class PayloadLogger:
    """Sends payload events to `url` from a task on the server's event loop, never blocking.

    Events are queued (a bounded deque) by `emit`, on the event loop thread,
    and written by one sender task as individual HTTP/1.1 POSTs pipelined on
    one keep-alive connection: a few microseconds of the loop per event,
    where a client library costs hundreds. Each event is sent once; an
    event the sink refuses, or that meets a broken or silent connection, is
    counted as failed, not retried.

    Args:
        url: the sink (an http(s) URL).
        queue_size: events waiting at most; beyond it events are dropped (counted).
        namespace: `ce-namespace` (POD_NAMESPACE, else "default").
        component: `ce-component`.
    """

    def __init__(
        self,
        url: str,
        queue_size: int = DEFAULT_QUEUE_SIZE,
        namespace: str | None = None,
        component: str = "predictor",
    ) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"--log-url must be an http(s) URL, got {url!r}")
        if queue_size < 1:
            raise ValueError(f"payload log queue size must be at least 1, got {queue_size}")
        self.url = url
        self._host = parts.hostname
        self._port = parts.port or (443 if parts.scheme == "https" else 80)
        self._tls = parts.scheme == "https"
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        self._head = f"POST {target} HTTP/1.1\r\nhost: {parts.netloc}\r\n".encode()
        self.queue_size = queue_size
        self.namespace = namespace or os.environ.get("POD_NAMESPACE") or "default"
        self.component = component
        self.flush_interval_s = FLUSH_INTERVAL_S
        self.endpoint = os.environ.get("K_REVISION") or socket.gethostname()
        self._pending: deque[Event] = deque()
        self._wake: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self._sources: dict[str, str] = {}
        self._sent, self._failed, self._dropped = payload_counters()

    # -- the request path --------------------------------------------------------------
    def emit(
        self,
        kind: str,
        model_name: str,
        request_id: str,
        body: bytes,
        content_type: str,
    ) -> None:
        """Queue one event (`kind`: REQUEST_TYPE or RESPONSE_TYPE); a full queue drops it.

        Called on the event loop's thread (the REST route, the gRPC servicer).
        """
        if len(self._pending) >= self.queue_size or self._closing:
            self._dropped.labels(model_name, "queue_full" if not self._closing else "stopped").inc()
            return
        source = self._sources.get(model_name)
        if source is None:
            source = self._sources[model_name] = source_of(model_name)
        headers = {
            "ce-specversion": "1.0",
            "ce-id": request_id,
            "ce-type": kind,
            "ce-source": source,
            "ce-time": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
            "ce-inferenceservicename": model_name,
            "ce-namespace": self.namespace,
            "ce-component": self.component,
            "ce-endpoint": self.endpoint,
            "content-type": content_type,
        }
        self._pending.append(Event(model_name, headers, body))
        if self._task is None:
            self._wake = asyncio.Event()
            self._task = asyncio.get_running_loop().create_task(self._run())
        assert self._wake is not None
        self._wake.set()

    def _encode(self, event: Event) -> bytes:
        lines = "".join(f"{k}: {v}\r\n" for k, v in event.headers.items())
        return b"".join(
            (
                self._head,
                lines.encode("latin-1", "replace"),
                f"content-length: {len(event.body)}\r\n\r\n".encode(),
                event.body,
            )
        )

    # -- the sender --------------------------------------------------------------------
    async def _run(self) -> None:
        assert self._wake is not None
        reader: asyncio.StreamReader | None = None
        writer: asyncio.StreamWriter | None = None
        while True:
            if not self._pending:
                if self._closing:
                    break
                self._wake.clear()
                await self._wake.wait()
                if not self._closing:  # gather what the next requests add: one write for many
                    await asyncio.sleep(self.flush_interval_s)
                continue
            batch = [self._pending.popleft() for _ in range(min(BATCH, len(self._pending)))]
            done = 0
            try:
                # a connection the sink closed (it restarted) is not reused: events written
                # to it would be lost
                if (
                    writer is None
                    or writer.is_closing()
                    or (reader is not None and reader.at_eof())
                ):
                    reader, writer = await asyncio.wait_for(
                        asyncio.open_connection(self._host, self._port, ssl=self._tls or None),
                        SEND_TIMEOUT_S,
                    )
                assert reader is not None and writer is not None
                writer.write(b"".join(self._encode(e) for e in batch))
                await asyncio.wait_for(writer.drain(), SEND_TIMEOUT_S)
                answers = _Answers(len(batch))
                # the answers are read as they come, many per read: one loop turn per read,
                # not per event, so a saturated event loop does not starve the sender
                async with asyncio.timeout(SEND_TIMEOUT_S):
                    while not answers.complete:
                        chunk = await reader.read(_READ_BYTES)
                        if not chunk:
                            raise EOFError("the sink closed the connection")
                        answers.feed(chunk)
                        for status, keep in answers.take():
                            event = batch[done]
                            done += 1
                            if 200 <= status < 300:
                                self._sent.labels(event.model_name).inc()
                            else:
                                self._failed.labels(event.model_name, f"http_{status}").inc()
                            if not keep:
                                raise ConnectionError("the sink closed the connection")
            except (TimeoutError, OSError, EOFError, ValueError) as err:
                reason = "timeout" if isinstance(err, asyncio.TimeoutError) else "unreachable"
                for event in batch[done:]:
                    self._failed.labels(event.model_name, reason).inc()
                if writer is not None:
                    writer.close()
                reader = writer = None
        if writer is not None:
            writer.close()

    async def aclose(self, deadline_s: float = 2.0) -> None:
        """Flush what is queued within `deadline_s`, then drop (count) the rest."""
        self._closing = True
        task = self._task
        if task is None:
            return
        assert self._wake is not None
        self._wake.set()
        try:
            await asyncio.wait_for(asyncio.shield(task), deadline_s)
        except TimeoutError:
            task.cancel()
        left = len(self._pending)
        for event in self._pending:
            self._dropped.labels(event.model_name, "shutdown").inc()
        self._pending.clear()
        if left:
            logger.warning("payload logging stopped with %d event(s) unsent", left)


_READ_BYTES = 1 << 16


class _Answers:
    """HTTP/1.1 responses parsed from the bytes as they arrive (status, keep-alive each).

    Knows Content-Length and chunked bodies; a malformed answer raises ValueError.
    """

    def __init__(self, expected: int) -> None:
        self.expected = expected
        self.parsed = 0
        self._buffer = b""
        self._ready: list[tuple[int, bool]] = []

    @property
    def complete(self) -> bool:
        """Every expected answer parsed."""
        return self.parsed >= self.expected

    def feed(self, data: bytes) -> None:
        """Add bytes; parse every answer they complete."""
        buf = self._buffer + data
        while self.parsed < self.expected:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                break
            lines = buf[:end].decode("latin-1").split("\r\n")
            status = int(lines[0].split(" ", 2)[1])
            length, chunked, keep = 0, False, True
            for line in lines[1:]:
                name, _, value = line.partition(":")
                name, value = name.strip().lower(), value.strip().lower()
                if name == "content-length":
                    length = int(value)
                elif name == "transfer-encoding" and "chunked" in value:
                    chunked = True
                elif name == "connection" and value == "close":
                    keep = False
            at = end + 4
            if chunked:
                body_end = _chunked_end(buf, at)
                if body_end is None:
                    break
            else:
                body_end = at + length
                if len(buf) < body_end:
                    break
            buf = buf[body_end:]
            self.parsed += 1
            self._ready.append((status, keep))
        self._buffer = buf

    def take(self) -> list[tuple[int, bool]]:
        """The answers parsed since the last call."""
        ready, self._ready = self._ready, []
        return ready


def _chunked_end(buf: bytes, at: int) -> int | None:
    """Where a chunked body starting at `at` ends (after its last chunk), None if incomplete."""
    while True:
        line_end = buf.find(b"\r\n", at)
        if line_end < 0:
            return None
        size = int(buf[at:line_end].split(b";")[0], 16)
        at = line_end + 2 + size + 2
        if len(buf) < at:
            return None
        if size == 0:
            return at


def request_id_of(parsed: Any) -> str | None:
    """The v2 request's `id`, when it has one."""
    if isinstance(parsed, Mapping):
        value = parsed.get("id")
        if isinstance(value, str) and value:
            return value
    return None


def _jsonable(tensor: Any) -> dict[str, Any]:
    data = tensor.data
    if data is None or isinstance(data, np.ndarray) or (not data and tensor._raw_data):
        data = tensor.as_numpy().reshape(-1).tolist()
    values = [v.decode("utf-8", "replace") if isinstance(v, bytes) else v for v in data]
    return {
        "name": tensor.name,
        "shape": list(tensor.shape),
        "datatype": tensor.datatype,
        "data": values,
    }


def grpc_as_json(message: Any, tensors: str) -> bytes:
    """A gRPC request or response (decoded by kserve) in its v2 REST JSON form.

    `tensors`: "inputs" for a request, "outputs" for a response. gRPC traffic is
    logged this way since the sink expects the JSON a REST client would send.
    """
    body: dict[str, Any] = {"id": message.id, "model_name": message.model_name}
    version = getattr(message, "model_version", None)
    if version:
        body["model_version"] = version
    body[tensors] = [_jsonable(t) for t in getattr(message, tensors)]
    return orjson.dumps(body)
