"""The server's limits: body size, batch rows and JSON depth, refused before parsing.

Two real `churn serve` processes with small limits (`--max-body-bytes`,
`--max-batch-rows`): one with the lean v2 REST route, one with KServe's own
(`--kserve-rest`). A body over the limit is a 413 naming it (by its
Content-Length, and while it streams when it has none), a batch over the row
limit 413 on REST and RESOURCE_EXHAUSTED on gRPC, deep JSON a 400; each time
the server answers a good request afterwards.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
import requests

from tests.fixtures.model_server import ServerHandle, serve_bundle, v2_body, v2_request

pytestmark = pytest.mark.integration

MAX_BODY = 64 * 1024
MAX_ROWS = 50
LIMITS = ("--max-body-bytes", str(MAX_BODY), "--max-batch-rows", str(MAX_ROWS))


@pytest.fixture(scope="module", params=["lean", "kserve-rest"])
def server(request, bundle_dir, tmp_path_factory) -> Iterator[ServerHandle]:
    extra = LIMITS + (("--kserve-rest",) if request.param == "kserve-rest" else ())
    handle = serve_bundle(
        bundle_dir("xgboost"), tmp_path_factory.mktemp(f"limits-{request.param}"), extra_args=extra
    )
    yield handle
    handle.stop()


@pytest.fixture(scope="module")
def rows(customer_split):
    frame = customer_split[1]
    return frame[frame["tenure"] > 0]


def infer(server: ServerHandle, body: bytes, **headers: str) -> requests.Response:
    return requests.post(
        f"{server.url}/v2/models/churn/infer",
        data=body,
        headers={"content-type": "application/json", **headers},
        timeout=30,
    )


def assert_still_serves(server: ServerHandle, rows: Any) -> None:
    good = infer(server, orjson.dumps(v2_body(rows.iloc[:2])))
    assert good.status_code == 200, good.text
    assert [o["shape"] for o in good.json()["outputs"]] == [[2], [2]]
    assert server.alive()


def test_body_over_the_limit_is_413_by_content_length(server, rows):
    body = b'{"inputs": [' + b" " * MAX_BODY + b"]}"
    r = infer(server, body)
    assert r.status_code == 413, r.text
    error = r.json()["error"]
    assert str(len(body)) in error and str(MAX_BODY) in error and "CHURN_MAX_BODY_BYTES" in error
    assert_still_serves(server, rows)


def test_body_over_the_limit_is_413_while_it_streams(server, rows):
    """A chunked body (no Content-Length) is cut off at the limit, not read whole."""
    sent = 0

    def chunks() -> Iterator[bytes]:
        nonlocal sent
        yield b'{"inputs": ['
        for _ in range(64):  # 64 x 16 KiB = 1 MiB offered, 16 x the limit
            sent += 16 * 1024
            yield b" " * (16 * 1024)
        yield b"]}"

    try:
        r = requests.post(
            f"{server.url}/v2/models/churn/infer",
            data=chunks(),
            headers={"content-type": "application/json"},
            timeout=30,
        )
    except requests.ConnectionError:
        pytest.fail("the server closed the connection instead of answering 413")
    assert r.status_code == 413, r.text
    assert f"more than {MAX_BODY} bytes" in r.json()["error"]
    assert_still_serves(server, rows)


def test_false_content_length_is_refused_not_trusted(server, rows):
    """A body longer than its Content-Length says: the limit still holds."""
    with socket.create_connection(("127.0.0.1", server.http_port), timeout=10) as sock:
        head = (
            "POST /v2/models/churn/infer HTTP/1.1\r\nHost: x\r\n"
            "Content-Type: application/json\r\nContent-Length: abc\r\n\r\n"
        )
        sock.sendall(head.encode() + b"{}")
        answer = sock.recv(4096)
    assert answer.split(b" ", 2)[1] in (b"400", b"413"), answer[:200]
    assert_still_serves(server, rows)


def test_batch_over_the_row_limit_is_413(server, rows):
    body = v2_body(rows.sample(MAX_ROWS + 1, replace=True, random_state=0))
    r = infer(server, orjson.dumps(body))
    assert r.status_code == 413, r.text
    error = r.json()["error"]
    assert f"{MAX_ROWS + 1} rows" in error and "CHURN_MAX_BATCH_ROWS" in error
    # the shape alone is enough: a huge declared shape is refused before the data is read
    body = v2_body(rows.iloc[:1])
    body["inputs"][0]["shape"] = [10**12]
    r = infer(server, orjson.dumps(body))
    assert r.status_code in (400, 413), r.text
    assert str(10**12) in r.json()["error"]
    # exactly at the limit: served
    ok = infer(server, orjson.dumps(v2_body(rows.sample(MAX_ROWS, replace=True, random_state=1))))
    assert ok.status_code == 200, ok.text
    assert ok.json()["outputs"][0]["shape"] == [MAX_ROWS]


def test_v1_instances_over_the_row_limit_is_413(server, rows):
    from tests.fixtures.model_server import instances

    many = instances(rows.sample(MAX_ROWS + 1, replace=True, random_state=0))
    r = requests.post(f"{server.url}/v1/models/churn:predict", json={"instances": many}, timeout=30)
    assert r.status_code == 413, r.text
    assert "CHURN_MAX_BATCH_ROWS" in r.json()["error"]


@pytest.mark.parametrize("depth", [40, 5000, 100_000])
def test_deep_json_is_refused(server, rows, depth):
    body = b'{"inputs": [{"name": "tenure", "shape": [1], "datatype": "FP64", "data": '
    body += b"[" * depth + b"1" + b"]" * depth + b"}]}"
    if len(body) > MAX_BODY:
        r = infer(server, body)
        assert r.status_code == 413, r.text
    else:
        r = infer(server, body)
        assert r.status_code == 400, r.text
        assert "levels deep" in r.json()["error"] and "limit of 32" in r.json()["error"]
    assert_still_serves(server, rows)


@pytest.mark.parametrize(("column", "value"), [("gender", "x" * 40_000), ("tenure", "9" * 40_000)])
def test_long_values_are_refused_with_a_short_reason(server, rows, column, value):
    body = v2_body(rows.iloc[:1])
    tensor = next(t for t in body["inputs"] if t["name"] == column)
    tensor["data"] = [value]
    r = infer(server, orjson.dumps(body))
    assert r.status_code == 400, r.text
    error = r.json()["error"]
    assert column in error and len(error) < 500, error[:600]
    assert_still_serves(server, rows)


def test_brackets_inside_strings_are_not_nesting(server, rows):
    body = v2_body(rows.iloc[:1])
    body["id"] = "[" * 200 + '\\"{' * 50
    r = infer(server, orjson.dumps(body))
    assert r.status_code == 200, r.text


def test_grpc_message_over_the_limit_is_resource_exhausted(server, rows):
    import grpc
    from kserve.protocol.grpc import grpc_predict_v2_pb2 as pb
    from kserve.protocol.grpc import grpc_predict_v2_pb2_grpc as pbg

    request = pb.ModelInferRequest(model_name="churn", id="x" * (MAX_BODY + 10))
    with grpc.insecure_channel(server.grpc_url) as channel:
        stub = pbg.GRPCInferenceServiceStub(channel)
        with pytest.raises(grpc.RpcError) as err:
            stub.ModelInfer(request, timeout=30)
    assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert str(MAX_BODY) in (err.value.details() or "")


def test_grpc_batch_over_the_row_limit_is_resource_exhausted(server, rows):
    import asyncio

    import grpc
    from kserve import InferenceGRPCClient

    async def call() -> Any:
        client = InferenceGRPCClient(server.grpc_url, timeout=30)
        try:
            many = v2_request(rows.sample(MAX_ROWS + 1, replace=True, random_state=0))
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await client.infer(many)
            good = await client.infer(v2_request(rows.iloc[:2]))
            return err.value, good
        finally:
            await client.close()

    error, good = asyncio.run(call())
    assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert f"{MAX_ROWS + 1} rows" in error.details() and "CHURN_MAX_BATCH_ROWS" in error.details()
    assert good.outputs[0].shape == [2]
