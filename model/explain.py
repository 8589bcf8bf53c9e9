"""Why a customer is at risk, what could keep them, and what the model says that would do.

Attributions are computed on the raw scorer's margin (log-odds, before any
calibrator) over the transformed columns, then mapped back to the customer
attributes:

* XGBoost: exact TreeSHAP (`booster.predict(..., pred_contribs=True)`); the
  base value is the booster's expected margin.
* Logistic regression: exact linear attributions `coef * (x - mean)`, with the
  mean of the bundle's background sample; the base value is the margin at
  that mean.
* MLP: integrated gradients from the background mean (midpoint rule, 256
  steps); the base value is the margin at that mean.

What they add up to, for every kind, calibrated or not (tested):

    base_log_odds + sum(attributions) = margin(x)    (the raw scorer's log-odds)
    churn_probability = calibrator(sigmoid(margin(x)))    (sigmoid(margin(x)) without one)

exactly for TreeSHAP (up to float32) and linear, up to the integration error
for integrated gradients. The attributions are log-odds of the raw scorer,
not probability: a calibrator (sigmoid or isotonic) bends the scale after
the sum. What a reader sees in probability is computed against the served,
calibrated probability: an attribute's effect in probability points is

    points_j = churn_probability - calibrator(sigmoid(margin(x) - attribution_j))

i.e. how much lower the served probability would be without that
attribute's contribution to the margin.

Mapping rule: a transformed column computed from one attribute (a one-hot
level, a scaled number, a tenure band) gives its whole attribution to that
attribute; an engineered column computed from several attributes (charges per
tenure month, monthly minus average, number of services) splits its
attribution evenly among them. The attribute attributions therefore add up to
exactly the same total as the column attributions.

Reasons: the attributes whose effect is at least `explainer.min_effect_points`
(so a reason never reads "0.0 points"), largest first, at most `top_k`; fewer
or none is a valid answer. Context attributes (`explainer.context`: the
customer's history and household) may be reasons but never carry a
suggestion. A retention action (`explainer.retention`) fires for a reason
when the customer's value matches its `when` (categories, or a range for a
number), so it is tied to the values that raise the risk. Its `set` is the
change it proposes; the what-if is the model's own probability for the
customer with that change applied: the changed rows of a whole batch are
re-scored in one call of the same `ChurnModel` (same transform, estimator
and calibrator), e.g. "Contract = One year: 52.8% -> 21.4%".
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
from scipy.special import expit

from churn_core.config import ExplainerConfig, RetentionAction, ValueRange
from churn_core.errors import ConfigError, InvalidInput
from churn_model.contract import FEATURE_NAMES, FEATURES_BY_NAME, Categorical, Column

logger = logging.getLogger(__name__)

IG_STEPS = 256


@dataclass(frozen=True)
class WhatIf:
    """The model's own answer to a suggestion: the customer re-scored with its change applied."""

    change: dict[str, Any]
    before: float  # the served probability
    probability: float  # the probability with `change` applied

    @property
    def text(self) -> str:
        """E.g. ``Contract = One year: 52.8% -> 21.4%``."""
        return (
            f"{change_text(self.change)}: {self.before * 100:.1f}% -> {self.probability * 100:.1f}%"
        )

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready (probability rounded to float32 like the served one)."""
        return {
            "set": dict(self.change),
            "churn_probability": float(np.float32(self.probability)),
            "text": self.text,
        }


@dataclass(frozen=True)
class Reason:
    """One reason a customer is at risk (and, for an actionable one, what could help)."""

    attribute: str
    value: Any
    log_odds: float
    probability_points: float
    text: str
    suggestion: str
    what_if: WhatIf | None = None

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return {
            "attribute": self.attribute,
            "value": self.value,
            "log_odds": self.log_odds,
            "probability_points": self.probability_points,
            "text": self.text,
            "suggestion": self.suggestion,
            "what_if": self.what_if.as_dict() if self.what_if is not None else None,
        }


@dataclass
class Explanation:
    """Explanations of a batch of customers (attributes in contract order).

    ``base + attributions.sum(axis=1) == margin`` (log-odds of the raw
    scorer; up to the integration error for the MLP) and
    ``probability == calibrator(sigmoid(margin))``.
    """

    attributes: tuple[str, ...]
    probability: np.ndarray  # (n,) served (calibrated) probability
    decision: np.ndarray  # (n,) bool at the threshold
    base: np.ndarray  # (n,) margin the attributions start from
    attributions: np.ndarray  # (n, n_attributes) log-odds contributions
    reasons: list[list[Reason]]
    margin: np.ndarray | None = None  # (n,) the raw scorer's log-odds

    def as_dicts(self) -> list[dict[str, Any]]:
        """One JSON-ready object per customer (the v1 `:explain` answer)."""
        out = []
        for i in range(len(self.probability)):
            item: dict[str, Any] = {
                "churn_probability": float(np.float32(self.probability[i])),
                "churn": bool(self.decision[i]),
                "base_log_odds": float(self.base[i]),
            }
            if self.margin is not None:
                item["log_odds"] = float(self.margin[i])
            item["attributions"] = {
                a: float(v) for a, v in zip(self.attributes, self.attributions[i], strict=True)
            }
            item["reasons"] = [r.as_dict() for r in self.reasons[i]]
            out.append(item)
        return out


def additivity(kind: str, calibrated: bool) -> str:
    """What the attributions of this model add up to, in words (the v1 answer states it)."""
    approx = " up to the integration error" if kind == "mlp" else ""
    served = "calibrator(sigmoid(log_odds))" if calibrated else "sigmoid(log_odds)"
    return (
        f"base_log_odds + sum(attributions) = log_odds, the raw scorer's margin{approx}; "
        f"churn_probability = {served}; a reason's probability_points = churn_probability - "
        f"{served.replace('log_odds', 'log_odds - attribution')}"
    )


def change_text(change: Mapping[str, Any]) -> str:
    """A proposed change as text, e.g. ``Contract = One year``."""
    return ", ".join(f"{k} = {_format(v)}" for k, v in change.items())


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


def _unknown(key: str, name: str) -> ConfigError:
    return ConfigError(
        f"{key}: {name!r} is not a customer attribute; attributes: {', '.join(FEATURE_NAMES)}"
    )


def _check_when(key: str, column: Column, when: str | tuple[str, ...] | ValueRange) -> None:
    if isinstance(column, Categorical):
        if isinstance(when, ValueRange):
            raise ConfigError(
                f"{key}: {column.name} is a category: name its values "
                f"({', '.join(column.categories)}), not a range"
            )
        for value in (when,) if isinstance(when, str) else when:
            if value not in column.categories:
                raise ConfigError(
                    f"{key}: {value!r} is not a {column.name} value; "
                    f"values: {', '.join(column.categories)}"
                )
    elif not isinstance(when, ValueRange):
        raise ConfigError(
            f"{key}: {column.name} is a number: give a range "
            f"({{min: ..}}, {{max: ..}}, above, below), not {when!r}"
        )


def _check_value(key: str, column: Column, value: Any) -> None:
    if isinstance(column, Categorical):
        if value not in column.categories:
            raise ConfigError(
                f"{key}: {value!r} is not a {column.name} value; "
                f"values: {', '.join(column.categories)}"
            )
        return
    number = isinstance(value, int | float) and not isinstance(value, bool)
    if not number or not (column.minimum <= value <= column.maximum):
        raise ConfigError(
            f"{key}: {value!r} is not a {column.name} value "
            f"(a number from {column.minimum:g} to {column.maximum:g})"
        )
    if column.integer and float(value) != int(value):
        raise ConfigError(f"{key}: {value!r} is not a whole number ({column.name})")


def check_explainer_config(config: ExplainerConfig) -> None:
    """Check the explainer section against the data contract.

    Every attribute it names (context, retention keys, `set` keys) is a
    customer attribute; a category rule names that attribute's categories, a
    number rule a range; every `set` value is one the contract allows; an
    action does not propose the very value it matches.

    Raises:
        ConfigError: naming the config key (``explainer.retention.Contract[0].when``) and value.
    """
    for name in config.context:
        if name not in FEATURES_BY_NAME:
            raise _unknown("explainer.context", name)
    for attribute, actions in config.retention.items():
        key = f"explainer.retention.{attribute}"
        column = FEATURES_BY_NAME.get(attribute)
        if column is None:
            raise _unknown("explainer.retention", attribute)
        for i, action in enumerate(actions):
            at = f"{key}[{i}]"
            _check_when(f"{at}.when", column, action.when)
            for name, value in action.set.items():
                if name not in FEATURES_BY_NAME:
                    raise _unknown(f"{at}.set", name)
                _check_value(f"{at}.set.{name}", FEATURES_BY_NAME[name], value)
            if attribute in action.set and action.matches(action.set[attribute]):
                raise ConfigError(
                    f"{at}.set.{attribute}: {action.set[attribute]!r} is a value the action "
                    "itself fires for: the change would leave the customer where they are"
                )


class Explainer:
    """Explanations with readable reasons, retention suggestions and their what-ifs.

    Args:
        model: the served `ChurnModel`.
        threshold: the decision threshold.
        background: transformed background rows (the bundle's), or None.
        config: the `explainer` section (top_k, min_effect_points, context,
            retention); checked against the data contract here.

    Raises:
        ConfigError: the config names something the data contract does not have.
    """

    def __init__(
        self,
        model: Any,
        threshold: float,
        background: np.ndarray | None = None,
        config: ExplainerConfig | None = None,
    ) -> None:
        config = config or ExplainerConfig()
        check_explainer_config(config)
        self.model = model
        self.threshold = threshold
        self.attributor = Attributor(model, background)
        self.config = config
        self.top_k = config.top_k
        self.min_effect_points = config.min_effect_points
        self.context = frozenset(config.context)
        self.retention: dict[str, tuple[RetentionAction, ...]] = {
            a: tuple(actions) for a, actions in config.retention.items()
        }

    @property
    def attributes(self) -> tuple[str, ...]:
        """Attribute order of the attribution columns."""
        return self.attributor.attributes

    @property
    def additivity(self) -> str:
        """What this model's attributions add up to (see the module docstring)."""
        return additivity(self.attributor.kind, self.model.calibrator is not None)

    def action(self, attribute: str, value: Any) -> RetentionAction | None:
        """The first retention action for this attribute that matches the value (context: none).

        Only meaningful for a reason, i.e. when the attribute raises the risk:
        `explain_columns` asks only then.
        """
        if attribute in self.context:
            return None
        for action in self.retention.get(attribute, ()):
            if action.matches(value):
                return action
        return None

    def _calibrated(self, p: np.ndarray) -> np.ndarray:
        cal = self.model.calibrator
        return np.asarray(cal.apply(p)) if cal is not None else p

    def effects(self, margin: np.ndarray, served: np.ndarray, attr: np.ndarray) -> np.ndarray:
        """(n, n_attributes) probability points: served minus served without the attribution."""
        without = self._calibrated(expit(margin[:, None] - attr).reshape(-1)).reshape(attr.shape)
        return np.asarray((served[:, None] - without) * 100.0)

    def explain_columns(self, cols: Mapping[str, np.ndarray]) -> Explanation:
        """Explain a batch of checked column arrays (with one what-if call for the batch)."""
        X = self.model.features.transform_columns(cols)  # noqa: N806
        base, attr = self.attributor.attributes_of(X)
        margin = np.asarray(self.model.estimator.margin(X), dtype=np.float64)
        # the probability shown is the served one (same transform, estimator, calibrator)
        served = np.asarray(self.model.predict_proba_matrix(X), dtype=np.float64)
        points = self.effects(margin, served, attr)
        chosen = [
            self._reasons(cols, i, float(served[i]), attr[i], points[i]) for i in range(len(X))
        ]
        reasons = self._with_what_ifs(cols, served, chosen)
        return Explanation(
            attributes=self.attributes,
            probability=served,
            decision=served >= self.threshold,
            base=base,
            attributions=attr,
            reasons=reasons,
            margin=margin,
        )

    def _reasons(
        self,
        cols: Mapping[str, np.ndarray],
        i: int,
        served: float,
        attr: np.ndarray,
        points: np.ndarray,
    ) -> list[tuple[Reason, RetentionAction | None]]:
        """Customer i's reasons (no what-if yet), each with the action that fires for it."""
        eligible = np.flatnonzero((points >= self.min_effect_points) & (attr > 0))
        # largest effect first (ties: larger log-odds), at most top_k
        chosen = sorted(eligible.tolist(), key=lambda j: (-points[j], -attr[j]))[: self.top_k]
        out = []
        for j in chosen:
            name = self.attributes[j]
            value = cols[name][i]
            value = value.item() if isinstance(value, np.generic) else value
            effect = float(points[j])
            p_without = served - effect / 100.0
            text = (
                f"{name} = {_format(value)} raises churn risk by {effect:.1f} points "
                f"({p_without * 100:.1f}% -> {served * 100:.1f}%)"
            )
            action = self.action(name, value)
            reason = Reason(
                attribute=name,
                value=value,
                log_odds=float(attr[j]),
                probability_points=effect,
                text=text,
                suggestion=action.suggestion if action is not None else "",
            )
            out.append((reason, action))
        return out

    def what_if(self, cols: Mapping[str, np.ndarray], change: Mapping[str, Any]) -> np.ndarray:
        """The model's probability for every customer of `cols` with `change` applied (one call)."""
        n = len(np.asarray(cols[FEATURE_NAMES[0]]))
        changed = changed_columns(cols, range(n), [change] * n)
        return np.asarray(self.model.predict_proba_columns(changed), dtype=np.float64)

    def _with_what_ifs(
        self,
        cols: Mapping[str, np.ndarray],
        served: np.ndarray,
        chosen: list[list[tuple[Reason, RetentionAction | None]]],
    ) -> list[list[Reason]]:
        """The reasons, each action's change re-scored: one `predict_proba_columns` call."""
        out = [[reason for reason, _ in row] for row in chosen]
        slots = [
            (i, k, action.set)
            for i, row in enumerate(chosen)
            for k, (_, action) in enumerate(row)
            if action is not None and action.set
        ]
        if not slots:
            return out
        changed = changed_columns(cols, [i for i, _, _ in slots], [c for _, _, c in slots])
        scored = np.asarray(self.model.predict_proba_columns(changed), dtype=np.float64)
        for (i, k, change), p in zip(slots, scored.tolist(), strict=True):
            out[i][k] = replace(out[i][k], what_if=WhatIf(dict(change), float(served[i]), p))
        return out


def changed_columns(
    cols: Mapping[str, np.ndarray], rows: Sequence[int], changes: Sequence[Mapping[str, Any]]
) -> dict[str, np.ndarray]:
    """Column arrays of `rows` of `cols` (repeats allowed), each with its change applied."""
    index = np.asarray(rows, dtype=np.intp)
    out: dict[str, np.ndarray] = {}
    for name in FEATURE_NAMES:
        taken = np.asarray(cols[name])[index]
        touched = [(k, change[name]) for k, change in enumerate(changes) if name in change]
        if touched:
            categorical = isinstance(FEATURES_BY_NAME[name], Categorical)
            taken = taken.astype(object if categorical else np.float64)  # a copy, wide enough
            for k, value in touched:
                taken[k] = value
        out[name] = taken
    return out
