"""Probability calibrators: monotone maps from a raw score to a calibrated probability.

They implement the `Calibrator` protocol of `churn_model.model`, keep
only numbers (they pickle small and apply in microseconds on one row), and
are fitted (`churn_components.training.calibrate`) on out-of-fold predictions of the
training split only.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.special import expit, logit

_EPS = 1e-6


def _logit(p: np.ndarray) -> np.ndarray:
    return np.asarray(logit(np.clip(np.asarray(p, dtype=np.float64), _EPS, 1 - _EPS)))


@dataclass
class SigmoidCalibrator:
    """Platt scaling on the log-odds: sigmoid(slope * logit(p) + intercept)."""

    slope: float
    intercept: float
    method: str = "sigmoid"

    def apply(self, p: np.ndarray) -> np.ndarray:
        """Calibrated probabilities."""
        return np.asarray(expit(self.slope * _logit(p) + self.intercept))


@dataclass
class IsotonicCalibrator:
    """Isotonic regression as its breakpoints, applied by linear interpolation."""

    x: np.ndarray
    y: np.ndarray
    method: str = "isotonic"

    def apply(self, p: np.ndarray) -> np.ndarray:
        """Calibrated probabilities."""
        out = np.interp(np.asarray(p, dtype=np.float64), self.x, self.y)
        return np.clip(out, _EPS, 1 - _EPS)


Fitted = SigmoidCalibrator | IsotonicCalibrator
