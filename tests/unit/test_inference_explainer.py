"""Attributions mapped back to customer attributes, reasons and retention suggestions."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.special import expit

from churn_core.config import RetentionAction
from churn_inference.loading import open_bundle
from churn_model.contract import FEATURE_NAMES
from churn_model.explain import Explainer, attribute_matrix, load_background
from churn_model.features import OutputFeature


def columns(frame):
    return {
        n: frame[n].to_numpy(dtype=object if frame[n].dtype == object else np.float64)
        for n in FEATURE_NAMES
    }


def test_engineered_columns_split_evenly_and_keep_the_total():
    feats = [
        OutputFeature("Contract=Two year", ("Contract",)),
        OutputFeature("charges_per_tenure_month", ("TotalCharges", "tenure")),
    ]
    m = attribute_matrix(feats, ["tenure", "Contract", "TotalCharges"])
    assert m.tolist() == [[0.0, 1.0, 0.0], [0.5, 0.0, 0.5]]
    col_attr = np.array([[0.3, -0.8]])
    assert (col_attr @ m).sum() == pytest.approx(col_attr.sum())


@pytest.mark.parametrize(("kind", "tol"), [("xgboost", 1e-4), ("logistic", 1e-9), ("mlp", 0.03)])
def test_attributions_add_up_to_the_margin(bundle_dir, customer_split, kind, tol):
    served = open_bundle(str(bundle_dir(kind)))
    frame = customer_split[1].iloc[:50]
    cols = columns(frame)
    exp = served.explainer.explain_columns(cols)
    X = served.model.features.transform_columns(cols)  # noqa: N806
    margin = served.model.estimator.margin(X)
    assert exp.attributions.shape == (50, len(FEATURE_NAMES))
    # exact for TreeSHAP (float32) and linear; integrated gradients up to its integration error
    gap = np.abs(exp.base + exp.attributions.sum(axis=1) - margin)
    assert gap.max() <= tol * max(1.0, float(np.abs(margin - exp.base).max()))
    # the probability shown is exactly the served one
    np.testing.assert_array_equal(exp.probability, served.model.predict_proba(frame))
    np.testing.assert_allclose(expit(margin), exp.probability, atol=1e-6)


def test_treeshap_is_exact_against_xgboost(bundle_dir, customer_split):
    import xgboost as xgb

    served = open_bundle(str(bundle_dir("xgboost")))
    frame = customer_split[1].iloc[:5]
    X = served.model.features.transform(frame)  # noqa: N806
    contribs = served.model.estimator.booster.predict(xgb.DMatrix(X), pred_contribs=True)
    exp = served.explainer.explain_columns(columns(frame))
    by_attr = contribs[:, :-1] @ served.explainer.attributor.to_attributes
    np.testing.assert_allclose(exp.attributions, by_attr, rtol=1e-6, atol=1e-6)


def test_logistic_attribution_is_coef_times_distance_from_background_mean(
    bundle_dir, customer_split
):
    served = open_bundle(str(bundle_dir("logistic")))
    frame = customer_split[1].iloc[:3]
    X = served.model.features.transform(frame)  # noqa: N806
    background = load_background(bundle_dir("logistic"), served.metadata)
    assert background is not None
    cols_attr = served.model.estimator.coef * (X - background.mean(axis=0))
    exp = served.explainer.explain_columns(columns(frame))
    np.testing.assert_allclose(
        exp.attributions, cols_attr @ served.explainer.attributor.to_attributes, atol=1e-12
    )


def test_reasons_are_readable_ranked_and_carry_suggestions(bundle_dir, customer_split):
    served = open_bundle(str(bundle_dir("xgboost")))
    retention = {
        "Contract": [RetentionAction(when="Month-to-month", suggestion="Offer a contract.")]
    }
    explainer = Explainer(served.model, served.threshold, retention=retention, top_k=3)
    frame = customer_split[1]
    risky = frame[(frame["Contract"] == "Month-to-month") & (frame["InternetService"] != "No")]
    exp = explainer.explain_columns(columns(risky.iloc[:20]))
    seen_contract = False
    for row, attrs in zip(exp.reasons, exp.attributions, strict=True):
        assert 0 < len(row) <= 3
        contributions = [r.log_odds for r in row]
        assert contributions == sorted(contributions, reverse=True)
        assert all(c > 0 for c in contributions)
        assert max(attrs) == pytest.approx(row[0].log_odds)
        for r in row:
            assert r.text.startswith(f"{r.attribute} = ")
            assert "raises churn risk by" in r.text
            assert r.probability_points > 0
            if r.attribute == "Contract":
                seen_contract = True
                assert r.suggestion == "Offer a contract."
    assert seen_contract


def test_suggestion_matches_value_or_wildcard(bundle_dir):
    served = open_bundle(str(bundle_dir("logistic")))
    retention = {
        "TechSupport": [RetentionAction(when="No", suggestion="Free tech support.")],
        "tenure": [RetentionAction(when="*", suggestion="Loyalty programme.")],
    }
    explainer = Explainer(served.model, served.threshold, retention=retention)
    assert explainer.suggestion("TechSupport", "No") == "Free tech support."
    assert explainer.suggestion("TechSupport", "Yes") == ""
    assert explainer.suggestion("tenure", 3.0) == "Loyalty programme."
    assert explainer.suggestion("gender", "Male") == ""
