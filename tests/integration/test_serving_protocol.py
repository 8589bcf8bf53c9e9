"""The Open Inference Protocol as standard clients see it, against a real `churn serve`.

KServe's own REST and gRPC clients and plain HTTP; health, readiness and
metadata as the spec says; the optional parts (no id, parameters, requested
outputs, the binary tensor extension); v1 predict/explain; the v2 explainer
model; Prometheus metrics; loopback-only binding.
"""

from __future__ import annotations

import asyncio
import struct

import numpy as np
import orjson
import pytest
import requests

from churn_model.contract import FEATURE_COLUMNS, FEATURE_NAMES, Categorical
from tests.fixtures.model_server import instances, v2_body, v2_request

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def server(model_server):
    return model_server


@pytest.fixture(scope="module")
def held_out(customer_split):
    return customer_split[1]


@pytest.fixture(scope="module")
def offline(bundle_dir):
    from churn_model.bundle import load_model

    model, meta = load_model(bundle_dir("xgboost"))
    return model, meta


def post(server, path, body, **kw):
    return requests.post(f"{server.url}{path}", json=body, timeout=30, **kw)


# -- health, readiness, metadata --------------------------------------------------------


def test_health_and_readiness_rest(server):
    assert requests.get(f"{server.url}/v2/health/live", timeout=5).json() == {"live": True}
    assert requests.get(f"{server.url}/v2/health/ready", timeout=5).json() == {"ready": True}
    for name in ("churn", "churn-explainer"):
        r = requests.get(f"{server.url}/v2/models/{name}/ready", timeout=5)
        assert r.status_code == 200 and r.json() == {"name": name, "ready": True}
    assert requests.get(f"{server.url}/v1/models/churn", timeout=5).json()["ready"] is True
    missing = requests.get(f"{server.url}/v2/models/nope/ready", timeout=5)
    assert missing.status_code == 404 and "nope" in missing.json()["error"]


def test_server_and_model_metadata_rest(server):
    meta = requests.get(f"{server.url}/v2", timeout=5).json()
    assert meta["name"] and meta["version"] and isinstance(meta["extensions"], list)
    model = requests.get(f"{server.url}/v2/models/churn", timeout=5).json()
    assert model["name"] == "churn" and model["versions"] == ["7"]
    inputs = {i["name"]: i for i in model["inputs"]}
    assert list(inputs) == list(FEATURE_NAMES)
    for col in FEATURE_COLUMNS:
        expected = "BYTES" if isinstance(col, Categorical) else ("INT64" if col.integer else "FP64")
        assert inputs[col.name] == {"name": col.name, "datatype": expected, "shape": [-1]}
    assert model["outputs"] == [
        {"name": "churn_probability", "datatype": "FP32", "shape": [-1]},
        {"name": "churn", "datatype": "BOOL", "shape": [-1]},
    ]
    explainer = requests.get(f"{server.url}/v2/models/churn-explainer", timeout=5).json()
    names = [o["name"] for o in explainer["outputs"]]
    assert names[:2] == ["churn_probability", "base_log_odds"]
    attributions = [f"attribution_{a}" for a in FEATURE_NAMES]
    assert names[2 : 2 + len(attributions)] == attributions
    # one slot per reason (top_k = 3): the texts, then the what-ifs of the suggestions
    assert explainer["outputs"][2 + len(attributions) :] == [
        {"name": "reasons", "datatype": "BYTES", "shape": [-1, 3]},
        {"name": "suggestions", "datatype": "BYTES", "shape": [-1, 3]},
        {"name": "what_if", "datatype": "BYTES", "shape": [-1, 3]},
        {"name": "what_if_probability", "datatype": "FP32", "shape": [-1, 3]},
        {"name": "what_if_change", "datatype": "BYTES", "shape": [-1, 3]},
    ]
    assert requests.get(f"{server.url}/v2/models/nope", timeout=5).status_code == 404


def test_health_and_metadata_grpc(server):
    import grpc
    from kserve.protocol.grpc import grpc_predict_v2_pb2 as pb
    from kserve.protocol.grpc import grpc_predict_v2_pb2_grpc as pbg

    with grpc.insecure_channel(server.grpc_url) as channel:
        stub = pbg.GRPCInferenceServiceStub(channel)
        assert stub.ServerLive(pb.ServerLiveRequest(), timeout=5).live
        assert stub.ServerReady(pb.ServerReadyRequest(), timeout=5).ready
        assert stub.ModelReady(pb.ModelReadyRequest(name="churn"), timeout=5).ready
        meta = stub.ModelMetadata(pb.ModelMetadataRequest(name="churn"), timeout=5)
        assert [i.name for i in meta.inputs] == list(FEATURE_NAMES)
        assert [(o.name, o.datatype) for o in meta.outputs] == [
            ("churn_probability", "FP32"),
            ("churn", "BOOL"),
        ]
        assert stub.ServerMetadata(pb.ServerMetadataRequest(), timeout=5).version


# -- standard clients -------------------------------------------------------------------


@pytest.mark.parametrize("binary", [False, True])
def test_kserve_rest_client(server, held_out, offline, binary):
    from kserve import InferenceRESTClient, RESTConfig

    frame = held_out.iloc[:25]

    async def call():
        client = InferenceRESTClient(RESTConfig(protocol="v2", timeout=30))
        try:
            return await client.infer(server.url, v2_request(frame, binary=binary), "churn")
        finally:
            await client.close()

    response = asyncio.run(call())
    proba = response.get_output_by_name("churn_probability").as_numpy()
    churn = response.get_output_by_name("churn").as_numpy()
    expected = offline[0].predict_proba(frame)
    assert np.abs(proba - expected.astype(np.float32)).max() <= 1e-6
    np.testing.assert_array_equal(churn, expected >= offline[1]["threshold"])


@pytest.mark.parametrize("binary", [False, True])
def test_kserve_grpc_client(server, held_out, offline, binary):
    from kserve import InferenceGRPCClient

    frame = held_out.iloc[:25]

    async def call():
        client = InferenceGRPCClient(server.grpc_url, timeout=30)
        try:
            assert await client.is_server_ready()
            assert await client.is_model_ready("churn")
            return await client.infer(v2_request(frame, binary=binary))
        finally:
            await client.close()

    response = asyncio.run(call())
    assert response.model_version == "7"
    proba = response.get_output_by_name("churn_probability").as_numpy()
    assert response.get_output_by_name("churn_probability").datatype == "FP32"
    assert response.get_output_by_name("churn").datatype == "BOOL"
    expected = offline[0].predict_proba(frame).astype(np.float32)
    assert np.abs(proba - expected).max() <= 1e-6


def test_plain_http_no_id_no_parameters(server, held_out, offline):
    body = v2_body(held_out.iloc[:3])
    del body["parameters"]
    r = post(server, "/v2/models/churn/infer", body)
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["model_name"] == "churn" and out["model_version"] == "7" and out["id"]
    by_name = {o["name"]: o for o in out["outputs"]}
    assert by_name["churn_probability"]["datatype"] == "FP32"
    assert by_name["churn_probability"]["shape"] == [3]
    assert by_name["churn"]["datatype"] == "BOOL"
    assert all(isinstance(v, bool) for v in by_name["churn"]["data"])
    expected = offline[0].predict_proba(held_out.iloc[:3]).astype(np.float32)
    assert np.abs(np.float32(by_name["churn_probability"]["data"]) - expected).max() <= 1e-6


def test_request_id_is_echoed_and_outputs_filtered(server, held_out):
    body = v2_body(held_out.iloc[:2], id="req-42", outputs=[{"name": "churn"}])
    out = post(server, "/v2/models/churn/infer", body).json()
    assert out["id"] == "req-42"
    assert [o["name"] for o in out["outputs"]] == ["churn"]
    out = post(server, "/v2/models/churn/versions/7/infer", body)
    assert out.status_code == 200 and out.json()["id"] == "req-42"


def test_binary_tensor_extension_both_ways(server, held_out, offline):
    """Inputs as raw bytes after the JSON header; outputs asked back in binary."""
    frame = held_out.iloc[:4]
    header: dict = {"inputs": [], "parameters": {"binary_data_output": True}}
    blobs = []
    for col in FEATURE_COLUMNS:
        values = frame[col.name].to_numpy()
        if isinstance(col, Categorical):
            raw = b"".join(struct.pack("<I", len(s.encode())) + s.encode() for s in values)
            datatype = "BYTES"
        elif col.integer:
            raw, datatype = values.astype(np.int64).tobytes(), "INT64"
        else:
            raw, datatype = values.astype(np.float64).tobytes(), "FP64"
        header["inputs"].append(
            {
                "name": col.name,
                "shape": [len(values)],
                "datatype": datatype,
                "parameters": {"binary_data_size": len(raw)},
            }
        )
        blobs.append(raw)
    head = orjson.dumps(header)
    r = requests.post(
        f"{server.url}/v2/models/churn/infer",
        data=head + b"".join(blobs),
        headers={
            "Content-Type": "application/octet-stream",
            "Inference-Header-Content-Length": str(len(head)),
        },
        timeout=30,
    )
    assert r.status_code == 200, r.text
    json_len = int(r.headers["inference-header-content-length"])
    meta = orjson.loads(r.content[:json_len])
    sizes = [o["parameters"]["binary_data_size"] for o in meta["outputs"]]
    assert [o["name"] for o in meta["outputs"]] == ["churn_probability", "churn"]
    start = json_len
    proba = np.frombuffer(r.content[start : start + sizes[0]], dtype=np.float32)
    churn = np.frombuffer(r.content[start + sizes[0] : start + sizes[0] + sizes[1]], dtype=np.bool_)
    expected = offline[0].predict_proba(frame)
    assert np.abs(proba - expected.astype(np.float32)).max() <= 1e-6
    np.testing.assert_array_equal(churn, expected >= offline[1]["threshold"])


# -- v1 and explanations ----------------------------------------------------------------


def test_v1_predict_with_instances(server, held_out, offline):
    frame = held_out.iloc[:3]
    r = post(server, "/v1/models/churn:predict", {"instances": instances(frame)})
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["model_version"] == "7"
    got = [p["churn_probability"] for p in out["predictions"]]
    assert (
        np.abs(np.float32(got) - offline[0].predict_proba(frame).astype(np.float32)).max() <= 1e-6
    )


def changed_rows(frame, changes):
    """The customers of `frame` (row, change) with each change applied, in that order."""
    import pandas as pd

    rows = []
    for i, change in changes:
        row = frame.iloc[[i]].copy()
        for name, value in change.items():
            row[name] = value
        rows.append(row)
    return pd.concat(rows, ignore_index=True)


def test_v1_explain(server, held_out, offline):
    risky = held_out[held_out["Contract"] == "Month-to-month"].iloc[:8].reset_index(drop=True)
    r = post(server, "/v1/models/churn:explain", {"instances": instances(risky)})
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["method"].startswith("exact TreeSHAP")
    assert out["additivity"].startswith("base_log_odds + sum(attributions) = log_odds")
    first = out["explanations"][0]
    assert set(first["attributions"]) == set(FEATURE_NAMES)
    reasons = [(i, x) for i, e in enumerate(out["explanations"]) for x in e["reasons"]]
    assert reasons and all("raises churn risk by" in x["text"] for _, x in reasons)
    assert all(x["probability_points"] >= 1.0 for _, x in reasons)  # min_effect_points
    contract = [(i, x) for i, x in reasons if x["attribute"] == "Contract"]
    assert contract  # the retention catalogue of model_config.yaml, with its what-if
    for _, x in contract:
        assert x["suggestion"] == "Offer a discounted one-year contract."
        assert x["what_if"]["set"] == {"Contract": "One year"}
    # every what-if is the offline model's probability of the changed customer
    what_ifs = [(i, x["what_if"]) for i, x in reasons if x["what_if"] is not None]
    expected = offline[0].predict_proba(changed_rows(risky, [(i, w["set"]) for i, w in what_ifs]))
    got = np.float32([w["churn_probability"] for _, w in what_ifs])
    np.testing.assert_allclose(got, expected.astype(np.float32), rtol=0, atol=1e-6)
    for i, w in what_ifs:
        before = out["explanations"][i]["churn_probability"] * 100
        assert w["text"].endswith(f"{before:.1f}% -> {w['churn_probability'] * 100:.1f}%")
    context = [x for _, x in reasons if x["attribute"] in ("gender", "tenure", "TotalCharges")]
    assert all(x["suggestion"] == "" and x["what_if"] is None for x in context)


def test_v2_explainer_model(server, held_out, offline):
    import json

    frame = held_out[held_out["Contract"] == "Month-to-month"].iloc[:3].reset_index(drop=True)
    r = post(server, "/v2/models/churn-explainer/infer", v2_body(frame))
    assert r.status_code == 200, r.text
    outs = {o["name"]: o for o in r.json()["outputs"]}
    for attr in FEATURE_NAMES:
        assert outs[f"attribution_{attr}"]["datatype"] == "FP32"
        assert outs[f"attribution_{attr}"]["shape"] == [3]
    assert outs["reasons"]["datatype"] == "BYTES" and outs["reasons"]["shape"] == [3, 3]
    texts = [t for t in outs["reasons"]["data"] if t]
    assert texts and all(" raises churn risk by " in t for t in texts)
    assert any(outs["suggestions"]["data"])
    total = sum(np.float32(outs[f"attribution_{a}"]["data"]) for a in FEATURE_NAMES)
    logit = np.log(np.float32(outs["churn_probability"]["data"]))
    logit -= np.log1p(-np.float32(outs["churn_probability"]["data"]))
    np.testing.assert_allclose(np.float32(outs["base_log_odds"]["data"]) + total, logit, atol=1e-3)
    # the what-ifs, slot by slot with the suggestions; an empty slot: "" and -1
    for name, datatype in [("what_if", "BYTES"), ("what_if_probability", "FP32")]:
        assert outs[name]["datatype"] == datatype and outs[name]["shape"] == [3, 3]
    changes = outs["what_if_change"]["data"]
    proba = outs["what_if_probability"]["data"]
    slots = [k for k, c in enumerate(changes) if c]
    assert slots and all(outs["suggestions"]["data"][k] for k in slots)
    assert all(
        proba[k] == -1 and not outs["what_if"]["data"][k] for k in range(9) if k not in slots
    )
    expected = offline[0].predict_proba(
        changed_rows(frame, [(k // 3, json.loads(changes[k])) for k in slots])
    )
    np.testing.assert_allclose(
        np.float32([proba[k] for k in slots]), expected.astype(np.float32), rtol=0, atol=1e-6
    )
    assert any(outs["what_if"]["data"][k].startswith("Contract = One year: ") for k in slots)


def test_v2_explainer_what_ifs_over_grpc(server, held_out):
    from kserve import InferenceGRPCClient

    frame = held_out.iloc[:4]

    async def call():
        client = InferenceGRPCClient(server.grpc_url, timeout=30)
        try:
            request = v2_request(
                frame, "churn-explainer", outputs=["what_if_probability", "what_if_change"]
            )
            return await client.infer(request)
        finally:
            await client.close()

    response = asyncio.run(call())
    proba = response.get_output_by_name("what_if_probability").as_numpy()
    changes = response.get_output_by_name("what_if_change").as_numpy()
    assert proba.shape == (4, 3) and proba.dtype == np.float32 and changes.shape == (4, 3)
    has_change = np.vectorize(bool)(changes)
    assert has_change.any()
    np.testing.assert_array_equal(proba != -1.0, has_change)


# -- metrics and binding ----------------------------------------------------------------


def test_prometheus_metrics(server, held_out):
    post(server, "/v2/models/churn/infer", v2_body(held_out.iloc[:5]))
    bad = v2_body(held_out.iloc[:1])
    bad["inputs"][14]["data"] = ["Weekly"]
    post(server, "/v2/models/churn/infer", bad)
    text = requests.get(f"{server.url}/metrics", timeout=5).text
    assert 'request_predict_seconds_count{model_name="churn"}' in text  # KServe's histograms
    assert 'churn_predictions_total{model_name="churn",outcome="no_churn"}' in text
    assert 'churn_probability_bucket{le="0.5",model_name="churn"}' in text
    assert 'churn_validation_errors_total{column="Contract",model_name="churn"}' in text
    assert "churn_model_info{" in text and 'version="7"' in text and 'kind="xgboost"' in text


def test_binds_loopback_only(server):
    def listening(port):
        addrs = set()
        for table in ("/proc/net/tcp", "/proc/net/tcp6"):
            with open(table) as fh:
                for line in fh.readlines()[1:]:
                    local, state = line.split()[1], line.split()[3]
                    if state == "0A" and int(local.rsplit(":", 1)[1], 16) == port:
                        addrs.add(local.rsplit(":", 1)[0])
        return addrs

    loopback4 = "0100007F"
    loopback6_mapped = "0000000000000000FFFF00000100007F"
    for port in (server.http_port, server.grpc_port):
        addrs = listening(port)
        assert addrs, port
        assert addrs <= {loopback4, loopback6_mapped}, addrs


# -- customer ids and request ids ---------------------------------------------------------


def _ids_tensor(ids):
    return {"name": "customerID", "shape": [len(ids)], "datatype": "BYTES", "data": ids}


@pytest.mark.parametrize("model", ["churn", "churn-explainer"])
def test_customer_ids_and_request_id_travel_over_rest(server, held_out, model):
    frame = held_out.iloc[:4]
    ids = frame["customerID"].tolist()
    body = v2_body(frame, id="batch-7")
    body["inputs"].append(_ids_tensor(ids))
    r = post(server, f"/v2/models/{model}/infer", body)
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["id"] == "batch-7" and out["model_name"] == model
    by_name = {o["name"]: o for o in out["outputs"]}
    assert by_name["customerID"] == {
        "name": "customerID",
        "shape": [4],
        "datatype": "BYTES",
        "data": ids,
    }
    del body["id"]
    generated = post(server, f"/v2/models/{model}/infer", body).json()["id"]
    assert len(generated) == 36 and generated != "batch-7"  # a fresh uuid4


def test_customer_ids_and_request_id_travel_over_grpc(server, held_out):
    from kserve import InferenceGRPCClient, InferInput

    frame = held_out.iloc[:3]
    ids = frame["customerID"].tolist()
    request = v2_request(frame)
    tensor = InferInput("customerID", [len(ids)], "BYTES")
    tensor.set_data_from_numpy(np.array(ids, dtype=object), binary_data=False)
    request.inputs.append(tensor)
    request.id = "grpc-9"

    async def call():
        client = InferenceGRPCClient(server.grpc_url, timeout=30)
        try:
            return await client.infer(request)
        finally:
            await client.close()

    response = asyncio.run(call())
    assert response.id == "grpc-9"
    echoed = response.get_output_by_name("customerID").as_numpy().tolist()
    assert [v.decode() if isinstance(v, bytes) else v for v in echoed] == ids
