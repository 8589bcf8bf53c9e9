"""Probability calibrators: monotone maps from a raw score to a calibrated probability.

They implement the `Calibrator` protocol of `churn_model.model`, keep
only numbers (stored as JSON by `to_state`, applied in microseconds on one
row), and are fitted (`churn_components.training.calibrate`) on out-of-fold
predictions of the training split only. JSON keeps every float exactly
(Python writes the shortest repr that reads back to the same double).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.special import expit, logit

from churn_model.serialize import State

_EPS = 1e-6


def expected_calibration_error(y: np.ndarray, p: np.ndarray, bins: int = 10) -> float:
    """ECE over `bins` equal-width bins of [0, 1] (p == 1 falls in the last bin).

    One definition for the training report and the realized figures of the
    drift service, so the two compare.
    """
    y = np.asarray(y, dtype=np.float64)
    p = np.asarray(p, dtype=np.float64)
    if len(p) == 0:
        return 0.0
    idx = np.minimum((p * bins).astype(np.int64), bins - 1)
    sum_p = np.bincount(idx, weights=p, minlength=bins)
    sum_y = np.bincount(idx, weights=y, minlength=bins)
    return float(np.sum(np.abs(sum_p - sum_y)) / len(p))


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

    def to_state(self) -> State:
        """Slope and intercept as JSON."""
        return State(fields={"slope": float(self.slope), "intercept": float(self.intercept)})

    @classmethod
    def from_state(cls, state: State) -> SigmoidCalibrator:
        """The calibrator from its two numbers."""
        return cls(slope=float(state.fields["slope"]), intercept=float(state.fields["intercept"]))


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

    def to_state(self) -> State:
        """The breakpoints as JSON lists."""
        return State(fields={"x": [float(v) for v in self.x], "y": [float(v) for v in self.y]})

    @classmethod
    def from_state(cls, state: State) -> IsotonicCalibrator:
        """The calibrator from its breakpoints."""
        x = np.asarray(state.fields["x"], dtype=np.float64)
        y = np.asarray(state.fields["y"], dtype=np.float64)
        if x.ndim != 1 or x.shape != y.shape or not len(x):
            raise ValueError(f"isotonic breakpoints: {len(x)} x and {len(y)} y values")
        return cls(x=x, y=y)


Fitted = SigmoidCalibrator | IsotonicCalibrator
