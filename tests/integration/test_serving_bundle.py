"""Where the served bundle comes from, and what happens when it fails its check."""

from __future__ import annotations

import shutil

import grpc
import numpy as np
import pytest
import requests

from churn_model.bundle import load_model
from tests.fixtures.bundles import tamper
from tests.fixtures.model_server import serve_bundle, v2_body

pytestmark = pytest.mark.integration


def test_tampered_bundle_is_refused_and_not_ready(bundle_dir, customer_split, tmp_path):
    bundle = tmp_path / "bundle"
    shutil.copytree(bundle_dir("logistic"), bundle)
    tamper(bundle)
    server = serve_bundle(bundle, tmp_path / "serve")
    try:
        assert requests.get(f"{server.url}/v2/health/live", timeout=5).status_code == 200
        ready = requests.get(f"{server.url}/v2/health/ready", timeout=5)
        assert ready.status_code == 503
        model_ready = requests.get(f"{server.url}/v2/models/churn/ready", timeout=5)
        assert model_ready.status_code == 503 and "not ready" in model_ready.json()["error"]
        infer = requests.post(
            f"{server.url}/v2/models/churn/infer",
            json=v2_body(customer_split[1].iloc[:1]),
            timeout=10,
        )
        assert infer.status_code == 503, infer.text
        explain = requests.post(
            f"{server.url}/v2/models/churn-explainer/infer",
            json=v2_body(customer_split[1].iloc[:1]),
            timeout=10,
        )
        assert explain.status_code == 503
        from kserve.protocol.grpc import grpc_predict_v2_pb2 as pb
        from kserve.protocol.grpc import grpc_predict_v2_pb2_grpc as pbg

        from tests.fixtures.model_server import v2_request

        with grpc.insecure_channel(server.grpc_url) as channel:
            stub = pbg.GRPCInferenceServiceStub(channel)
            assert not stub.ModelReady(pb.ModelReadyRequest(name="churn"), timeout=5).ready
            assert not stub.ServerReady(pb.ServerReadyRequest(), timeout=5).ready
            with pytest.raises(grpc.RpcError) as info:
                stub.ModelInfer(v2_request(customer_split[1].iloc[:1]).to_grpc(), timeout=10)
            assert info.value.code() == grpc.StatusCode.UNAVAILABLE
            assert "refused" in info.value.details()
        log = server.log()
        assert "NOT READY" in log and "refusing bundle" in log
        assert "model.json has sha256" in log and "refusing to load it" in log
        assert server.alive()
    finally:
        server.stop()


def test_a_format_1_bundle_is_refused_and_not_ready(bundle_dir, customer_split, tmp_path):
    import pickle

    from churn_core.io import PICKLE_PROTOCOL
    from churn_model.bundle import PICKLED_MODEL, read_metadata, write_bundle

    model, meta = load_model(bundle_dir("logistic"))
    old_meta = {k: v for k, v in meta.items() if k not in ("format", "files")}
    old = write_bundle(
        tmp_path / "old",
        {PICKLED_MODEL: pickle.dumps(model, protocol=PICKLE_PROTOCOL)},
        old_meta,
    )
    assert "format" not in read_metadata(old)
    server = serve_bundle(old, tmp_path / "serve", extra_args=("--no-grpc",))
    try:
        assert requests.get(f"{server.url}/v2/health/live", timeout=5).status_code == 200
        assert requests.get(f"{server.url}/v2/health/ready", timeout=5).status_code == 503
        assert requests.get(f"{server.url}/v2/models/churn/ready", timeout=5).status_code == 503
        infer = requests.post(
            f"{server.url}/v2/models/churn/infer",
            json=v2_body(customer_split[1].iloc[:1]),
            timeout=10,
        )
        assert infer.status_code == 503, infer.text
        log = server.log()
        assert "NOT READY" in log and "refusing bundle" in log
        assert "bundle format 1 (pickled model.pkl) cannot be read by this code" in log
        assert "which reads format 2" in log and "retrain, or serve it with an older release" in log
        assert server.alive()
    finally:
        server.stop()


def test_serves_a_bundle_from_azure_blob(azurite, bundle_dir, customer_split, tmp_path):
    from churn_core.store import open_store

    container = azurite.new_container("serve")
    open_store(f"az://{container}", azurite.connection_string).put_dir(
        bundle_dir("xgboost"), "churn/v7"
    )
    env = {"CHURN_AZURE_STORAGE_CONNECTION_STRING": azurite.connection_string}
    uri = f"https://devstoreaccount1.blob.core.windows.net/{container}/churn/v7"
    server = serve_bundle(uri, tmp_path / "serve", env=env, extra_args=("--no-grpc",))
    try:
        frame = customer_split[1].iloc[:20]
        r = requests.post(f"{server.url}/v2/models/churn/infer", json=v2_body(frame), timeout=30)
        assert r.status_code == 200, r.text
        proba = np.float32(r.json()["outputs"][0]["data"])
        model, _ = load_model(bundle_dir("xgboost"))
        assert np.abs(proba - model.predict_proba(frame).astype(np.float32)).max() <= 1e-6
    finally:
        server.stop()


def test_tampered_blob_bundle_is_refused(azurite, bundle_dir, tmp_path):
    from churn_core.store import open_store

    container = azurite.new_container("tamper")
    store = open_store(f"az://{container}", azurite.connection_string)
    local = tmp_path / "bundle"
    shutil.copytree(bundle_dir("logistic"), local)
    tamper(local)
    store.put_dir(local, "churn/v8")
    env = {"CHURN_AZURE_STORAGE_CONNECTION_STRING": azurite.connection_string}
    server = serve_bundle(
        f"az://{container}/churn/v8", tmp_path / "serve", env=env, extra_args=("--no-grpc",)
    )
    try:
        assert requests.get(f"{server.url}/v2/models/churn/ready", timeout=5).status_code == 503
        assert "refusing bundle" in server.log() and "sha256" in server.log()
    finally:
        server.stop()
