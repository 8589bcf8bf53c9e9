"""The bundle's fitted pipeline as a scikit-learn Pipeline, for MLServer's sklearn runtime.

The steps are the very objects of the bundle: the fitted `ChurnFeatures` and
the fitted scorer (+ calibrator), so MLServer serves the same fitted pipeline
as `churn serve`. MLServer loads the joblib file in its own environment, with
this folder on PYTHONPATH so the classifier step unpickles.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.pipeline import Pipeline


class ScorerClassifier(ClassifierMixin, BaseEstimator):
    """A fitted churn scorer (and calibrator) with the sklearn classifier API."""

    def __init__(self, scorer: Any = None, calibrator: Any = None) -> None:
        self.scorer = scorer
        self.calibrator = calibrator
        self.classes_ = np.array([0, 1])
        self.is_fitted_ = True

    def fit(self, X: Any, y: Any = None) -> ScorerClassifier:  # noqa: N803
        return self  # fitted by the training pipeline

    def predict_proba(self, X: Any) -> np.ndarray:  # noqa: N803
        p = self.scorer.score(X)
        if self.calibrator is not None:
            p = self.calibrator.apply(p)
        return np.column_stack([1.0 - p, p])

    def predict(self, X: Any) -> np.ndarray:  # noqa: N803
        return (self.predict_proba(X)[:, 1] >= 0.5).astype(np.int64)


def pipeline_of(model: Any) -> Pipeline:
    """sklearn Pipeline(features -> classifier) from a `ChurnModel`."""
    return Pipeline(
        [
            ("features", model.features),
            ("classifier", ScorerClassifier(model.estimator, model.calibrator)),
        ]
    )
