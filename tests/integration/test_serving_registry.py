"""`churn serve --model-uri models:/<name>@champion` against a real MLflow registry."""

from __future__ import annotations

import numpy as np
import pytest
import requests

from churn_model.bundle import load_model
from tests.fixtures.model_server import serve_bundle, v2_body

pytestmark = pytest.mark.integration


def test_serves_the_champion_from_the_registry(mlflow_server, bundle_dir, customer_split, tmp_path):
    from churn_components.registry.register import client_for, register_bundle, start_run

    name = "churn-serving-test"
    client = client_for(mlflow_server)
    with start_run(client, "serving-tests", None, "serving-test") as run:
        register_bundle(
            client,
            run.info.run_id,
            bundle_dir("xgboost"),
            name,
            expected_version=1,
            promote=True,
            version_tags={},
        )
    env = {"CHURN_MLFLOW_TRACKING_URI": mlflow_server}
    server = serve_bundle(
        f"models:/{name}@champion", tmp_path, env=env, extra_args=("--no-grpc",), timeout=120
    )
    try:
        frame = customer_split[1].iloc[:30]
        r = requests.post(f"{server.url}/v2/models/churn/infer", json=v2_body(frame), timeout=30)
        assert r.status_code == 200, r.text
        proba = np.float32(r.json()["outputs"][0]["data"])
        model, _ = load_model(bundle_dir("xgboost"))
        assert np.abs(proba - model.predict_proba(frame).astype(np.float32)).max() <= 1e-6
        assert f"models:/{name}@champion" in server.log()
    finally:
        server.stop()


def test_unknown_alias_is_not_ready(mlflow_server, tmp_path):
    env = {"CHURN_MLFLOW_TRACKING_URI": mlflow_server}
    server = serve_bundle(
        "models:/no-such-model@champion", tmp_path, env=env, extra_args=("--no-grpc",)
    )
    try:
        assert requests.get(f"{server.url}/v2/models/churn/ready", timeout=5).status_code == 503
        assert "refusing bundle models:/no-such-model@champion" in server.log()
    finally:
        server.stop()
