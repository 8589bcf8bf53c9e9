"""The served unit: the fitted feature transform and an estimator, predicting together.

Pipeline and server both call `ChurnModel.predict_proba*`; the transform
inside is the one fitted by the features stage, rebuilt in a server from the
numbers the bundle stores (`churn_model.bundle`), so both compute the same.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import pandas as pd

from churn_model.features import ChurnFeatures


class Scorer(Protocol):
    """A fitted estimator over the transformed matrix."""

    kind: str

    def score(self, X: np.ndarray) -> np.ndarray:  # noqa: N803
        """Churn probability (before calibration) per row."""
        ...


class Calibrator(Protocol):
    """A monotone map from raw to calibrated probability."""

    def apply(self, p: np.ndarray) -> np.ndarray:
        """Calibrated probabilities."""
        ...


@dataclass
class ChurnModel:
    """Transform + estimator (+ calibrator) + decision threshold."""

    features: ChurnFeatures
    estimator: Scorer
    calibrator: Calibrator | None = None
    threshold: float = 0.5

    @property
    def kind(self) -> str:
        """Estimator family: logistic, xgboost or mlp."""
        return self.estimator.kind

    def predict_proba_matrix(self, X: np.ndarray) -> np.ndarray:  # noqa: N803
        """Churn probability from an already transformed matrix."""
        p = self.estimator.score(X)
        return self.calibrator.apply(p) if self.calibrator is not None else p

    def predict_proba_columns(self, cols: Mapping[str, Any]) -> np.ndarray:
        """Churn probability from column arrays (the serving path)."""
        return self.predict_proba_matrix(self.features.transform_columns(cols))

    def predict_proba(self, frame: pd.DataFrame) -> np.ndarray:
        """Churn probability per row of a frame with the contract's feature columns."""
        return self.predict_proba_matrix(self.features.transform(frame))

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        """Churn decision at the bundle's threshold."""
        return self.predict_proba(frame) >= self.threshold
