"""Served predictions equal the offline ones for every held-out customer.

The offline figure is `ChurnModel.predict_proba(frame)` (the pipeline's
path, through the data frame transform) of the very bundle the server
loaded; the server answers FP32, so it is compared with float32(offline).
Real data when CHURN_DATA_URI is set, else the synthetic stand-in.
"""

from __future__ import annotations

import asyncio

import numpy as np
import pytest
import requests

from churn_model.bundle import load_model
from tests.fixtures.model_server import serve_bundle, v2_body, v2_request

pytestmark = pytest.mark.integration

TOLERANCE = 1e-6


def offline(bundle, frame):
    model, meta = load_model(bundle)
    proba = model.predict_proba(frame)
    return proba.astype(np.float32), proba >= meta["threshold"]


def rest_json(server, frame, model="churn"):
    r = requests.post(f"{server.url}/v2/models/{model}/infer", json=v2_body(frame), timeout=120)
    assert r.status_code == 200, r.text[:500]
    outs = {o["name"]: o["data"] for o in r.json()["outputs"]}
    return np.asarray(outs["churn_probability"], dtype=np.float32), np.asarray(outs["churn"])


def test_every_held_out_row_rest_json(model_server, customer_split, bundle_dir):
    frame = customer_split[1]
    expected, decision = offline(bundle_dir("xgboost"), frame)
    proba, churn = rest_json(model_server, frame)
    assert len(proba) == len(frame)
    assert np.abs(proba - expected).max() <= TOLERANCE
    np.testing.assert_array_equal(churn, decision)


def test_every_held_out_row_rest_binary_and_grpc(model_server, customer_split, bundle_dir):
    from kserve import InferenceGRPCClient, InferenceRESTClient, RESTConfig

    frame = customer_split[1]
    expected, decision = offline(bundle_dir("xgboost"), frame)

    async def both():
        rest = InferenceRESTClient(RESTConfig(protocol="v2", timeout=120))
        grpc_client = InferenceGRPCClient(model_server.grpc_url, timeout=120)
        try:
            a = await rest.infer(model_server.url, v2_request(frame, binary=True), "churn")
            b = await grpc_client.infer(v2_request(frame, binary=False))
            c = await grpc_client.infer(v2_request(frame, binary=True))
            return a, b, c
        finally:
            await rest.close()
            await grpc_client.close()

    for response in asyncio.run(both()):
        proba = response.get_output_by_name("churn_probability").as_numpy()
        assert np.abs(proba - expected).max() <= TOLERANCE
        np.testing.assert_array_equal(response.get_output_by_name("churn").as_numpy(), decision)


def test_single_row_requests_match(model_server, customer_split, bundle_dir):
    frame = customer_split[1].iloc[:40]
    expected, _ = offline(bundle_dir("xgboost"), frame)
    got = np.concatenate([rest_json(model_server, frame.iloc[[i]])[0] for i in range(len(frame))])
    assert np.abs(got - expected).max() <= TOLERANCE


@pytest.mark.parametrize("kind", ["logistic", "mlp"])
def test_other_estimators_every_held_out_row(kind, customer_split, bundle_dir, tmp_path):
    frame = customer_split[1]
    expected, decision = offline(bundle_dir(kind), frame)
    server = serve_bundle(bundle_dir(kind), tmp_path, extra_args=("--no-grpc",))
    try:
        proba, churn = rest_json(server, frame)
        explained = requests.post(
            f"{server.url}/v2/models/churn-explainer/infer",
            json=v2_body(frame.iloc[:5]),
            timeout=60,
        )
        assert explained.status_code == 200, explained.text[:300]
    finally:
        server.stop()
    assert np.abs(proba - expected).max() <= TOLERANCE
    np.testing.assert_array_equal(churn, decision)
