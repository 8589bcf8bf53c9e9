"""`model_config.yaml`: a typed model that rejects unknown keys and expands ${ENV} values.

Every value whose wrong setting would silently build something wrong (tenure
bands out of order) or fail later with a bare library error (zero ECE bins)
is checked here, at load: ranges on the fields, order and cross-field rules
in validators. `load_config` reports each problem as ``file: dotted.field =
value: what is allowed``. Checks that need the fitted feature transform (the
output feature names in ``models.xgboost``) run where the transform is known,
in training.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from churn_core.errors import ConfigError

# the largest seed every consumer (numpy, sklearn, xgboost, torch) takes, with room for
# the per-fold offsets added in cross-validation
MAX_SEED = 2**31 - 1_000_000

PositiveInt = Annotated[int, Field(ge=1)]
PositiveFloat = Annotated[float, Field(gt=0)]
Name = Annotated[str, Field(min_length=1)]


class FieldProblem(ValueError):
    """A rule over several fields broken; names the field (relative to the model) and value.

    Raised inside a model validator, whose error pydantic reports at the model
    itself: `load_config` appends `field` to that location.
    """

    def __init__(self, field: str, value: Any, allowed: str) -> None:
        super().__init__(allowed)
        self.field = field
        self.value = value
        self.allowed = allowed


class _Strict(BaseModel):
    # NaN and infinity are never a sensible setting: `.inf` in YAML is an error
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class DataConfig(_Strict):
    """Ingest and validation."""

    max_rejected_share: float = Field(0.01, ge=0, le=1)
    synthetic_rows: int = Field(7043, gt=0)


class SplitConfig(_Strict):
    """Stratified train/test split."""

    test_size: float = Field(0.2, gt=0, lt=1)  # share of customers held out (stratified by Churn)
    seed: int = Field(42, ge=0, le=MAX_SEED)  # seed of the split (and of the bundle's samples)


class FeaturesConfig(_Strict):
    """The feature transform."""

    # upper edges (months) of the tenure bands; one more band holds everything above
    tenure_bands: tuple[PositiveInt, ...] = (12, 24, 48, 60)

    @field_validator("tenure_bands")
    @classmethod
    def _ascending(cls, bands: tuple[int, ...]) -> tuple[int, ...]:
        for before, edge in zip(bands, bands[1:], strict=False):
            if edge <= before:
                raise ValueError(
                    "band edges must be strictly ascending (each above the one before), "
                    f"got {edge} after {before}"
                )
        return bands


class LogisticConfig(_Strict):
    """Logistic regression; C is chosen inside training folds from the grid."""

    # inverse regularisation strengths tried
    c_grid: tuple[PositiveFloat, ...] = Field((0.03, 0.1, 0.3, 1.0), min_length=1)
    max_iter: int = Field(100, gt=0)  # Newton iterations
    validation_share: float = Field(0.25, gt=0, lt=1)  # inner split that picks C


class XGBoostConfig(_Strict):
    """XGBoost; n_estimators by early stopping inside training folds."""

    max_depth: int = Field(3, ge=1)  # depth of each tree
    learning_rate: float = Field(0.03, gt=0, le=1)  # shrinkage per tree
    max_n_estimators: int = Field(600, ge=1)  # most trees; early stopping picks fewer
    subsample: float = Field(0.8, gt=0, le=1)  # share of rows per tree
    colsample_bytree: float = Field(0.8, gt=0, le=1)  # share of features per tree
    min_child_weight: float = Field(5.0, ge=0)  # smallest hessian sum in a leaf
    reg_lambda: float = Field(5.0, ge=0)  # L2 penalty on leaf weights
    max_bin: int = Field(256, ge=2)  # histogram bins per feature
    early_stopping_rounds: int = Field(50, ge=1)  # rounds without improvement
    validation_share: float = Field(0.2, gt=0, lt=1)  # inner split for early stopping
    # output feature name -> +1 (risk may only rise with it) / -1 (only fall)
    # (training checks that each names an output feature of the fitted transform)
    monotone_constraints: dict[Name, Literal[-1, 0, 1]] = {}
    # output features the trees never split on (fnmatch patterns), e.g. one-hot tenure
    # bands that would defeat a monotone constraint on tenure
    exclude_features: tuple[Name, ...] = ()


class MLPConfig(_Strict):
    """Torch multi-layer perceptron."""

    hidden: tuple[PositiveInt, ...] = (16,)  # widths of the hidden layers; () is linear
    dropout: float = Field(0.0, ge=0, lt=1)  # after each hidden layer
    epochs: int = Field(10, ge=1)  # passes over the training rows
    batch_size: int = Field(512, ge=1)  # rows per AdamW step
    learning_rate: float = Field(0.01, gt=0)  # AdamW's learning rate
    weight_decay: float = Field(0.01, ge=0)  # AdamW's weight decay


class ModelsConfig(_Strict):
    """Which candidates train and with what hyperparameters."""

    # the candidate kinds trained; the best of them is gated against the champion
    enabled: tuple[Literal["logistic", "xgboost", "mlp"], ...] = Field(
        ("logistic", "xgboost", "mlp"), min_length=1
    )
    logistic: LogisticConfig = LogisticConfig()
    xgboost: XGBoostConfig = XGBoostConfig()
    mlp: MLPConfig = MLPConfig()

    @field_validator("enabled")
    @classmethod
    def _no_duplicates(cls, enabled: tuple[str, ...]) -> tuple[str, ...]:
        seen: set[str] = set()
        for kind in enabled:
            if kind in seen:
                raise ValueError(f"each model kind at most once, {kind!r} is listed twice")
            seen.add(kind)
        return enabled


class EvaluationConfig(_Strict):
    """Repeated stratified cross-validation and calibration."""

    cv_folds: int = Field(5, ge=2)  # folds of the repeated stratified CV
    cv_repeats: int = Field(5, ge=1)  # repeats of the CV
    calibration: Literal["auto", "none", "sigmoid", "isotonic"] = "auto"
    ece_bins: int = Field(10, ge=2)  # bins of the expected calibration error
    # a ROC-AUC above this means leakage; 0.5 is chance, so anything at or below it
    # would fail every honest model
    max_plausible_auc: float = Field(0.88, gt=0.5, le=1)


class EconomicsConfig(_Strict):
    """Retention economics for the profit-optimal threshold."""

    offer_cost: float = Field(50.0, ge=0)
    customer_value: float = Field(500.0, ge=0)
    offer_acceptance: float = Field(0.3, ge=0, le=1)


class SelectionConfig(_Strict):
    """Pick the best candidate, then gate it against the champion.

    The gate scores champion and challenger on the same held-out rows
    (`f1_weight` x F1 + `auc_weight` x ROC-AUC, each F1 at its model's served
    threshold) and promotes unless the challenger is worse by more than
    `gate_tolerance`. `replace_unreadable_champion` is the operator's choice
    to let a challenger replace a champion that cannot be read or scored
    (without it such a run fails).
    """

    f1_weight: float = Field(0.5, ge=0)  # weight of F1 in the selection and gate score
    auc_weight: float = Field(0.5, ge=0)  # weight of ROC-AUC in that score
    threshold: Literal["f1", "profit"] = "f1"  # which threshold the bundle serves with
    # how much worse than the champion a challenger may be
    gate_tolerance: float = Field(0.0, ge=0, le=1)
    # may replace a champion that cannot be read or scored
    replace_unreadable_champion: bool = False

    @model_validator(mode="after")
    def _some_weight(self) -> SelectionConfig:
        if self.f1_weight == 0 and self.auc_weight == 0:
            raise FieldProblem(
                "f1_weight",
                0.0,
                "f1_weight and auc_weight are both 0: at least one must be > 0 "
                "(else every candidate scores 0)",
            )
        return self


class ValueRange(_Strict):
    """The numbers a retention rule matches: `min`/`max` inclusive, `above`/`below` exclusive."""

    min: float | None = None  # inclusive lower bound
    max: float | None = None  # inclusive upper bound
    above: float | None = None  # exclusive lower bound
    below: float | None = None  # exclusive upper bound

    @model_validator(mode="after")
    def _bounded(self) -> ValueRange:
        if self.min is not None and self.above is not None:
            raise ValueError("give min or above, not both")
        if self.max is not None and self.below is not None:
            raise ValueError("give max or below, not both")
        low = self.min if self.min is not None else self.above
        high = self.max if self.max is not None else self.below
        if low is None and high is None:
            raise ValueError("a range needs min, max, above or below")
        if low is not None and high is not None:
            inclusive = self.min is not None and self.max is not None
            if low > high or (low == high and not inclusive):
                raise ValueError(f"the range matches no number (lower {low:g}, upper {high:g})")
        return self

    def contains(self, value: float) -> bool:
        """Whether `value` lies in the range (NaN never does)."""
        if value != value:  # NaN
            return False
        if self.min is not None and value < self.min:
            return False
        if self.above is not None and value <= self.above:
            return False
        if self.max is not None and value > self.max:
            return False
        return not (self.below is not None and value >= self.below)

    def describe(self) -> str:
        """The range as text, e.g. ``>= 70`` or ``> 0 and < 12``."""
        parts = []
        for key, op in (("min", ">="), ("above", ">"), ("max", "<="), ("below", "<")):
            bound = getattr(self, key)
            if bound is not None:
                parts.append(f"{op} {bound:g}")
        return " and ".join(parts)


class RetentionAction(_Strict):
    """A retention suggestion for a reason, tied to the values that raise the risk.

    It fires for a reason (an attribute whose attribution raises the churn
    risk by at least `explainer.min_effect_points`) when the customer's value
    matches `when`: one category or a list of categories for a categorical
    attribute, a `ValueRange` for a number. `set` is the change it proposes
    (attribute -> new value), which the explainer re-scores as a what-if.
    """

    when: str | tuple[str, ...] | ValueRange  # categories, or a range for a number
    suggestion: str = Field(min_length=1)  # the advice shown
    set: dict[str, int | float | str] = {}  # attribute -> new value, re-scored as the what-if

    @model_validator(mode="after")
    def _value_bound(self) -> RetentionAction:
        if self.when == "*" or (isinstance(self.when, tuple) and "*" in self.when):
            raise ValueError(
                'when: "*" fires whatever the value, also when the value lowers the risk; '
                "name the categories, or a range (min/max/above/below) for a number"
            )
        if isinstance(self.when, tuple) and not self.when:
            raise ValueError("when: an empty list matches nothing")
        return self

    def matches(self, value: object) -> bool:
        """Whether the customer's `value` is one this action is for."""
        if isinstance(self.when, ValueRange):
            try:
                return self.when.contains(float(value))  # type: ignore[arg-type]
            except (TypeError, ValueError):
                return False
        if isinstance(self.when, tuple):
            return value in self.when
        return value == self.when


class ExplainerConfig(_Strict):
    """Explanations: reasons, context attributes, the retention catalogue.

    `context` attributes explain (they may be reasons) but are not levers a
    retention offer can move: they never carry a suggestion, and no rule may
    name or change them. That every named attribute is a customer attribute
    of the data contract is checked where the contract is known, when the
    explainer is built (`churn_model.explain.check_explainer_config`).
    """

    top_k: int = Field(3, ge=1)
    background_rows: int = 200  # training rows sampled as the attributions' background
    # smallest effect (probability points) a reason may have; below 0.1 it would read "0.0 points"
    min_effect_points: float = Field(1.0, ge=0.1, le=100)
    context: tuple[str, ...] = ()  # attributes that may be reasons but get no suggestion
    retention: dict[str, list[RetentionAction]] = {}  # attribute -> its retention actions

    @model_validator(mode="after")
    def _context_gets_no_suggestion(self) -> ExplainerConfig:
        repeated = sorted({a for a in self.context if self.context.count(a) > 1})
        if repeated:
            raise ValueError(f"context names {', '.join(repeated)} more than once")
        context = set(self.context)
        for attribute, actions in self.retention.items():
            if attribute in context:
                raise ValueError(
                    f"retention.{attribute}: {attribute} is a context attribute "
                    "(explainer.context): it explains but gets no suggestion"
                )
            for i, action in enumerate(actions):
                moved = sorted(context & set(action.set))
                if moved:
                    raise ValueError(
                        f"retention.{attribute}[{i}].set: changes context attribute(s) "
                        f"{', '.join(moved)}, which no retention offer can move"
                    )
        return self


class RegistryConfig(_Strict):
    """MLflow model registry."""

    model_name: Name = "churn"  # the MLflow registered model
    experiment: Name = "churn-training"  # the MLflow experiment of training runs


class BundleConfig(_Strict):
    """What the model bundle carries besides the model."""

    reference_rows: int = Field(1000, gt=0)  # drift reference sample of training rows


class KFPConfig(_Strict):
    """Kubeflow Pipelines submission."""

    endpoint: str = ""  # the KFP API; empty: submit asks for --endpoint
    namespace: Name = "kubeflow"  # the KFP namespace
    experiment: Name = "churn"  # the KFP experiment runs go to


class DriftConfig(_Strict):
    """Drift detection (`churn_model.drift`): tests, correction, effect-size gates, windows.

    A feature drifts when its test is significant after the correction AND its
    effect size is above the threshold of its kind; a window drifts when any
    feature does. `backend: alibi` needs the optional extra `alibi`
    (alibi-detect, Business Source License 1.1: see README, Drift detection).
    """

    backend: Literal["scipy", "alibi"] = "scipy"
    p_value: float = Field(0.05, gt=0, lt=1)  # per window, before the correction
    correction: Literal["bonferroni", "fdr"] = "bonferroni"
    categorical_effect: Literal["psi", "js"] = "psi"
    numeric_effect: Literal["wasserstein", "ks"] = "wasserstein"
    psi: float = Field(0.1, gt=0)  # population stability index
    js: float = Field(0.1, gt=0, le=1)  # Jensen-Shannon distance, base 2
    wasserstein: float = Field(0.1, gt=0)  # in standard deviations of the reference
    ks: float = Field(0.1, gt=0, le=1)  # Kolmogorov-Smirnov distance
    window_size: int = Field(500, gt=0)  # rows per tested window
    min_window_size: int = Field(200, gt=0)  # an expired window smaller than this is not tested
    window_max_age_seconds: float = Field(3600.0, gt=0)  # a window is tested when full or this old

    @model_validator(mode="after")
    def _window_sizes_agree(self) -> DriftConfig:
        if self.min_window_size > self.window_size:
            raise ValueError(
                f"min_window_size ({self.min_window_size}) is larger than "
                f"window_size ({self.window_size})"
            )
        return self


class EventsConfig(_Strict):
    """The drift service's intake of the payload logger's CloudEvents."""

    max_body_bytes: int = Field(4 * 1024 * 1024, ge=1024)  # a larger event is refused (413)
    queue_size: int = Field(10_000, ge=1)  # events accepted but not yet processed; full: 503
    join_timeout_seconds: float = Field(60.0, gt=0)  # a request waits this long for its response
    # memory ~ events per second x dedupe_seconds (about 100 bytes an event)
    dedupe_seconds: float = Field(600.0, gt=0)  # a (ce-id, ce-type) pair is remembered this long


class FloorsConfig(_Strict):
    """The performance a served model must keep; below a floor the model has decayed."""

    roc_auc: float = Field(0.75, gt=0.5, le=1)  # ROC-AUC floor
    f1: float = Field(0.5, gt=0, le=1)  # F1 floor (at the served threshold)


class EstimateConfig(_Strict):
    """Label-free performance estimates (confidence-based, from calibrated probabilities)."""

    bootstrap: int = Field(200, ge=20)  # resamples for the interval
    confidence: float = Field(0.9, gt=0.5, lt=1)  # two-sided interval
    seed: int = Field(0, ge=0, le=MAX_SEED)  # seed of the bootstrap
    # the estimate is unreliable when more of a window than this lies outside the region
    # the reference covered (numbers outside its range, categories it never had)
    max_outside_share: float = Field(0.05, ge=0, le=1)


class LabelsConfig(_Strict):
    """Delayed labels joined to the logged predictions."""

    cohort_days: int = Field(7, ge=1)  # predictions are grouped into cohorts of this many days
    min_labels: int = Field(200, ge=1)  # a cohort is scored once this many of its labels are in
    max_estimate_gap: float = Field(0.05, gt=0, le=1)  # |estimated - realized| ROC-AUC alert


class TriggerConfig(_Strict):
    """The retraining trigger: OK -> SUSPECT -> TRIGGERED -> COOLDOWN, per model.

    A window counts as bad when it has at least `min_samples` rows and shows
    drift on a feature among `features` (every feature when empty), the
    lower bound of an estimated figure below its floor, or realized decay
    (`decay_cohorts` labelled cohorts in a row below a floor). The trigger
    fires when `k` of the last `n` windows are bad, starts one training
    run, then waits `cooldown_windows` windows before it may fire again.
    """

    k: int = Field(3, ge=1)  # bad windows among the last n that fire
    n: int = Field(5, ge=1)  # windows looked back
    cooldown_windows: int = Field(30, ge=0)  # windows after a trigger before it may fire again
    min_samples: int = Field(200, ge=1)  # a smaller window is no evidence
    features: tuple[Name, ...] = ()  # the features whose drift counts; () counts every feature
    decay_cohorts: int = Field(2, ge=1)  # realized figures below a floor this many cohorts in a row

    @model_validator(mode="after")
    def _k_of_n(self) -> TriggerConfig:
        if self.k > self.n:
            raise FieldProblem("k", self.k, f"must be <= n ({self.n}): k of the last n windows")
        return self


class MonitorConfig(_Strict):
    """The drift and decay service (`churn monitor`)."""

    events: EventsConfig = EventsConfig()
    floors: FloorsConfig = FloorsConfig()
    estimate: EstimateConfig = EstimateConfig()
    labels: LabelsConfig = LabelsConfig()
    trigger: TriggerConfig = TriggerConfig()


class RolloutConfig(_Strict):
    """The canary rollout controller (`churn rollout`): steps, gate statistics, timing.

    `alpha` is the chance, over a whole rollout, that a canary no worse than the
    stable model is rolled back by the tests with a p-value (error rate, KS,
    positive rate): each test runs at `alpha / (3 * len(steps))` (Bonferroni).
    A gate holds until each revision has the requests needed to detect its
    configured difference with probability `power`.
    """

    steps: tuple[Annotated[int, Field(ge=1, le=99)], ...] = (5, 25)  # canary percent per step
    # chance per rollout of rolling back a canary no worse than stable
    alpha: float = Field(0.05, gt=0, lt=0.5)
    power: float = Field(0.8, ge=0.5, lt=1)  # chance of catching each configured difference
    error_rate_difference: float = Field(0.02, gt=0, lt=1)  # smallest regression to catch
    latency_quantile: float = Field(0.99, gt=0.5, lt=1)
    latency_ratio: float = Field(1.5, gt=1)  # canary / stable quantile above this fails
    latency_tail: int = Field(10, ge=1)  # observations above the quantile before it is trusted
    ks_distance: float = Field(0.1, gt=0, lt=1)  # probability shift (KS distance) to catch
    positive_rate_difference: float = Field(0.05, gt=0, lt=1)  # |canary - stable| churn share
    drift: bool = True  # gate on the drift service's churn_drift_window_drift
    step_window_seconds: float = Field(300.0, gt=0)  # how often a step's gates are evaluated
    deadline_seconds: float = Field(7200.0, gt=0)  # then INCONCLUSIVE, stable keeps serving
    status_timeout_seconds: float = Field(600.0, gt=0)  # for KServe to show the asked split
    poll_seconds: float = Field(5.0, gt=0)  # how often the status is read while waiting
    revision_label: Name = "revision"  # Prometheus label naming the Knative revision
    prometheus_url: str = ""  # empty: `churn rollout` asks for --prometheus-url

    @field_validator("steps")
    @classmethod
    def _steps_increase(cls, steps: tuple[int, ...]) -> tuple[int, ...]:
        if not steps:
            raise ValueError("needs at least one canary step")
        if list(steps) != sorted(set(steps)):
            raise ValueError(f"canary steps must increase strictly, got {list(steps)}")
        return steps


class ChurnConfig(_Strict):
    """The whole `model_config.yaml`."""

    data: DataConfig = DataConfig()
    split: SplitConfig = SplitConfig()
    features: FeaturesConfig = FeaturesConfig()
    models: ModelsConfig = ModelsConfig()
    evaluation: EvaluationConfig = EvaluationConfig()
    economics: EconomicsConfig = EconomicsConfig()
    selection: SelectionConfig = SelectionConfig()
    explainer: ExplainerConfig = ExplainerConfig()
    registry: RegistryConfig = RegistryConfig()
    bundle: BundleConfig = BundleConfig()
    kfp: KFPConfig = KFPConfig()
    drift: DriftConfig = DriftConfig()
    monitor: MonitorConfig = MonitorConfig()
    rollout: RolloutConfig = RolloutConfig()

    @model_validator(mode="after")
    def _explainer_sizes(self) -> ChurnConfig:
        # checked here, not on ExplainerConfig: an explainer without background rows
        # fails only when the bundle is served
        rows = self.explainer.background_rows
        if rows < 1:
            raise FieldProblem("explainer.background_rows", rows, "must be >= 1")
        return self


_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def expand_env(text: str, source: str | Path = "<config>") -> str:
    """Expand `${NAME}` and `${NAME:-default}`; an unset NAME without default is an error."""

    def repl(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(2)
        value = os.environ.get(name)
        if value is not None:
            return value
        if default is not None:
            return default
        raise ConfigError(f"{source}: environment variable {name} is not set (use ${{{name}:-}})")

    return _ENV_REF.sub(repl, text)


def load_config(path: str | Path) -> ChurnConfig:
    """Read, expand environment variables, validate; errors name the file and field."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as err:
        raise ConfigError(f"{path}: cannot read config: {err}") from err
    try:
        raw = yaml.safe_load(expand_env(text, path)) or {}
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML: {err}") from err
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: top level must be a mapping, got {type(raw).__name__}")
    try:
        return ChurnConfig.model_validate(raw)
    except ValidationError as err:
        raise ConfigError(f"{path}: {describe_errors(err)}") from err


def describe_errors(err: ValidationError) -> str:
    """Each problem as ``dotted.field = value: what is allowed``, joined by ``; ``.

    An error about a list or mapping as a whole is left out when one of its
    items has its own error (pydantic adds "too short" after a bad item).
    """
    errors = err.errors()
    locs = [tuple(e["loc"]) for e in errors]
    kept = [
        e
        for e, loc in zip(errors, locs, strict=True)
        if not any(len(other) > len(loc) and other[: len(loc)] == loc for other in locs)
    ]
    return "; ".join(_describe(e) for e in kept or errors)


def _describe(error: Mapping[str, Any]) -> str:
    loc = list(error["loc"])
    message = str(error["msg"]).removeprefix("Value error, ")
    value = error.get("input")
    problem = (error.get("ctx") or {}).get("error")
    if isinstance(problem, FieldProblem):
        loc += problem.field.split(".")
        value, message = problem.value, problem.allowed
    if loc and loc[-1] == "[key]":  # a mapping's key, not its value
        return f"{_dotted(loc[:-2])}: key {_short(value)}: {message}"
    where = _dotted(loc) or "<top level>"
    if error["type"] == "missing":
        return f"{where}: required, not set"
    if error["type"] == "extra_forbidden":
        known = _known_keys(loc[:-1])
        hint = f"; known keys here: {', '.join(known)}" if known else ""
        return f"{where}: unknown key{hint}"
    return f"{where} = {_short(value)}: {message}"


def _dotted(loc: Iterable[Any]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _short(value: Any, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _known_keys(loc: Iterable[Any]) -> list[str]:
    """The field names of the config section at `loc` (empty when it is no section)."""
    model: Any = ChurnConfig
    for part in loc:
        field = model.model_fields.get(part) if isinstance(part, str) else None
        annotation = getattr(field, "annotation", None)
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            return []
        model = annotation
    return list(model.model_fields)


def config_json(config: ChurnConfig) -> str:
    """The configuration as pipeline components receive it (JSON, without the `kfp` section)."""
    import json

    return json.dumps(config.model_dump(mode="json", exclude={"kfp"}), sort_keys=True)
