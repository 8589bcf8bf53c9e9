"""scikit-learn Pipelines for MLServer's sklearn runtime: ours, and a conventional reference.

`pipeline_of(model)`: the bundle's fitted pipeline as an sklearn Pipeline. The
steps are the very objects of the bundle: the fitted `ChurnFeatures` and the
fitted scorer (+ calibrator), so MLServer serves the same fitted pipeline as
`churn serve`. MLServer loads the joblib file in its own environment, with
this file and the churn_model / churn_core packages on PYTHONPATH so the steps
unpickle.

`reference_pipeline(train, ...)`: what a user would deploy without our code:
ColumnTransformer (OneHotEncoder on the categoricals; the numbers passed
through, blank TotalCharges imputed as 0.0) + xgboost's XGBClassifier, fitted
on the same training rows with the same tree settings and tree count. Only
sklearn and xgboost objects: it unpickles anywhere both are installed.
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


def reference_pipeline(
    train: Any, n_estimators: int, xgb_params: dict[str, Any], seed: int
) -> Pipeline:
    """ColumnTransformer + XGBClassifier fitted on `train` (the contract's columns, Churn label).

    `xgb_params` are the tree settings of model_config.yaml's xgboost section
    (depth, learning rate, sampling, regularisation, bins); no monotone
    constraints or excluded features: a conventional pipeline.
    """
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.preprocessing import OneHotEncoder
    from xgboost import XGBClassifier

    from churn_model.contract import CATEGORICAL_NAMES, LABEL_COLUMN, NUMERIC_NAMES

    columns = ColumnTransformer(
        [
            ("categorical", OneHotEncoder(handle_unknown="ignore"), list(CATEGORICAL_NAMES)),
            # trees need no scaling; blank TotalCharges (tenure 0) is NaN here: nothing billed
            ("numeric", SimpleImputer(strategy="constant", fill_value=0.0), list(NUMERIC_NAMES)),
        ]
    )
    classifier = XGBClassifier(
        n_estimators=n_estimators,
        **xgb_params,
        tree_method="hist",
        n_jobs=1,
        random_state=seed,
    )
    y = (train[LABEL_COLUMN].to_numpy() == "Yes").astype(np.int64)
    pipeline = Pipeline([("columns", columns), ("classifier", classifier)])
    return pipeline.fit(train[list(CATEGORICAL_NAMES) + list(NUMERIC_NAMES)], y)
