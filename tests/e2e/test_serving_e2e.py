"""The loop up to serving: data stages -> training -> registry -> `churn serve` the champion.

Everything real and local: the data stages and training steps on a synthetic
CSV (quick configuration), the bundle written and registered by the training
code in a real MLflow server, and `churn serve` started with its default
model URI (``models:/churn@champion``). Served answers must equal the
offline predictions of the registered bundle on the held-out split, and the
explainer must answer with the bundle's background and the configured
retention catalogue.
"""

from __future__ import annotations

import asyncio

import numpy as np
import pytest
import requests

from churn_model.contract import FEATURE_NAMES
from tests.fixtures.model_server import instances, serve_bundle, v2_body, v2_request

pytestmark = [pytest.mark.e2e, pytest.mark.integration]


def test_train_register_serve_the_champion(mlflow_server, synthetic_training_csv, tmp_path):
    from churn_model.bundle import load_model
    from churn_model.registry import download_bundle
    from tests.fixtures.training import prepare_data, small_config, train_and_register

    config = small_config()
    data = prepare_data(synthetic_training_csv, tmp_path / "data", config)
    result = train_and_register(data, config, tmp_path / "train", tracking_uri=mlflow_server)
    assert "champion" in result["aliases"]

    env = {"CHURN_MLFLOW_TRACKING_URI": mlflow_server}
    server = serve_bundle("", tmp_path / "serve", env=env, default_uri=True, timeout=120)
    try:
        assert "models:/churn@champion" in server.log()
        from churn_components.data.steps import read_dataset

        held_out = read_dataset(data.test)
        local = download_bundle(
            "models:/churn@champion", tmp_path / "offline", tracking_uri=mlflow_server
        )
        model, meta = load_model(local)
        expected = model.predict_proba(held_out).astype(np.float32)

        r = requests.post(f"{server.url}/v2/models/churn/infer", json=v2_body(held_out), timeout=60)
        assert r.status_code == 200, r.text[:300]
        body = r.json()
        assert body["model_version"] == str(meta["version"])
        proba = np.float32(body["outputs"][0]["data"])
        assert np.abs(proba - expected).max() <= 1e-6

        from kserve import InferenceGRPCClient

        async def grpc_call():
            client = InferenceGRPCClient(server.grpc_url, timeout=60)
            try:
                return await client.infer(v2_request(held_out.iloc[:50], binary=True))
            finally:
                await client.close()

        response = asyncio.run(grpc_call())
        got = response.get_output_by_name("churn_probability").as_numpy()
        assert np.abs(got - expected[:50]).max() <= 1e-6

        explained = requests.post(
            f"{server.url}/v1/models/churn:explain",
            json={"instances": instances(held_out.iloc[:5])},
            timeout=60,
        )
        assert explained.status_code == 200, explained.text[:300]
        first = explained.json()["explanations"][0]
        assert set(first["attributions"]) == set(FEATURE_NAMES)
        assert abs(first["churn_probability"] - float(expected[0])) <= 1e-6
    finally:
        server.stop()
