"""Training: the solver, inner splits, honest CV (the transform re-fitted per fold),
determinism, monotone constraints (the selection gate: test_gate.py)."""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

from churn_components.training.train import (
    cross_validate,
    fit_logistic_newton,
    fit_xgboost,
    inner_split,
    labels,
    monotone_vector,
    train_candidate,
)
from churn_core.config import XGBoostConfig
from churn_core.errors import InvalidInput
from churn_model.features import ChurnFeatures
from tests.fixtures.training import small_config


def test_newton_logistic_matches_sklearn() -> None:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(800, 12))
    y = (rng.random(800) < 1 / (1 + np.exp(-(X[:, 0] - 2 * X[:, 1] + 0.3)))).astype(int)
    for C in (0.03, 1.0):
        w = fit_logistic_newton(X, y, C)
        ref = LogisticRegression(C=C, solver="newton-cholesky", tol=1e-12, max_iter=500).fit(X, y)
        np.testing.assert_allclose(w[:-1], ref.coef_[0], atol=1e-6)
        assert w[-1] == pytest.approx(ref.intercept_[0], abs=1e-6)


def test_newton_logistic_survives_separable_data() -> None:
    X = np.r_[np.linspace(-3, -1, 50), np.linspace(1, 3, 50)][:, None]
    y = np.r_[np.zeros(50), np.ones(50)].astype(int)
    w = fit_logistic_newton(X, y, C=1e4)
    assert np.all(np.isfinite(w)) and w[0] > 0


def test_inner_split_is_stratified_seeded_and_disjoint() -> None:
    y = np.r_[np.zeros(300), np.ones(100)].astype(int)
    fit, val = inner_split(y, 0.25, seed=3)
    assert len(np.intersect1d(fit, val)) == 0 and len(fit) + len(val) == 400
    assert y[val].mean() == pytest.approx(0.25)
    again = inner_split(y, 0.25, seed=3)
    np.testing.assert_array_equal(val, again[1])


def test_labels_reject_unknown_values() -> None:
    with pytest.raises(InvalidInput, match="unknown label value 'maybe'"):
        labels(pd.DataFrame({"Churn": ["Yes", "No", "maybe"]}))
    with pytest.raises(InvalidInput, match="both classes"):
        labels(pd.DataFrame({"Churn": ["No", "No"]}))


class _RecordingFeatures(ChurnFeatures):
    fitted_rows: ClassVar[list[int]] = []

    def fit(self, X: pd.DataFrame, y: Any = None) -> ChurnFeatures:  # noqa: N803
        type(self).fitted_rows.append(len(X))
        return super().fit(X, y)


def test_cv_refits_the_transform_on_each_training_fold(synthetic_frame: pd.DataFrame) -> None:
    config = small_config()
    y = labels(synthetic_frame)
    _RecordingFeatures.fitted_rows.clear()
    features = _RecordingFeatures().fit(synthetic_frame)
    _RecordingFeatures.fitted_rows.clear()
    cv = cross_validate(synthetic_frame, y, features, "logistic", config)
    folds = config.evaluation.cv_folds
    n = len(synthetic_frame)
    # one fit per fold, each on the fold's training rows only (never all n rows)
    assert len(_RecordingFeatures.fitted_rows) == folds * config.evaluation.cv_repeats
    assert all(
        abs(rows - n * (folds - 1) / folds) <= folds for rows in _RecordingFeatures.fitted_rows
    )
    # every row is predicted exactly once per repeat, by a model that did not see it
    assert not np.isnan(cv.oof).any()
    assert set(np.unique(cv.fold)) == set(range(folds))


@pytest.mark.parametrize("kind", ["logistic", "xgboost", "mlp"])
def test_same_seed_same_numbers(kind: str, synthetic_frame: pd.DataFrame) -> None:
    config = small_config()
    features = ChurnFeatures().fit(synthetic_frame)
    a = train_candidate(synthetic_frame, features, kind, config)
    b = train_candidate(synthetic_frame, features, kind, config)
    np.testing.assert_array_equal(a.cv.oof, b.cv.oof)
    X = features.transform(synthetic_frame)
    np.testing.assert_array_equal(a.estimator.score(X), b.estimator.score(X))


def test_monotone_vector_names_unknown_features() -> None:
    cfg = XGBoostConfig(monotone_constraints={"tenure": -1, "Contract=Two year": -1})
    assert monotone_vector(["tenure", "x", "Contract=Two year"], cfg) == "(-1,0,-1)"
    assert monotone_vector(["tenure"], XGBoostConfig()) is None
    with pytest.raises(InvalidInput, match="unknown output feature 'Contract=Two year'"):
        monotone_vector(["tenure"], cfg)


def test_xgboost_respects_monotone_constraints() -> None:
    rng = np.random.default_rng(4)
    X = rng.normal(size=(1500, 3))
    # the data say risk rises with x0; the constraint says it may only fall
    y = (rng.random(1500) < 1 / (1 + np.exp(-2 * X[:, 0] + X[:, 1]))).astype(int)
    cfg = XGBoostConfig(max_n_estimators=80, monotone_constraints={"x0": -1})
    scorer = fit_xgboost(X, y, cfg, seed=0, feature_names=["x0", "x1", "x2"])
    grid = np.tile(X[:200], (1, 1))
    low, high = grid.copy(), grid.copy()
    high[:, 0] += 1.0
    assert np.all(scorer.score(high) <= scorer.score(low) + 1e-7)


def test_excluded_features_are_never_split_on() -> None:
    import xgboost as xgb

    rng = np.random.default_rng(5)
    X = rng.normal(size=(1500, 3))
    y = (rng.random(1500) < 1 / (1 + np.exp(-3 * X[:, 2]))).astype(int)  # x2 carries the signal
    cfg = XGBoostConfig(max_n_estimators=40, exclude_features=("band_*",))
    scorer = fit_xgboost(X, y, cfg, seed=0, feature_names=["x0", "x1", "band_2"])
    assert scorer.params["excluded_features"] == ["band_2"]
    contribs = scorer.booster.predict(xgb.DMatrix(X[:50]), pred_contribs=True)
    assert np.all(contribs[:, 2] == 0.0)  # never used, zero attribution
    with pytest.raises(InvalidInput, match="'nope_\\*' matches no output feature"):
        fit_xgboost(X, y, XGBoostConfig(exclude_features=("nope_*",)), 0, ["x0", "x1", "x2"])
