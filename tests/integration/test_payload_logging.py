"""`churn serve --log-url`: KServe-style CloudEvents reach a real HTTP receiver.

The receiver is a small threaded HTTP server on 127.0.0.1 that records every
event (headers and body); a slow receiver sleeps before answering.
"""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import orjson
import pytest
import requests

from tests.fixtures.model_server import serve_bundle, v2_body

pytestmark = pytest.mark.integration

REQUEST = "org.kubeflow.serving.inference.request"
RESPONSE = "org.kubeflow.serving.inference.response"


class Sink:
    """A real CloudEvents receiver: records (headers, body) of every POST."""

    def __init__(self, delay_s: float = 0.0) -> None:
        self.events: list[tuple[dict[str, str], bytes]] = []
        lock = threading.Lock()
        sink = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                if delay_s:
                    time.sleep(delay_s)
                with lock:
                    sink.events.append(({k.lower(): v for k, v in self.headers.items()}, body))
                self.send_response(200)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/events"

    def of(self, ce_id: str, count: int, wait_s: float = 15.0) -> list[tuple[dict, bytes]]:
        """The events with `ce_id`, once `count` of them arrived (or the wait is over)."""
        end = time.monotonic() + wait_s
        while True:
            found = [e for e in list(self.events) if e[0].get("ce-id") == ce_id]
            if len(found) >= count or time.monotonic() > end:
                return found
            time.sleep(0.05)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def sink():
    s = Sink()
    yield s
    s.close()


@pytest.fixture(scope="module")
def logged_server(sink, bundle_dir, tmp_path_factory):
    handle = serve_bundle(
        bundle_dir("xgboost"),
        tmp_path_factory.mktemp("logged"),
        extra_args=("--log-url", sink.url),
    )
    yield handle
    handle.stop()


def metric(server, name: str) -> float:
    text = requests.get(f"{server.url}/metrics", timeout=10).text
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name):
            total += float(line.rsplit(" ", 1)[1])
    return total


@pytest.mark.parametrize("model", ["churn", "churn-explainer"])
def test_every_request_yields_a_request_and_a_response_event(
    logged_server, sink, customer_split, model
):
    body = orjson.dumps(v2_body(customer_split[1].iloc[:3], id=f"log-{model}"))
    r = requests.post(
        f"{logged_server.url}/v2/models/{model}/infer",
        data=body,
        headers={"content-type": "application/json"},
        timeout=30,
    )
    assert r.status_code == 200, r.text
    events = sink.of(f"log-{model}", 2)
    by_type = {h["ce-type"]: (h, b) for h, b in events}
    assert sorted(by_type) == [REQUEST, RESPONSE] and len(events) == 2
    (req_h, req_b), (res_h, res_b) = by_type[REQUEST], by_type[RESPONSE]
    assert req_b == body  # the raw payload, as received
    assert res_b == r.content
    for h in (req_h, res_h):
        assert h["ce-specversion"] == "1.0"
        assert h["ce-inferenceservicename"] == model
        assert h["ce-component"] == "predictor"
        assert h["ce-source"] == f"http://localhost/churn-serve/{model}"
        assert h["ce-namespace"] and h["ce-endpoint"] and h["ce-time"].endswith("Z")
        assert h["content-type"] == "application/json"


def test_a_request_without_id_is_logged_under_the_id_it_is_answered_with(
    logged_server, sink, customer_split
):
    r = requests.post(
        f"{logged_server.url}/v2/models/churn/infer",
        json=v2_body(customer_split[1].iloc[:1]),
        timeout=30,
    )
    assert r.status_code == 200, r.text
    answered = r.json()["id"]
    assert len(answered) == 36
    assert sorted(h["ce-type"] for h, _ in sink.of(answered, 2)) == [REQUEST, RESPONSE]


def test_a_refused_request_yields_only_a_request_event(logged_server, sink, customer_split):
    body = v2_body(customer_split[1].iloc[:1], id="log-bad")
    body["inputs"] = [i for i in body["inputs"] if i["name"] != "tenure"]
    r = requests.post(f"{logged_server.url}/v2/models/churn/infer", json=body, timeout=30)
    assert r.status_code == 400
    r = requests.post(
        f"{logged_server.url}/v2/models/churn/infer",
        json={"id": "log-canary", **v2_body(customer_split[1].iloc[:1])},
        timeout=30,
    )
    assert r.status_code == 200
    sink.of("log-canary", 2)  # events are sent in order: the canary's came after
    events = sink.of("log-bad", 1, wait_s=0)
    assert [h["ce-type"] for h, _ in events] == [REQUEST]
    assert orjson.loads(events[0][1]) == body


def test_a_receiver_that_is_down_never_fails_inference(bundle_dir, tmp_path, customer_split):
    from tests.fixtures.ports import free_port

    handle = serve_bundle(
        bundle_dir("xgboost"),
        tmp_path,
        extra_args=("--log-url", f"http://127.0.0.1:{free_port()}/down", "--no-grpc"),
    )
    try:
        for _ in range(5):
            r = requests.post(
                f"{handle.url}/v2/models/churn/infer",
                json=v2_body(customer_split[1].iloc[:2]),
                timeout=30,
            )
            assert r.status_code == 200, r.text
        end = time.monotonic() + 15
        while metric(handle, "churn_payload_events_failed_total") < 10:
            assert time.monotonic() < end, "failed events were not counted"
            time.sleep(0.1)
    finally:
        handle.stop()


def test_a_slow_receiver_costs_dropped_events_not_inference(bundle_dir, tmp_path, customer_split):
    slow = Sink(delay_s=1.0)
    handle = serve_bundle(
        bundle_dir("xgboost"),
        tmp_path,
        extra_args=("--log-url", slow.url, "--log-queue-size", "1", "--no-grpc"),
    )
    try:
        for _ in range(10):
            r = requests.post(
                f"{handle.url}/v2/models/churn/infer",
                json=v2_body(customer_split[1].iloc[:2]),
                timeout=30,
            )
            assert r.status_code == 200, r.text
        # 20 events, one in flight and one queued at a time: the rest dropped and counted
        text = requests.get(f"{handle.url}/metrics", timeout=10).text
        assert 'churn_payload_events_dropped_total{model_name="churn",reason="queue_full"}' in text
        assert metric(handle, "churn_payload_events_dropped_total") >= 10
    finally:
        handle.stop()
        slow.close()


def test_grpc_requests_are_logged_as_their_v2_json(logged_server, sink, customer_split):
    import asyncio

    from kserve import InferenceGRPCClient
    from kserve.protocol.infer_type import InferRequest

    from tests.fixtures.model_server import v2_request

    frame = customer_split[1].iloc[:2]
    request = v2_request(frame, binary=True)  # raw contents: logged as JSON data all the same
    request.id = "log-grpc"
    bad = InferRequest(
        model_name="churn", infer_inputs=request.inputs[1:], request_id="log-grpc-bad"
    )

    async def call():
        client = InferenceGRPCClient(logged_server.grpc_url, timeout=30)
        try:
            answer = await client.infer(request)
            with pytest.raises(Exception, match="missing column"):
                await client.infer(bad)
            return answer
        finally:
            await client.close()

    answer = asyncio.run(call())
    events = {h["ce-type"]: (h, b) for h, b in sink.of("log-grpc", 2)}
    assert sorted(events) == [REQUEST, RESPONSE]
    sent = orjson.loads(events[REQUEST][1])
    assert sent["id"] == "log-grpc" and sent["model_name"] == "churn"
    by_name = {t["name"]: t for t in sent["inputs"]}
    assert by_name["Contract"]["data"] == frame["Contract"].tolist()
    assert by_name["tenure"]["data"] == frame["tenure"].astype(int).tolist()
    got = orjson.loads(events[RESPONSE][1])
    outputs = {t["name"]: t["data"] for t in got["outputs"]}
    assert outputs["churn"] == answer.get_output_by_name("churn").as_numpy().tolist()
    assert events[REQUEST][0]["content-type"] == "application/json"
    assert [h["ce-type"] for h, _ in sink.of("log-grpc-bad", 1)] == [REQUEST]


def test_kserve_stock_route_carries_the_ids_too(bundle_dir, tmp_path, customer_split):
    handle = serve_bundle(
        bundle_dir("xgboost"), tmp_path, extra_args=("--kserve-rest", "--no-grpc")
    )
    try:
        frame = customer_split[1].iloc[:2]
        body = v2_body(frame, id="stock-1")
        ids = frame["customerID"].tolist()
        body["inputs"].append(
            {"name": "customerID", "shape": [2], "datatype": "BYTES", "data": ids}
        )
        r = requests.post(f"{handle.url}/v2/models/churn/infer", json=body, timeout=30)
        assert r.status_code == 200, r.text
        out = r.json()
        assert out["id"] == "stock-1"
        assert {o["name"]: o["data"] for o in out["outputs"]}["customerID"] == ids
    finally:
        handle.stop()
