"""Bad requests: each gets the right 4xx and a clear message, and the server keeps serving.

Every case goes to the real `churn serve`; after each, a good request must
still answer 200.
"""

from __future__ import annotations

import copy
import re
import struct
from collections.abc import Callable
from typing import Any

import orjson
import pytest
import requests

from churn_model.contract import FEATURE_NAMES
from tests.fixtures.model_server import instances, v2_body

pytestmark = pytest.mark.integration

INDEX = {name: i for i, name in enumerate(FEATURE_NAMES)}


@pytest.fixture(scope="module")
def base(customer_split):
    frame = customer_split[1]
    return frame[frame["tenure"] > 0].iloc[:1]


def edit(column: str, **changes: Any) -> Callable[[dict], dict]:
    def apply(body: dict) -> dict:
        body["inputs"][INDEX[column]].update(changes)
        return body

    return apply


def drop(column: str) -> Callable[[dict], dict]:
    def apply(body: dict) -> dict:
        del body["inputs"][INDEX[column]]
        return body

    return apply


def add(tensor: dict) -> Callable[[dict], dict]:
    def apply(body: dict) -> dict:
        body["inputs"].append(tensor)
        return body

    return apply


def top(**changes: Any) -> Callable[[dict], dict]:
    def apply(body: dict) -> dict:
        body.update(changes)
        return body

    return apply


def two_rows_one_short(body: dict) -> dict:
    for tensor in body["inputs"]:
        tensor["data"] = tensor["data"] * 2
        tensor["shape"] = [2]
    body["inputs"][INDEX["tenure"]].update(data=[1], shape=[1])
    return body


# (id, model, transform of a good v2 body, status, regex the error must match)
V2_CASES: list[tuple[str, str, Callable[[dict], Any], int, str]] = [
    ("missing-column", "churn", drop("tenure"), 400, "missing column.*tenure"),
    (
        "extra-column",
        "churn",
        add({"name": "Churn", "shape": [1], "datatype": "BYTES", "data": ["Yes"]}),
        400,
        "unexpected input 'Churn'",
    ),
    (
        "empty-customer-id",
        "churn",
        add({"name": "customerID", "shape": [1], "datatype": "BYTES", "data": [""]}),
        400,
        "'customerID': value '' at row 0 is not an id",
    ),
    (
        "customer-id-count",
        "churn-explainer",
        add({"name": "customerID", "shape": [2], "datatype": "BYTES", "data": ["a", "b"]}),
        400,
        "'customerID' has 2 values, expected 1",
    ),
    (
        "duplicate-input",
        "churn",
        lambda b: add(copy.deepcopy(b["inputs"][0]))(b),
        400,
        "'gender' appears more than once",
    ),
    (
        "bytes-as-fp64",
        "churn",
        edit("Contract", datatype="FP64", data=[1.0]),
        400,
        "'Contract' has datatype FP64, expected BYTES",
    ),
    (
        "number-as-bytes",
        "churn",
        edit("tenure", datatype="BYTES", data=["12"]),
        400,
        "'tenure' has datatype BYTES",
    ),
    (
        "bool-datatype",
        "churn",
        edit("SeniorCitizen", datatype="BOOL", data=[True]),
        400,
        "'SeniorCitizen' has datatype BOOL",
    ),
    (
        "unknown-datatype",
        "churn",
        edit("tenure", datatype="INT128"),
        400,
        "'tenure' has datatype INT128",
    ),
    (
        "shape-count-mismatch",
        "churn",
        edit("tenure", shape=[2]),
        400,
        "'tenure': shape \\[2\\] says 2 values, data has 1",
    ),
    (
        "shape-rank",
        "churn",
        edit("tenure", shape=[1, 1, 1]),
        400,
        "'tenure': shape \\[1, 1, 1\\], expected \\[n\\] or \\[n, 1\\]",
    ),
    (
        "columns-differ-in-length",
        "churn",
        two_rows_one_short,
        400,
        "'tenure' has 1 values, expected 2",
    ),
    (
        "unknown-category",
        "churn",
        edit("Contract", data=["Weekly"]),
        400,
        "'Contract': unknown category 'Weekly'",
    ),
    (
        "category-wrong-case",
        "churn",
        edit("Contract", data=["month-to-month"]),
        400,
        "unknown category 'month-to-month'",
    ),
    (
        "number-for-category",
        "churn",
        edit("gender", data=[1]),
        400,
        "'gender': expected a string, got int 1",
    ),
    (
        "object-for-category",
        "churn",
        edit("gender", data=[{"a": 1}]),
        400,
        "'gender': expected strings",
    ),
    ("negative-tenure", "churn", edit("tenure", data=[-1]), 400, "'tenure': value -1 out of range"),
    (
        "tenure-too-large",
        "churn",
        edit("tenure", data=[500]),
        400,
        "'tenure': value 500 out of range",
    ),
    (
        "tenure-fractional",
        "churn",
        edit("tenure", data=[1.5]),
        400,
        "'tenure'.*1.5 is not an integer",
    ),
    (
        "senior-out-of-range",
        "churn",
        edit("SeniorCitizen", data=[2]),
        400,
        "'SeniorCitizen': value 2 out of range",
    ),
    (
        "charge-not-a-number",
        "churn",
        edit("MonthlyCharges", data=["cheap"]),
        400,
        "'MonthlyCharges': expected a number, got str 'cheap'",
    ),
    (
        "charge-boolean",
        "churn",
        edit("MonthlyCharges", data=[True]),
        400,
        "'MonthlyCharges': expected a number, got bool True",
    ),
    (
        "charge-null",
        "churn",
        edit("MonthlyCharges", data=[None]),
        400,
        "'MonthlyCharges': value nan is not a finite number",
    ),
    (
        "charge-huge",
        "churn",
        edit("MonthlyCharges", data=[1e12]),
        400,
        "'MonthlyCharges': value 1000000000000.0 out of range",
    ),
    (
        "total-null-tenure-positive",
        "churn",
        edit("TotalCharges", data=[None]),
        400,
        "NaN is allowed only when tenure == 0",
    ),
    (
        "empty-batch",
        "churn",
        lambda b: [t.update(shape=[0], data=[]) for t in b["inputs"]] and b,
        400,
        "empty batch",
    ),
    ("ragged-data", "churn", edit("tenure", data=[[1], [1, 2]], shape=[2]), 400, "'tenure'"),
    ("fp16-json", "churn", edit("MonthlyCharges", datatype="FP16"), 400, "FP16"),
    (
        "unknown-output",
        "churn",
        top(outputs=[{"name": "score"}]),
        400,
        "requested output 'score' does not exist",
    ),
    (
        "content-type-np",
        "churn",
        top(parameters={"content_type": "np"}),
        400,
        "content_type 'np' is not supported",
    ),
    ("no-inputs", "churn", lambda b: {"id": "x"}, 400, '"inputs"'),
    ("inputs-not-list", "churn", top(inputs={"gender": "Male"}), 400, '"inputs"'),
    ("body-is-array", "churn", lambda b: [b], 400, "JSON object"),
    (
        "input-without-shape",
        "churn",
        lambda b: [t.pop("shape") for t in b["inputs"][:1]] and b,
        400,
        "'gender'.*shape",
    ),
    (
        "input-without-datatype",
        "churn",
        lambda b: [t.pop("datatype") for t in b["inputs"][:1]] and b,
        400,
        "datatype",
    ),
    ("data-not-list", "churn", edit("gender", data="Male"), 400, "'gender'.*data"),
    ("id-not-string", "churn", top(id=42), 400, '"id"'),
    (
        "explainer-unknown-category",
        "churn-explainer",
        edit("PaymentMethod", data=["Bitcoin"]),
        400,
        "'PaymentMethod': unknown category 'Bitcoin'",
    ),
    ("unknown-model", "nope", lambda b: b, 404, "nope"),
]


def assert_still_serving(server, base):
    r = requests.post(f"{server.url}/v2/models/churn/infer", json=v2_body(base), timeout=30)
    assert r.status_code == 200, r.text
    assert server.alive()


@pytest.mark.parametrize(
    ("model", "make", "status", "pattern"),
    [c[1:] for c in V2_CASES],
    ids=[c[0] for c in V2_CASES],
)
def test_v2_rest_bad_request(model_server, base, model, make, status, pattern):
    body = make(v2_body(base))
    r = requests.post(
        f"{model_server.url}/v2/models/{model}/infer",
        data=orjson.dumps(body),
        headers={"content-type": "application/json"},
        timeout=30,
    )
    assert r.status_code == status, r.text
    error = r.json()["error"]
    assert re.search(pattern, error), error
    assert_still_serving(model_server, base)


def post_raw(server, data: bytes, headers: dict[str, str]) -> requests.Response:
    return requests.post(
        f"{server.url}/v2/models/churn/infer", data=data, headers=headers, timeout=30
    )


def test_body_not_json(model_server, base):
    r = post_raw(model_server, b"{not json", {"content-type": "application/json"})
    assert r.status_code == 400 and "not valid JSON" in r.json()["error"]
    assert_still_serving(model_server, base)


def test_binary_header_longer_than_body(model_server, base):
    r = post_raw(model_server, b'{"inputs": []}', {"inference-header-content-length": "999"})
    assert r.status_code == 400 and "inference-header-content-length" in r.json()["error"]
    assert_still_serving(model_server, base)


def test_binary_bytes_not_utf8(model_server, base):
    body = v2_body(base)
    raw = struct.pack("<I", 2) + b"\xff\xfe"
    tensor = body["inputs"][INDEX["gender"]]
    del tensor["data"]
    tensor["parameters"] = {"binary_data_size": len(raw)}
    head = orjson.dumps(body)
    r = post_raw(model_server, head + raw, {"inference-header-content-length": str(len(head))})
    assert r.status_code == 400, r.text
    assert "gender" in r.json()["error"]
    assert_still_serving(model_server, base)


V1_CASES = [
    ("no-instances", "predict", {"rows": []}, '"instances"'),
    ("instances-not-list", "predict", {"instances": {"a": 1}}, "list"),
    ("instance-not-object", "predict", {"instances": [[1, 2]]}, "instance 0: expected an object"),
    (
        "instance-missing-attribute",
        "predict",
        "drop-tenure",
        "instance 0: missing attribute.*tenure",
    ),
    ("instance-extra-attribute", "predict", "extra", "instance 0: unexpected attribute.*plan"),
    ("instance-bad-category", "explain", "bad-contract", "'Contract': unknown category 'Weekly'"),
]


@pytest.mark.parametrize(
    ("verb", "body", "pattern"), [c[1:] for c in V1_CASES], ids=[c[0] for c in V1_CASES]
)
def test_v1_bad_request(model_server, base, verb, body, pattern):
    row = instances(base)[0]
    if body == "drop-tenure":
        body = {"instances": [{k: v for k, v in row.items() if k != "tenure"}]}
    elif body == "extra":
        body = {"instances": [{**row, "plan": "gold"}]}
    elif body == "bad-contract":
        body = {"instances": [{**row, "Contract": "Weekly"}]}
    r = requests.post(f"{model_server.url}/v1/models/churn:{verb}", json=body, timeout=30)
    assert r.status_code == 400, r.text
    assert re.search(pattern, r.json()["error"]), r.json()
    assert_still_serving(model_server, base)


def test_v1_body_not_json(model_server, base):
    r = requests.post(f"{model_server.url}/v1/models/churn:predict", data=b"rows=1", timeout=30)
    assert r.status_code == 400 and "Unrecognized request format" in r.json()["error"]
    assert_still_serving(model_server, base)


def test_grpc_bad_requests(model_server, base):
    import grpc
    from kserve.protocol.grpc import grpc_predict_v2_pb2 as pb
    from kserve.protocol.grpc import grpc_predict_v2_pb2_grpc as pbg

    from tests.fixtures.model_server import v2_request

    def request(model="churn", **edits):
        req = v2_request(base, model).to_grpc()
        for name, (datatype, contents) in edits.items():
            tensor = next(t for t in req.inputs if t.name == name)
            tensor.datatype = datatype
            tensor.ClearField("contents")
            for field, values in contents.items():
                getattr(tensor.contents, field).extend(values)
        return req

    missing = request()
    del missing.inputs[4]
    raw_mismatch = v2_request(base, binary=True).to_grpc()
    del raw_mismatch.raw_input_contents[0]
    cases = [
        (
            request(Contract=("BYTES", {"bytes_contents": [b"Weekly"]})),
            grpc.StatusCode.INVALID_ARGUMENT,
            "unknown category 'Weekly'",
        ),
        (missing, grpc.StatusCode.INVALID_ARGUMENT, "missing column"),
        (
            request(Contract=("FP64", {"fp64_contents": [1.0]})),
            grpc.StatusCode.INVALID_ARGUMENT,
            "'Contract' has datatype FP64",
        ),
        (
            request(tenure=("INT64", {"int64_contents": [-4]})),
            grpc.StatusCode.INVALID_ARGUMENT,
            "'tenure': value -4 out of range",
        ),
        (raw_mismatch, grpc.StatusCode.INVALID_ARGUMENT, "does not match"),
        (request(model="nope"), grpc.StatusCode.NOT_FOUND, "nope"),
    ]
    with grpc.insecure_channel(model_server.grpc_url) as channel:
        stub = pbg.GRPCInferenceServiceStub(channel)
        for req, code, text in cases:
            with pytest.raises(grpc.RpcError) as info:
                stub.ModelInfer(req, timeout=30)
            assert info.value.code() == code, info.value.details()
            assert text in info.value.details(), info.value.details()
            good = stub.ModelInfer(v2_request(base).to_grpc(), timeout=30)
            assert good.model_version == "7"
        assert stub.ServerLive(pb.ServerLiveRequest(), timeout=5).live


# -- the versioned v2 routes (found by the OpenAPI conformance test) ---------------------


@pytest.mark.parametrize("model", ["churn", "churn-explainer"])
def test_versioned_metadata_and_ready_answer_the_served_version(model_server, base, model):
    # KServe 0.20's own routes answered any version with 501 "not supported yet"
    url = f"{model_server.url}/v2/models/{model}/versions/7"
    meta = requests.get(url, timeout=10)
    assert meta.status_code == 200, meta.text
    assert meta.json()["name"] == model and meta.json()["versions"] == ["7"]
    assert meta.json() == requests.get(f"{model_server.url}/v2/models/{model}", timeout=10).json()
    ready = requests.get(f"{url}/ready", timeout=10)
    assert ready.status_code == 200, ready.text
    assert ready.json() == {"name": model, "ready": True}
    assert_still_serving(model_server, base)


@pytest.mark.parametrize("suffix", ["", "/ready"])
def test_unserved_version_is_404_naming_the_served_one(model_server, base, suffix):
    r = requests.get(f"{model_server.url}/v2/models/churn/versions/8{suffix}", timeout=10)
    assert r.status_code == 404, r.text
    assert r.json()["error"] == "model 'churn' has no version '8'; it serves 7"
    assert_still_serving(model_server, base)


def test_infer_with_unserved_version_is_404(model_server, base):
    r = requests.post(
        f"{model_server.url}/v2/models/churn/versions/8/infer", json=v2_body(base), timeout=30
    )
    assert r.status_code == 404, r.text
    assert "no version '8'" in r.json()["error"]
    ok = requests.post(
        f"{model_server.url}/v2/models/churn/versions/7/infer", json=v2_body(base), timeout=30
    )
    assert ok.status_code == 200 and ok.json()["model_version"] == "7"


def test_unknown_model_with_version_is_404(model_server, base):
    for suffix in ("", "/ready"):
        r = requests.get(f"{model_server.url}/v2/models/nope/versions/7{suffix}", timeout=10)
        assert r.status_code == 404 and "nope" in r.json()["error"], r.text
    assert_still_serving(model_server, base)


def test_server_metadata_with_trailing_slash_is_not_redirected(model_server):
    # the OpenAPI spec's path is /v2/; KServe serves /v2 and redirected /v2/ with a 307
    r = requests.get(f"{model_server.url}/v2/", timeout=10, allow_redirects=False)
    assert r.status_code == 200, r.text
    assert r.json() == requests.get(f"{model_server.url}/v2", timeout=10).json()
    assert set(r.json()) == {"name", "version", "extensions"}
