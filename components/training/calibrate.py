"""Fitting the calibrators of `churn_model.calibration` on out-of-fold predictions."""

from __future__ import annotations

import numpy as np
from scipy.special import expit

from churn_model.calibration import Fitted, IsotonicCalibrator, SigmoidCalibrator, _logit


def fit_sigmoid(p: np.ndarray, y: np.ndarray) -> SigmoidCalibrator:
    """Platt scaling: a one-feature logistic regression on logit(p), unpenalised."""
    z = _logit(p)
    a, b = 1.0, 0.0
    s = np.where(y == 1, 1.0, -1.0)
    for _ in range(50):  # Newton on two parameters
        q = expit(a * z + b)
        w = q * (1 - q) + 1e-12
        g = np.array([np.sum((q - y) * z), np.sum(q - y)])
        h = np.array([[np.sum(w * z * z), np.sum(w * z)], [np.sum(w * z), np.sum(w)]])
        step = np.linalg.solve(h + 1e-9 * np.eye(2), g)
        t = 1.0
        f = np.sum(np.logaddexp(0, -s * (a * z + b)))
        while t > 1e-6:
            a2, b2 = a - t * step[0], b - t * step[1]
            if np.sum(np.logaddexp(0, -s * (a2 * z + b2))) <= f:
                break
            t *= 0.5
        a, b = a2, b2
        if np.max(np.abs(t * step)) < 1e-10:
            break
    return SigmoidCalibrator(slope=float(a), intercept=float(b))


def fit_isotonic(p: np.ndarray, y: np.ndarray) -> IsotonicCalibrator:
    """Isotonic regression (sklearn), kept as its increasing breakpoints."""
    from sklearn.isotonic import IsotonicRegression

    iso = IsotonicRegression(out_of_bounds="clip", y_min=0.0, y_max=1.0).fit(p, y)
    return IsotonicCalibrator(
        x=np.asarray(iso.X_thresholds_, dtype=np.float64),
        y=np.asarray(iso.y_thresholds_, dtype=np.float64),
    )


def fit_calibrator(method: str, p: np.ndarray, y: np.ndarray) -> Fitted | None:
    """Fit `method` (none, sigmoid, isotonic) on raw probabilities and labels."""
    if method == "none":
        return None
    if method == "sigmoid":
        return fit_sigmoid(p, y)
    if method == "isotonic":
        return fit_isotonic(p, y)
    raise ValueError(f"unknown calibration method {method!r}")
