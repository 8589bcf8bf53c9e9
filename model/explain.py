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
from dataclasses import dataclass
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

    @property
    def rules(self) -> tuple[tuple[str, RetentionAction], ...]:
        """Every retention action as (attribute, action), in order (`BatchReasons.rule`)."""
        return tuple((a, action) for a, actions in self.retention.items() for action in actions)

    def explain_columns(self, cols: Mapping[str, np.ndarray]) -> Explanation:
        """Explain a batch of checked column arrays (with one what-if call for the batch)."""
        return self.explain_batch(cols).explanation()

    def attribute(self, cols: Mapping[str, np.ndarray]) -> Attributed:
        """The numeric half of `explain_batch`: attributions, margin, served probability, points.

        Mostly native code (TreeSHAP, the estimator, the calibrator): a caller
        may run it for the next batch in a thread while this one's reasons are
        written (`explain_batch(cols, attributed)`).
        """
        X = self.model.features.transform_columns(cols)  # noqa: N806
        base, attr = self.attributor.attributes_of(X)
        margin = np.asarray(self.model.estimator.margin(X), dtype=np.float64)
        # the probability shown is the served one (same transform, estimator, calibrator)
        served = np.asarray(self.model.predict_proba_matrix(X), dtype=np.float64)
        return Attributed(base, attr, margin, served, self.effects(margin, served, attr))

    def explain_batch(
        self, cols: Mapping[str, np.ndarray], attributed: Attributed | None = None
    ) -> BatchExplanation:
        """`explain_columns` as arrays: the same answer, no per-customer objects.

        Reasons are chosen over the whole points matrix at once (one sort),
        the retention rules matched per attribute column, and every fired
        change re-scored in one `predict_proba_columns` call, as before.
        `attributed`: `attribute(cols)`, when already computed.
        """
        a = attributed if attributed is not None else self.attribute(cols)
        base, attr, margin, served, points = a.base, a.attributions, a.margin, a.served, a.points
        index, rule = self._choose(cols, attr, points)
        rows = np.arange(len(served))[:, None]
        chosen = np.maximum(index, 0)
        reasons = BatchReasons(
            index=index,
            log_odds=np.where(index >= 0, attr[rows, chosen], np.nan),
            points=np.where(index >= 0, points[rows, chosen], np.nan),
            rule=rule,
            what_if=self._what_ifs(cols, rule),
        )
        return BatchExplanation(
            attributes=self.attributes,
            probability=served,
            decision=served >= self.threshold,
            base=base,
            attributions=attr,
            margin=margin,
            reasons=reasons,
            rules=self.rules,
            columns=cols,
        )

    def _choose(
        self, cols: Mapping[str, np.ndarray], attr: np.ndarray, points: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """(n, top_k) reason attributes (-1: none) and the rule firing for each (-1: none).

        Eligible: at least `min_effect_points` and raising the risk; largest
        effect first, ties by larger log-odds, then attribute order.
        """
        n, width = points.shape
        eligible = (points >= self.min_effect_points) & (attr > 0)
        by_points = np.where(eligible, -points, np.inf)
        by_log_odds = np.where(eligible, -attr, np.inf)
        order = np.lexsort((by_log_odds, by_points), axis=-1)  # stable: ties keep column order
        k = min(self.top_k, width)
        index = np.full((n, self.top_k), -1, dtype=np.intp)
        counts = eligible.sum(axis=1)
        slots = np.arange(k)[None, :] < counts[:, None]
        index[:, :k] = np.where(slots, order[:, :k], -1)
        rule = np.full(index.shape, -1, dtype=np.intp)
        first = 0
        positions = {name: j for j, name in enumerate(self.attributes)}
        for attribute, actions in self.retention.items():
            j = positions[attribute]
            if attribute not in self.context:
                where = np.nonzero(index == j)
                if len(where[0]):
                    values = np.asarray(cols[attribute])[where[0]]
                    rule[where] = _first_match(actions, values, first)
            first += len(actions)
        return index, rule

    def _what_ifs(self, cols: Mapping[str, np.ndarray], rule: np.ndarray) -> np.ndarray:
        """(n, top_k) probability with each slot's change applied (NaN: no change to score)."""
        out = np.full(rule.shape, np.nan)
        changes = [action.set for _, action in self.rules]
        scorable = np.asarray([bool(c) for c in changes] + [False], dtype=bool)
        rows, slots = np.nonzero(scorable[rule])  # rule -1 -> the trailing False; row-major
        if not len(rows):
            return out
        which = rule[rows, slots]
        changed: dict[str, np.ndarray] = {}
        for name in FEATURE_NAMES:
            taken = np.asarray(cols[name])[rows]
            setting = [(r, c[name]) for r, c in enumerate(changes) if name in c]
            hits = [(np.flatnonzero(which == r), value) for r, value in setting]
            hits = [(at, value) for at, value in hits if len(at)]
            if hits:
                categorical = isinstance(FEATURES_BY_NAME[name], Categorical)
                taken = taken.astype(object if categorical else np.float64)  # a copy, wide enough
                for at, value in hits:
                    taken[at] = value
            changed[name] = taken
        scored = np.asarray(self.model.predict_proba_columns(changed), dtype=np.float64)
        out[rows, slots] = scored
        return out

    def what_if(self, cols: Mapping[str, np.ndarray], change: Mapping[str, Any]) -> np.ndarray:
        """The model's probability for every customer of `cols` with `change` applied (one call)."""
        n = len(np.asarray(cols[FEATURE_NAMES[0]]))
        changed = changed_columns(cols, range(n), [change] * n)
        return np.asarray(self.model.predict_proba_columns(changed), dtype=np.float64)


def _first_match(actions: Sequence[RetentionAction], values: np.ndarray, first: int) -> np.ndarray:
    """Rule number (`first` + position) of the first action matching each value, else -1."""
    out = np.full(len(values), -1, dtype=np.intp)
    for k in range(len(actions) - 1, -1, -1):  # last to first: the first match wins
        out[_matches(actions[k], values)] = first + k
    return out


def _matches(action: RetentionAction, values: np.ndarray) -> np.ndarray:
    """`action.matches` over an array: ranges compared at once, categories per distinct value."""
    if isinstance(action.when, ValueRange) and values.dtype.kind in "biuf":
        x = values.astype(np.float64)
        hit = ~np.isnan(x)
        for bound, test in (
            (action.when.min, np.greater_equal),
            (action.when.above, np.greater),
            (action.when.max, np.less_equal),
            (action.when.below, np.less),
        ):
            if bound is not None:
                hit &= test(x, bound)
        return hit
    import pandas as pd

    codes, distinct = pd.factorize(values, use_na_sentinel=False)
    lookup = np.fromiter((action.matches(_native(v)) for v in distinct), bool, len(distinct))
    return lookup[codes]


def _native(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


@dataclass(frozen=True)
class Attributed:
    """A batch's attributions (n, n_attributes), margin, served probability and points."""

    base: np.ndarray
    attributions: np.ndarray
    margin: np.ndarray
    served: np.ndarray
    points: np.ndarray


@dataclass(frozen=True)
class BatchReasons:
    """The reasons of a batch as arrays: slot k of customer i, largest effect first.

    `index` is the attribute (a column of the attributions), -1 for an empty
    slot (slots fill from the left); `rule` the retention rule that fires
    (an index into `Explainer.rules`), -1 for none; `what_if` the
    probability with that rule's change applied, NaN when there is none.
    """

    index: np.ndarray  # (n, top_k) int
    log_odds: np.ndarray  # (n, top_k)
    points: np.ndarray  # (n, top_k) probability points
    rule: np.ndarray  # (n, top_k) int
    what_if: np.ndarray  # (n, top_k)


@dataclass
class BatchExplanation:
    """An explanation of a batch as arrays; `explanation()` builds the per-customer objects."""

    attributes: tuple[str, ...]
    probability: np.ndarray
    decision: np.ndarray
    base: np.ndarray
    attributions: np.ndarray
    margin: np.ndarray
    reasons: BatchReasons
    rules: tuple[tuple[str, RetentionAction], ...]
    columns: Mapping[str, np.ndarray]

    def _slot(self, k: int) -> tuple[np.ndarray, list[Any], list[str]]:
        """Slot k: the rows holding a reason there, their values and reason texts."""
        index = self.reasons.index[:, k]
        rows = np.flatnonzero(index >= 0)
        values: list[Any] = [None] * len(rows)
        texts: list[str] = [""] * len(rows)
        served = self.probability[rows]
        effect = self.reasons.points[rows, k]
        before = ((served - effect / 100.0) * 100).tolist()
        after = (served * 100).tolist()
        effects = effect.tolist()
        at = index[rows]
        for j in np.unique(at).tolist():
            name = self.attributes[j]
            mine = np.flatnonzero(at == j)
            column = np.asarray(self.columns[name])[rows[mine]]
            native = column.tolist()
            if column.dtype == object:
                native = [_native(v) for v in native]
            prefixes: dict[Any, str] = {}  # one text per distinct value (NaN: computed each time)
            for m, value in zip(mine.tolist(), native, strict=True):
                values[m] = value
                prefix = prefixes.get(value)
                if prefix is None:
                    prefix = prefixes[value] = f"{name} = {_format(value)} raises churn risk by "
                texts[m] = f"{prefix}{effects[m]:.1f} points ({before[m]:.1f}% -> {after[m]:.1f}%)"
        return rows, values, texts

    def texts(self, limit: int) -> list[str]:
        """Per customer, the texts of the first `limit` reasons joined by ``"; "``."""
        n = len(self.probability)
        joined: list[list[str]] = [[] for _ in range(n)]
        for k in range(min(limit, self.reasons.index.shape[1])):
            rows, _, texts = self._slot(k)
            for i, text in zip(rows.tolist(), texts, strict=True):
                joined[i].append(text)
        return ["; ".join(parts) for parts in joined]

    def best_offers(self) -> tuple[list[str], np.ndarray]:
        """Per customer, the suggestion whose what-if lowers the probability most, and that one.

        "" and NaN when no reason has a what-if; ties go to the earlier reason.
        """
        what_if = self.reasons.what_if
        n = len(self.probability)
        offered = ~np.isnan(what_if)
        best = np.argmin(np.where(offered, what_if, np.inf), axis=1)
        rows = np.flatnonzero(offered.any(axis=1))
        probability = np.full(n, np.nan)
        suggestions = [""] * n
        if not len(rows):
            return suggestions, probability
        slots = best[rows]
        probability[rows] = what_if[rows, slots]
        texts = [(action.suggestion, change_text(action.set)) for _, action in self.rules]
        rules = self.reasons.rule[rows, slots].tolist()
        before = (self.probability[rows] * 100).tolist()
        after = (probability[rows] * 100).tolist()
        for m, i in enumerate(rows.tolist()):
            suggestion, change = texts[rules[m]]
            suggestions[i] = f"{suggestion} ({change}: {before[m]:.1f}% -> {after[m]:.1f}%)"
        return suggestions, probability

    def explanation(self) -> Explanation:
        """The per-customer `Explanation` (what the server answers)."""
        n = len(self.probability)
        reasons: list[list[Reason]] = [[] for _ in range(n)]
        served = self.probability.tolist()
        for k in range(self.reasons.index.shape[1]):
            rows, values, texts = self._slot(k)
            index = self.reasons.index[rows, k].tolist()
            log_odds = self.reasons.log_odds[rows, k].tolist()
            points = self.reasons.points[rows, k].tolist()
            rule = self.reasons.rule[rows, k].tolist()
            what_if = self.reasons.what_if[rows, k].tolist()
            for m, i in enumerate(rows.tolist()):
                action = self.rules[rule[m]][1] if rule[m] >= 0 else None
                answer = None
                if action is not None and action.set:
                    answer = WhatIf(dict(action.set), served[i], what_if[m])
                reasons[i].append(
                    Reason(
                        attribute=self.attributes[index[m]],
                        value=values[m],
                        log_odds=log_odds[m],
                        probability_points=points[m],
                        text=texts[m],
                        suggestion=action.suggestion if action is not None else "",
                        what_if=answer,
                    )
                )
        return Explanation(
            attributes=self.attributes,
            probability=self.probability,
            decision=self.decision,
            base=self.base,
            attributions=self.attributions,
            reasons=reasons,
            margin=self.margin,
        )


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
