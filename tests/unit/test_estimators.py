"""The fitted scorers: the protocol, pickling, determinism (speed: `make bench-model`)."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch
import xgboost as xgb
from sklearn.linear_model import LogisticRegression

from churn_model.model import Scorer
from churn_model.scorers import LogisticScorer, MLPScorer, XGBoostScorer


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(400, 6))
    logit = 1.5 * X[:, 0] - X[:, 1] + 0.5 * X[:, 2] * X[:, 3]
    y = (rng.random(400) < 1 / (1 + np.exp(-logit))).astype(int)
    return X, y


def _logistic(X: np.ndarray, y: np.ndarray) -> LogisticScorer:
    lr = LogisticRegression(C=1.0, max_iter=1000).fit(X, y)
    return LogisticScorer(coef=lr.coef_[0], intercept=float(lr.intercept_[0]))


def _xgboost(X: np.ndarray, y: np.ndarray) -> XGBoostScorer:
    params = {"objective": "binary:logistic", "max_depth": 2, "nthread": 1, "seed": 0}
    return XGBoostScorer(xgb.train(params, xgb.DMatrix(X, label=y), num_boost_round=20))


def _mlp(X: np.ndarray, y: np.ndarray) -> MLPScorer:
    torch.manual_seed(0)
    module = torch.nn.Sequential(
        torch.nn.Linear(X.shape[1], 8), torch.nn.ReLU(), torch.nn.Linear(8, 1)
    )
    opt = torch.optim.Adam(module.parameters(), lr=0.05)
    xt, yt = torch.tensor(X, dtype=torch.float32), torch.tensor(y, dtype=torch.float32)
    for _ in range(50):
        opt.zero_grad()
        loss = torch.nn.functional.binary_cross_entropy_with_logits(module(xt).squeeze(1), yt)
        loss.backward()
        opt.step()
    return MLPScorer(module)


BUILDERS = {"logistic": _logistic, "xgboost": _xgboost, "mlp": _mlp}


@pytest.mark.parametrize("kind", sorted(BUILDERS))
def test_scorer_protocol_and_probabilities(kind: str, data: tuple[np.ndarray, np.ndarray]) -> None:
    X, y = data
    scorer = BUILDERS[kind](X, y)
    typed: Scorer = scorer  # the protocol ChurnModel relies on
    assert typed.kind == kind
    assert scorer.kind == kind
    assert scorer.n_features == X.shape[1]
    p = scorer.score(X)
    assert p.shape == (len(X),) and p.dtype == np.float64
    assert ((p > 0) & (p < 1)).all()
    # the margin is the log-odds of the probability
    np.testing.assert_allclose(1 / (1 + np.exp(-scorer.margin(X))), p, rtol=1e-5, atol=1e-6)
    # it learned something: positives score higher than negatives on average
    assert p[y == 1].mean() > p[y == 0].mean() + 0.1
    # one row, as a 2-d matrix or a 1-d vector, gives the same number as in the batch
    np.testing.assert_allclose(scorer.score(X[3:4]), p[3:4], rtol=1e-6)
    np.testing.assert_allclose(scorer.score(X[3]), p[3:4], rtol=1e-6)


@pytest.mark.parametrize("kind", sorted(BUILDERS))
def test_scorer_pickles_and_is_deterministic(
    kind: str, data: tuple[np.ndarray, np.ndarray]
) -> None:
    X, y = data
    scorer = BUILDERS[kind](X, y)
    again = pickle.loads(pickle.dumps(scorer))
    assert again.kind == kind
    np.testing.assert_array_equal(again.score(X), scorer.score(X))
    np.testing.assert_array_equal(scorer.score(X), scorer.score(X))
    if kind == "xgboost":
        cfg = again.booster.save_config()
        assert '"nthread":"1"' in cfg.replace(" ", "")


def test_logistic_scorer_matches_sklearn(data: tuple[np.ndarray, np.ndarray]) -> None:
    X, y = data
    lr = LogisticRegression(C=0.3, max_iter=1000).fit(X, y)
    scorer = LogisticScorer(coef=lr.coef_[0], intercept=lr.intercept_[0])
    np.testing.assert_allclose(scorer.score(X), lr.predict_proba(X)[:, 1], rtol=1e-12)


def test_xgboost_margin_contributions_sum_to_margin(data: tuple[np.ndarray, np.ndarray]) -> None:
    X, y = data
    scorer = _xgboost(X, y)
    contribs = scorer.booster.predict(xgb.DMatrix(X[:5]), pred_contribs=True)
    np.testing.assert_allclose(contribs.sum(axis=1), scorer.margin(X[:5]), rtol=1e-5, atol=1e-5)
