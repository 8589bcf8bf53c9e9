"""The three fitted scorers behind `ChurnModel`: logistic regression, XGBoost, a torch MLP.

Each keeps only what prediction needs, pickles, is deterministic and is fast
on one row. Each has `score(X) -> p` (churn probability before calibration)
and `margin(X) -> log-odds`, the quantity the explainers attribute.

The training code (`churn_components.training.train`) fits them; here they only predict.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.special import expit


def _as_matrix(X: np.ndarray) -> np.ndarray:  # noqa: N803
    X = np.asarray(X, dtype=np.float64)
    if X.ndim == 1:
        X = X.reshape(1, -1)
    return X


@dataclass
class LogisticScorer:
    """Logistic regression as its numbers: sigmoid(X @ coef + intercept).

    Args:
        coef: one coefficient per transformed column, shape (n_features,).
        intercept: the bias term.
        params: hyperparameters it was fitted with (for the record).
    """

    coef: np.ndarray
    intercept: float
    params: dict[str, Any] | None = None
    kind: str = "logistic"

    def __post_init__(self) -> None:
        self.coef = np.asarray(self.coef, dtype=np.float64).reshape(-1)
        self.intercept = float(self.intercept)

    @property
    def n_features(self) -> int:
        """Width of the transformed matrix it expects."""
        return int(self.coef.shape[0])

    def margin(self, X: np.ndarray) -> np.ndarray:  # noqa: N803
        """Log-odds of churn per row."""
        return np.asarray(_as_matrix(X) @ self.coef + self.intercept)

    def score(self, X: np.ndarray) -> np.ndarray:  # noqa: N803
        """Churn probability per row."""
        return np.asarray(expit(self.margin(X)))


class XGBoostScorer:
    """A trained `xgboost.Booster`, single-threaded, predicting in place (no DMatrix).

    The explainer uses `booster.predict(DMatrix(X), pred_contribs=True)` for
    exact TreeSHAP on the same booster.
    """

    kind = "xgboost"

    def __init__(self, booster: Any, params: dict[str, Any] | None = None) -> None:
        self.booster = booster
        self.params = params or {}
        self.booster.set_param({"nthread": 1})

    @property
    def n_features(self) -> int:
        """Width of the transformed matrix it expects."""
        return int(self.booster.num_features())

    def margin(self, X: np.ndarray) -> np.ndarray:  # noqa: N803
        """Log-odds of churn per row."""
        out = self.booster.inplace_predict(_as_matrix(X), predict_type="margin")
        return np.asarray(out, dtype=np.float64).reshape(-1)

    def score(self, X: np.ndarray) -> np.ndarray:  # noqa: N803
        """Churn probability per row."""
        out = self.booster.inplace_predict(_as_matrix(X))
        return np.asarray(out, dtype=np.float64).reshape(-1)

    def __getstate__(self) -> dict[str, Any]:
        return {"booster": self.booster, "params": self.params}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.booster = state["booster"]
        self.params = state["params"]
        self.booster.set_param({"nthread": 1})


class MLPScorer:
    """A torch module (eval mode, float32) whose single output is the churn log-odds."""

    kind = "mlp"

    def __init__(self, module: Any, params: dict[str, Any] | None = None) -> None:
        self.module = module.float().eval()
        self.params = params or {}

    @property
    def n_features(self) -> int:
        """Width of the transformed matrix it expects."""
        first = next(p for p in self.module.parameters() if p.ndim == 2)
        return int(first.shape[1])

    def margin(self, X: np.ndarray) -> np.ndarray:  # noqa: N803
        """Log-odds of churn per row."""
        import torch

        x = torch.from_numpy(np.ascontiguousarray(_as_matrix(X), dtype=np.float32))
        with torch.inference_mode():
            out = self.module(x)
        return out.numpy().astype(np.float64).reshape(-1)

    def score(self, X: np.ndarray) -> np.ndarray:  # noqa: N803
        """Churn probability per row."""
        return np.asarray(expit(self.margin(X)))

    def __getstate__(self) -> dict[str, Any]:
        return {"module": self.module, "params": self.params}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.module = state["module"].float().eval()
        self.params = state["params"]
