"""The KServe model classes in process: loading, refusal, predict, explain, error mapping."""

from __future__ import annotations

import logging
import shutil

import numpy as np
import pytest
from kserve import InferInput, InferRequest
from kserve import errors as kerr
from prometheus_client import REGISTRY

from churn_components.contract import FEATURE_COLUMNS, FEATURE_NAMES, Categorical
from churn_inference.metrics import churn_metrics
from churn_inference.predictor import ChurnExplainerModel, ChurnPredictor
from tests.fixtures.bundles import tamper


def request(frame, name="churn", outputs=None):
    inputs = []
    for col in FEATURE_COLUMNS:
        values = frame[col.name].to_numpy()
        if isinstance(col, Categorical):
            arr, dt = values.astype(object), "BYTES"
        elif col.integer:
            arr, dt = values.astype(np.int64), "INT64"
        else:
            arr, dt = values.astype(np.float64), "FP64"
        tensor = InferInput(col.name, [len(arr)], dt)
        tensor.set_data_from_numpy(arr, binary_data=False)
        inputs.append(tensor)
    from kserve.protocol.infer_type import RequestedOutput

    wanted = [RequestedOutput(o) for o in outputs] if outputs else None
    return InferRequest(
        model_name=name,
        infer_inputs=inputs,
        parameters={"content_type": "pd"},
        request_outputs=wanted,
    )


@pytest.fixture(scope="module")
def predictor(bundle_dir):
    model = ChurnPredictor("churn-unit", str(bundle_dir("xgboost")))
    assert model.load()
    return model


def test_predict_equals_offline_and_reports_version(predictor, customer_split):
    frame = customer_split[1].iloc[:40]
    response = predictor.predict(request(frame))
    proba = response.get_output_by_name("churn_probability").data
    churn = response.get_output_by_name("churn").data
    offline = predictor.bundle.model.predict_proba(frame)
    np.testing.assert_array_equal(proba, offline.astype(np.float32))
    np.testing.assert_array_equal(churn, offline >= predictor.bundle.threshold)
    assert response.model_version == "7"
    assert proba.dtype == np.float32 and churn.dtype == np.bool_


def test_requested_outputs_filter(predictor, customer_split):
    response = predictor.predict(request(customer_split[1].iloc[:2], outputs=["churn"]))
    assert [o.name for o in response.outputs] == ["churn"]
    with pytest.raises(kerr.InvalidInput, match="requested output 'score' does not exist"):
        predictor.predict(request(customer_split[1].iloc[:2], outputs=["score"]))


def test_v1_instances_and_explain(predictor, customer_split):
    frame = customer_split[1].iloc[:3]
    instances = frame[list(FEATURE_NAMES)].to_dict(orient="records")
    out = predictor.predict({"instances": instances})
    assert out["model_version"] == "7"
    assert [p["churn_probability"] for p in out["predictions"]] == pytest.approx(
        predictor.bundle.model.predict_proba(frame).tolist(), abs=1e-6
    )
    explained = predictor.explain({"instances": instances})
    assert len(explained["explanations"]) == 3
    assert set(explained["explanations"][0]["attributions"]) == set(FEATURE_NAMES)


def test_invalid_input_becomes_kserve_400_and_is_counted(predictor, customer_split):
    frame = customer_split[1].iloc[:1].copy()
    frame["Contract"] = "Weekly"
    before = REGISTRY.get_sample_value(
        "churn_validation_errors_total", {"model_name": "churn-unit", "column": "Contract"}
    )
    with pytest.raises(kerr.InvalidInput, match="'Contract': unknown category 'Weekly'"):
        predictor.predict(request(frame))
    after = REGISTRY.get_sample_value(
        "churn_validation_errors_total", {"model_name": "churn-unit", "column": "Contract"}
    )
    assert after == (before or 0) + 1


def test_tampered_bundle_is_refused_and_stays_not_ready(
    bundle_dir, tmp_path, caplog, customer_split
):
    copy = tmp_path / "bundle"
    shutil.copytree(bundle_dir("logistic"), copy)
    tamper(copy)
    model = ChurnPredictor("churn-tampered", str(copy))
    with caplog.at_level(logging.ERROR):
        assert model.load() is False
    assert model.ready is False
    assert "model.pkl has sha256" in model.load_error
    assert "NOT READY" in caplog.text and "refusing" in caplog.text
    assert model.load() is False  # no second attempt, no unpickling
    explainer = ChurnExplainerModel(model)
    assert explainer.ready is False
    with pytest.raises(kerr.ModelNotReady, match="bundle refused"):
        model.predict(request(customer_split[1].iloc[:1], "churn-tampered"))


def test_missing_bundle_is_not_ready(tmp_path):
    model = ChurnPredictor("churn-missing", str(tmp_path / "nothing"))
    assert model.load() is False
    assert "does not exist" in model.load_error


def test_metrics_register_once():
    assert churn_metrics() is churn_metrics()
