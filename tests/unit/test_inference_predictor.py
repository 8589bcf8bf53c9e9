"""The KServe model classes in process: loading, refusal, predict, explain, error mapping."""

from __future__ import annotations

import logging
import shutil

import numpy as np
import pytest
from kserve import errors as kerr
from prometheus_client import REGISTRY

from churn_inference.metrics import churn_metrics
from churn_inference.predictor import ChurnExplainerModel, ChurnPredictor
from churn_model.contract import FEATURE_NAMES
from tests.fixtures.bundles import tamper
from tests.fixtures.model_server import v2_request


@pytest.fixture(scope="module")
def predictor(bundle_dir):
    model = ChurnPredictor("churn-unit", str(bundle_dir("xgboost")))
    assert model.load()
    return model


def test_predict_equals_offline_and_reports_version(predictor, customer_split):
    frame = customer_split[1].iloc[:40]
    response = predictor.predict(v2_request(frame))
    proba = response.get_output_by_name("churn_probability").data
    churn = response.get_output_by_name("churn").data
    offline = predictor.bundle.model.predict_proba(frame)
    np.testing.assert_array_equal(proba, offline.astype(np.float32))
    np.testing.assert_array_equal(churn, offline >= predictor.bundle.threshold)
    assert response.model_version == "7"
    assert proba.dtype == np.float32 and churn.dtype == np.bool_


def test_requested_outputs_filter(predictor, customer_split):
    response = predictor.predict(v2_request(customer_split[1].iloc[:2], outputs=["churn"]))
    assert [o.name for o in response.outputs] == ["churn"]
    with pytest.raises(kerr.InvalidInput, match="requested output 'score' does not exist"):
        predictor.predict(v2_request(customer_split[1].iloc[:2], outputs=["score"]))


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
        predictor.predict(v2_request(frame))
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
    assert "model.json has sha256" in model.load_error
    assert "NOT READY" in caplog.text and "refusing" in caplog.text
    assert model.load() is False  # no second attempt
    explainer = ChurnExplainerModel(model)
    assert explainer.ready is False
    with pytest.raises(kerr.ModelNotReady, match="bundle refused"):
        model.predict(v2_request(customer_split[1].iloc[:1], "churn-tampered"))


def test_missing_bundle_is_not_ready(tmp_path):
    model = ChurnPredictor("churn-missing", str(tmp_path / "nothing"))
    assert model.load() is False
    assert "does not exist" in model.load_error


def test_metrics_register_once():
    assert churn_metrics() is churn_metrics()


def test_v2_explainer_outputs_carry_the_what_ifs(bundle_dir, customer_split):
    import orjson
    import pandas as pd

    from tests.fixtures.training import project_config

    predictor = ChurnPredictor(
        "churn-whatif", str(bundle_dir("xgboost")), explainer_config=project_config().explainer
    )
    assert predictor.load()
    explainer = ChurnExplainerModel(predictor)
    frame = customer_split[1].iloc[:30].reset_index(drop=True)
    response = explainer.predict(v2_request(frame, explainer.name))
    outs = {o.name: o for o in response.outputs}
    k = predictor.bundle.explainer.top_k
    for name, datatype in [
        ("reasons", "BYTES"),
        ("suggestions", "BYTES"),
        ("what_if", "BYTES"),
        ("what_if_probability", "FP32"),
        ("what_if_change", "BYTES"),
    ]:
        assert outs[name].datatype == datatype and list(outs[name].shape) == [30, k], name
    texts = np.asarray(outs["what_if"].data, dtype=object).reshape(30, k)
    changes = np.asarray(outs["what_if_change"].data, dtype=object).reshape(30, k)
    proba = np.asarray(outs["what_if_probability"].data, dtype=np.float32).reshape(30, k)
    suggestions = np.asarray(outs["suggestions"].data, dtype=object).reshape(30, k)
    filled = [(i, j) for i in range(30) for j in range(k) if changes[i, j]]
    assert len(filled) > 10
    # an empty slot is empty in every what-if output; a what-if always has its suggestion
    has_change = changes.astype(bool)
    np.testing.assert_array_equal(texts.astype(bool), has_change)
    np.testing.assert_array_equal(proba != -1.0, has_change)  # -1: no what-if
    assert ((proba == -1.0) | ((proba >= 0) & (proba <= 1))).all()
    assert all(suggestions[i, j] for i, j in filled)
    rows = []
    for i, j in filled:
        row = frame.iloc[[i]].copy()
        for name, value in orjson.loads(changes[i, j]).items():
            row[name] = value
        rows.append(row)
    offline = predictor.bundle.model.predict_proba(pd.concat(rows, ignore_index=True))
    np.testing.assert_array_equal([proba[i, j] for i, j in filled], offline.astype(np.float32))


def test_an_explainer_config_naming_no_attribute_leaves_the_model_not_ready(bundle_dir):
    from churn_core.config import ExplainerConfig

    config = ExplainerConfig(context=("gendr",))
    model = ChurnPredictor("churn-badconfig", str(bundle_dir("logistic")), explainer_config=config)
    assert model.load() is False and model.ready is False
    assert "explainer.context: 'gendr' is not a customer attribute" in model.load_error


def _with_ids(request, ids):
    from kserve import InferInput

    tensor = InferInput("customerID", [len(ids)], "BYTES")
    tensor.set_data_from_numpy(np.array(ids, dtype=object), binary_data=False)
    request.inputs.append(tensor)
    return request


def test_customer_ids_are_echoed_and_the_request_id_kept(predictor, customer_split):
    frame = customer_split[1].iloc[:3]
    ids = ["7590-VHVEG", "5575-GNVDE", "3668-QPYBK"]
    request = _with_ids(v2_request(frame), ids)
    request.id = "req-42"
    response = predictor.predict(request)
    assert response.id == "req-42"
    assert response.get_output_by_name("customerID").data == ids
    offline = predictor.bundle.model.predict_proba(frame)
    np.testing.assert_array_equal(
        response.get_output_by_name("churn_probability").data, offline.astype(np.float32)
    )
    anonymous = predictor.predict(v2_request(frame))
    assert anonymous.get_output_by_name("customerID") is None
    assert len(anonymous.id) == 36  # a uuid4 when the request names none


@pytest.mark.parametrize(
    ("ids", "message"),
    [
        (["", "b"], "is not an id"),
        (["a\nb", "b"], "is not an id"),
        (["x" * 65, "b"], "longer than 64"),
        (["a"], "has 1 values, expected 2"),
    ],
)
def test_bad_customer_ids_are_400s_naming_the_value(predictor, customer_split, ids, message):
    request = _with_ids(v2_request(customer_split[1].iloc[:2]), ids)
    with pytest.raises(kerr.InvalidInput, match=message):
        predictor.predict(request)
