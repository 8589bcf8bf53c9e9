"""Payload logging: every inference request and response as a CloudEvent, as KServe's logger.

KServe's agent (`logger.mode: all`) POSTs binary-mode CloudEvents to a sink:
the body is the raw payload and the `ce-*` headers say what it is. `churn
serve --log-url URL` does the same in process, so a laptop logs exactly as
the cluster does: one request event and, for an HTTP 200, one response event,
both with `ce-id` = the request id (the v2 `id`, a uuid4 when absent).

Off the request path: `emit` only puts the event on a bounded queue; a
background thread with one `requests.Session` sends each event once (no
retry). A full queue drops the event and counts it; a sink that is down or
slow costs failed or dropped events, never inference time.
"""

from __future__ import annotations

import logging
import os
import queue
import socket
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
import orjson
import requests
from prometheus_client import Counter

logger = logging.getLogger(__name__)

REQUEST_TYPE = "org.kubeflow.serving.inference.request"
RESPONSE_TYPE = "org.kubeflow.serving.inference.response"
DEFAULT_QUEUE_SIZE = 10_000
SEND_TIMEOUT_S = 2.0

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
    """Sends payload events to `url` from a background thread, never blocking the caller.

    Args:
        url: the sink (an http(s) URL).
        queue_size: events held at most; beyond it events are dropped (counted).
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
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"--log-url must be an http(s) URL, got {url!r}")
        if queue_size < 1:
            raise ValueError(f"payload log queue size must be at least 1, got {queue_size}")
        self.url = url
        self.namespace = namespace or os.environ.get("POD_NAMESPACE") or "default"
        self.component = component
        self.endpoint = os.environ.get("K_REVISION") or socket.gethostname()
        self._queue: queue.Queue[Event | None] = queue.Queue(maxsize=queue_size)
        self._thread: threading.Thread | None = None
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
        """Queue one event (`kind`: REQUEST_TYPE or RESPONSE_TYPE); a full queue drops it."""
        headers = {
            "ce-specversion": "1.0",
            "ce-id": request_id,
            "ce-type": kind,
            "ce-source": source_of(model_name),
            "ce-time": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
            "ce-inferenceservicename": model_name,
            "ce-namespace": self.namespace,
            "ce-component": self.component,
            "ce-endpoint": self.endpoint,
            "content-type": content_type,
        }
        try:
            self._queue.put_nowait(Event(model_name, headers, body))
        except queue.Full:
            self._dropped.labels(model_name, "queue_full").inc()

    # -- the sender --------------------------------------------------------------------
    def start(self) -> None:
        """Start the background sender (once)."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="payload-log", daemon=True)
            self._thread.start()
            logger.info("payload logging to %s", self.url)

    def _run(self) -> None:
        session = requests.Session()
        try:
            while True:
                event = self._queue.get()
                if event is None:
                    return
                self._send(session, event)
        finally:
            session.close()

    def _send(self, session: requests.Session, event: Event) -> None:
        try:
            r = session.post(
                self.url, data=event.body, headers=event.headers, timeout=SEND_TIMEOUT_S
            )
        except requests.Timeout:
            self._failed.labels(event.model_name, "timeout").inc()
            return
        except requests.RequestException:
            self._failed.labels(event.model_name, "unreachable").inc()
            return
        if 200 <= r.status_code < 300:
            self._sent.labels(event.model_name).inc()
        else:
            self._failed.labels(event.model_name, f"http_{r.status_code}").inc()

    def stop(self, deadline_s: float = 2.0) -> None:
        """Flush what is queued within `deadline_s`, then drop (count) the rest."""
        thread, self._thread = self._thread, None
        if thread is None:
            return
        end = time.monotonic() + deadline_s
        while time.monotonic() < end:
            try:
                self._queue.put(None, timeout=max(0.0, end - time.monotonic()))
                break
            except queue.Full:
                continue
        thread.join(max(0.0, end - time.monotonic()))
        left = 0
        while True:
            try:
                event = self._queue.get_nowait()
            except queue.Empty:
                break
            if event is not None:
                left += 1
                self._dropped.labels(event.model_name, "shutdown").inc()
        if left:
            logger.warning("payload logging stopped with %d event(s) unsent", left)


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
