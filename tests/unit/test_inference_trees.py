"""The compiled tree evaluator reproduces the booster, or is not used."""

from __future__ import annotations

import numpy as np
import pytest

from churn_inference.loading import open_bundle
from churn_model.bundle import load_model
from churn_model.trees import (
    SMALL_BATCH,
    AcceleratedXGBoostScorer,
    CompiledTrees,
    accelerate,
)


@pytest.fixture(scope="module")
def xgb_model(bundle_dir):
    return load_model(bundle_dir("xgboost"))[0]


def test_same_margins_and_probabilities_as_the_booster(xgb_model, customer_split):
    X = xgb_model.features.transform(customer_split[1])  # noqa: N806
    compiled = CompiledTrees(xgb_model.estimator.booster)
    fast = AcceleratedXGBoostScorer(xgb_model.estimator, compiled)
    np.testing.assert_array_equal(compiled.margin(X), xgb_model.estimator.margin(X))
    assert np.abs(fast.compiled_score(X) - xgb_model.estimator.score(X)).max() <= 1e-7
    for i in range(0, 50):  # single rows: the serving case
        assert abs(fast.score(X[i : i + 1])[0] - xgb_model.estimator.score(X[i : i + 1])[0]) <= 1e-7


def test_missing_values_follow_the_default_direction(xgb_model, customer_split):
    X = xgb_model.features.transform(customer_split[1].iloc[:200]).copy()  # noqa: N806
    X[::3, :] = np.where(np.random.default_rng(0).random(X[::3].shape) < 0.3, np.nan, X[::3])
    compiled = CompiledTrees(xgb_model.estimator.booster)
    np.testing.assert_array_equal(compiled.margin(X), xgb_model.estimator.margin(X))


def test_large_batches_use_the_booster(xgb_model, customer_split):
    X = xgb_model.features.transform(customer_split[1].iloc[: SMALL_BATCH + 5])  # noqa: N806
    fast = AcceleratedXGBoostScorer(xgb_model.estimator, CompiledTrees(xgb_model.estimator.booster))
    np.testing.assert_array_equal(fast.score(X), xgb_model.estimator.score(X))


def test_served_bundle_is_accelerated_and_keeps_the_booster_for_shap(bundle_dir):
    served = open_bundle(str(bundle_dir("xgboost")))
    assert isinstance(served.model.estimator, AcceleratedXGBoostScorer)
    assert served.model.estimator.booster is not None


def test_other_objectives_keep_the_booster(customer_split, xgb_model):
    import xgboost as xgb

    X = xgb_model.features.transform(customer_split[0].iloc[:300])  # noqa: N806
    y = np.random.default_rng(1).random(len(X))
    booster = xgb.train({"objective": "reg:squarederror", "nthread": 1}, xgb.DMatrix(X, y), 5)

    class Reg:
        kind = "xgboost"

        def __init__(self, b):
            self.booster = b

        def score(self, X):  # noqa: N803
            return booster.inplace_predict(X)

    class Model:
        estimator = Reg(booster)

    model = Model()
    assert accelerate(model, X) is False
    assert isinstance(model.estimator, Reg)
