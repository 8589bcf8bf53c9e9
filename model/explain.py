"""Why a customer is at risk, and what could keep them.

Attributions are computed on the estimator's margin (log-odds) over the
transformed columns, then mapped back to the customer attributes:

* XGBoost: exact TreeSHAP (`booster.predict(..., pred_contribs=True)`); the
  base value is the booster's expected margin.
* Logistic regression: exact linear attributions `coef * (x - mean)`, with the
  mean of the bundle's background sample; the base value is the margin at
  that mean.
* MLP: integrated gradients from the background mean (midpoint rule, 256
  steps); attributions add up to margin(x) - margin(baseline) up to the
  integration error (tested).

Mapping rule: a transformed column computed from one attribute (a one-hot
level, a scaled number, a tenure band) gives its whole attribution to that
attribute; an engineered column computed from several attributes (charges per
tenure month, monthly minus average, number of services) splits its
attribution evenly among them. The attribute attributions therefore add up to
exactly the same total as the column attributions.

Reasons: the top-k attributes that raise the risk, each as text with its
effect in probability points (the served probability minus the probability
with that attribute's contribution removed from the margin) and a retention
suggestion from `model_config.yaml` (`explainer.retention`).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from scipy.special import expit

from churn_core.config import RetentionAction
from churn_core.errors import InvalidInput
from churn_model.contract import FEATURE_NAMES

logger = logging.getLogger(__name__)

IG_STEPS = 256


@dataclass(frozen=True)
class Reason:
    """One reason a customer is at risk."""

    attribute: str
    value: Any
    log_odds: float
    probability_points: float
    text: str
    suggestion: str

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return {
            "attribute": self.attribute,
            "value": self.value,
            "log_odds": self.log_odds,
            "probability_points": self.probability_points,
            "text": self.text,
            "suggestion": self.suggestion,
        }


@dataclass
class Explanation:
    """Explanations of a batch of customers (attributes in contract order)."""

    attributes: tuple[str, ...]
    probability: np.ndarray  # (n,) served probability
    decision: np.ndarray  # (n,) bool at the threshold
    base: np.ndarray  # (n,) margin the attributions start from
    attributions: np.ndarray  # (n, n_attributes) log-odds contributions
    reasons: list[list[Reason]]

    def as_dicts(self) -> list[dict[str, Any]]:
        """One JSON-ready object per customer (the v1 `:explain` answer)."""
        out = []
        for i in range(len(self.probability)):
            out.append(
                {
                    "churn_probability": float(np.float32(self.probability[i])),
                    "churn": bool(self.decision[i]),
                    "base_log_odds": float(self.base[i]),
                    "attributions": {
                        a: float(v)
                        for a, v in zip(self.attributes, self.attributions[i], strict=True)
                    },
                    "reasons": [r.as_dict() for r in self.reasons[i]],
                }
            )
        return out


def attribute_matrix(output_features: Sequence[Any], attributes: Sequence[str]) -> np.ndarray:
    """(n_columns, n_attributes) map: column attribution -> attribute attributions.

    A column with k source attributes gives 1/k of its attribution to each.
    """
    index = {a: i for i, a in enumerate(attributes)}
    m = np.zeros((len(output_features), len(attributes)))
    for j, feature in enumerate(output_features):
        sources = [s for s in feature.sources if s in index]
        if not sources:
            raise InvalidInput(f"transformed column {feature.name!r} has no known source attribute")
        for s in sources:
            m[j, index[s]] += 1.0 / len(sources)
    return m


def load_background(bundle_dir: str | Path, metadata: Mapping[str, Any]) -> np.ndarray | None:
    """The background sample of transformed rows the bundle carries, if any (.npy or .npz)."""
    root = Path(bundle_dir)
    ref = metadata.get("explainer")
    candidates: list[str] = []
    if isinstance(ref, str):
        candidates.append(ref)
    elif isinstance(ref, Mapping):
        candidates += [str(ref[k]) for k in ("background", "file", "path") if k in ref]
    files = metadata.get("files") or {}
    candidates += sorted(
        f for f in files if ("background" in f or "explainer" in f) and f.endswith((".npy", ".npz"))
    )
    for name in candidates:
        path = root / name
        if not path.is_file() or not name.endswith((".npy", ".npz")):
            continue
        loaded = np.load(path, allow_pickle=False)
        if isinstance(loaded, np.lib.npyio.NpzFile):
            keys = list(loaded.keys())
            arr = loaded["background"] if "background" in keys else loaded[keys[0]]
        else:
            arr = loaded
        arr = np.asarray(arr, dtype=np.float64)
        if arr.ndim == 2 and arr.shape[0] > 0:
            logger.info("explainer background: %s (%d rows)", name, arr.shape[0])
            return arr
    return None


def _format(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


class Attributor:
    """Column attributions on the margin, for one fitted `ChurnModel`."""

    def __init__(self, model: Any, background: np.ndarray | None = None) -> None:
        self.model = model
        self.kind = model.kind
        features = model.features.output_features
        self.attributes: tuple[str, ...] = tuple(FEATURE_NAMES)
        self.to_attributes = attribute_matrix(features, self.attributes)
        width = len(features)
        if background is not None and background.shape[1] != width:
            raise InvalidInput(
                f"explainer background has {background.shape[1]} columns, the transform {width}"
            )
        if background is None:
            # standardised columns have training mean 0: the mean customer in transformed space
            logger.warning("bundle has no explainer background; using the transform's mean (0)")
            self.baseline = np.zeros(width)
        else:
            self.baseline = background.mean(axis=0)

    def columns(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:  # noqa: N803
        """(base margin per row, column attributions (n, width))."""
        est = self.model.estimator
        if self.kind == "xgboost":
            import xgboost as xgb

            contribs = est.booster.predict(xgb.DMatrix(X), pred_contribs=True)
            contribs = np.asarray(contribs, dtype=np.float64)
            return contribs[:, -1], contribs[:, :-1]
        if self.kind == "logistic":
            coef = np.asarray(est.coef, dtype=np.float64)
            base = float(est.intercept + coef @ self.baseline)
            return np.full(X.shape[0], base), coef * (X - self.baseline)
        if self.kind == "mlp":
            return self._integrated_gradients(X)
        raise InvalidInput(f"no explainer for estimator kind {self.kind!r}")

    def _integrated_gradients(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:  # noqa: N803
        import torch

        module = self.model.estimator.module
        n, width = X.shape
        alphas = (np.arange(IG_STEPS) + 0.5) / IG_STEPS
        diff = X - self.baseline
        path = self.baseline + alphas[None, :, None] * diff[:, None, :]  # (n, steps, width)
        x = torch.tensor(path.reshape(-1, width), dtype=torch.float32, requires_grad=True)
        with torch.enable_grad():
            out = module(x).sum()
            (grad,) = torch.autograd.grad(out, x)
        mean_grad = grad.numpy().astype(np.float64).reshape(n, IG_STEPS, width).mean(axis=1)
        base = float(self.model.estimator.margin(self.baseline[None, :])[0])
        return np.full(n, base), mean_grad * diff

    def attributes_of(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:  # noqa: N803
        """(base margin per row, attribute attributions (n, n_attributes))."""
        base, cols = self.columns(X)
        return base, cols @ self.to_attributes


class Explainer:
    """Explanations with readable reasons and retention suggestions."""

    def __init__(
        self,
        model: Any,
        threshold: float,
        background: np.ndarray | None = None,
        retention: Mapping[str, Sequence[RetentionAction]] | None = None,
        top_k: int = 3,
    ) -> None:
        self.model = model
        self.threshold = threshold
        self.attributor = Attributor(model, background)
        self.retention = dict(retention or {})
        self.top_k = top_k

    @property
    def attributes(self) -> tuple[str, ...]:
        """Attribute order of the attribution columns."""
        return self.attributor.attributes

    def suggestion(self, attribute: str, value: Any) -> str:
        """The catalogue's retention suggestion for this attribute and value ('' if none)."""
        shown = _format(value)
        for action in self.retention.get(attribute, ()):
            if action.when == "*" or action.when == shown:
                return action.suggestion
        return ""

    def _calibrated(self, p: np.ndarray) -> np.ndarray:
        cal = self.model.calibrator
        return np.asarray(cal.apply(p)) if cal is not None else p

    def explain_columns(self, cols: Mapping[str, np.ndarray]) -> Explanation:
        """Explain a batch of checked column arrays."""
        X = self.model.features.transform_columns(cols)  # noqa: N806
        base, attr = self.attributor.attributes_of(X)
        margin = base + attr.sum(axis=1)
        # the probability shown is the served one (same transform, estimator, calibrator)
        served = self.model.predict_proba_matrix(X)
        reasons = [self._reasons(cols, i, margin[i], served[i], attr[i]) for i in range(len(X))]
        return Explanation(
            attributes=self.attributes,
            probability=served,
            decision=served >= self.threshold,
            base=base,
            attributions=attr,
            reasons=reasons,
        )

    def _reasons(
        self,
        cols: Mapping[str, np.ndarray],
        i: int,
        margin: float,
        served: float,
        attr: np.ndarray,
    ) -> list[Reason]:
        order = np.argsort(-attr)[: self.top_k]
        chosen = [j for j in order if attr[j] > 0]
        if not chosen:
            return []
        without = self._calibrated(expit(margin - attr[chosen]))
        out = []
        for j, p_without in zip(chosen, without, strict=True):
            name = self.attributes[j]
            value = cols[name][i]
            value = value.item() if isinstance(value, np.generic) else value
            points = float((served - p_without) * 100.0)
            text = (
                f"{name} = {_format(value)} raises churn risk by {points:.1f} points "
                f"({float(p_without) * 100:.1f}% -> {served * 100:.1f}%)"
            )
            out.append(
                Reason(
                    attribute=name,
                    value=value,
                    log_odds=float(attr[j]),
                    probability_points=points,
                    text=text,
                    suggestion=self.suggestion(name, value),
                )
            )
        return out
