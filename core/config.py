"""`model_config.yaml`: a typed model that rejects unknown keys and expands ${ENV} values."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from churn_core.errors import ConfigError


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DataConfig(_Strict):
    """Ingest and validation."""

    max_rejected_share: float = Field(0.01, ge=0, le=1)
    synthetic_rows: int = Field(7043, gt=0)


class SplitConfig(_Strict):
    """Stratified train/test split."""

    test_size: float = Field(0.2, gt=0, lt=1)
    seed: int = 42


class FeaturesConfig(_Strict):
    """The feature transform."""

    tenure_bands: tuple[int, ...] = (12, 24, 48, 60)


class LogisticConfig(_Strict):
    """Logistic regression; C is chosen inside training folds from the grid."""

    c_grid: tuple[float, ...] = (0.03, 0.1, 0.3, 1.0)
    max_iter: int = Field(100, gt=0)  # Newton iterations
    validation_share: float = Field(0.25, gt=0, lt=1)  # inner split that picks C


class XGBoostConfig(_Strict):
    """XGBoost; n_estimators by early stopping inside training folds."""

    max_depth: int = 3
    learning_rate: float = 0.03
    max_n_estimators: int = 600
    subsample: float = 0.8
    colsample_bytree: float = 0.8
    min_child_weight: float = 5.0
    reg_lambda: float = 5.0
    max_bin: int = Field(256, ge=2)
    early_stopping_rounds: int = Field(50, ge=1)
    validation_share: float = Field(0.2, gt=0, lt=1)  # inner split for early stopping
    # output feature name -> +1 (risk may only rise with it) / -1 (only fall)
    monotone_constraints: dict[str, Literal[-1, 0, 1]] = {}
    # output features the trees never split on (fnmatch patterns), e.g. one-hot tenure
    # bands that would defeat a monotone constraint on tenure
    exclude_features: tuple[str, ...] = ()


class MLPConfig(_Strict):
    """Torch multi-layer perceptron."""

    hidden: tuple[int, ...] = (16,)
    dropout: float = 0.0
    epochs: int = 10
    batch_size: int = 512
    learning_rate: float = 0.01
    weight_decay: float = 0.01


class ModelsConfig(_Strict):
    """Which candidates train and with what hyperparameters."""

    enabled: tuple[Literal["logistic", "xgboost", "mlp"], ...] = ("logistic", "xgboost", "mlp")
    logistic: LogisticConfig = LogisticConfig()
    xgboost: XGBoostConfig = XGBoostConfig()
    mlp: MLPConfig = MLPConfig()


class EvaluationConfig(_Strict):
    """Repeated stratified cross-validation and calibration."""

    cv_folds: int = Field(5, ge=2)
    cv_repeats: int = Field(5, ge=1)
    calibration: Literal["auto", "none", "sigmoid", "isotonic"] = "auto"
    ece_bins: int = 10
    max_plausible_auc: float = 0.88


class EconomicsConfig(_Strict):
    """Retention economics for the profit-optimal threshold."""

    offer_cost: float = 50.0
    customer_value: float = 500.0
    offer_acceptance: float = 0.3


class SelectionConfig(_Strict):
    """Pick the best candidate, then gate it against the champion."""

    f1_weight: float = 0.5
    auc_weight: float = 0.5
    threshold: Literal["f1", "profit"] = "f1"
    gate_tolerance: float = 0.005


class ValueRange(_Strict):
    """The numbers a retention rule matches: `min`/`max` inclusive, `above`/`below` exclusive."""

    min: float | None = None
    max: float | None = None
    above: float | None = None
    below: float | None = None

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

    when: str | tuple[str, ...] | ValueRange
    suggestion: str = Field(min_length=1)
    set: dict[str, int | float | str] = {}

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
    background_rows: int = 200
    # smallest effect (probability points) a reason may have; below 0.1 it would read "0.0 points"
    min_effect_points: float = Field(1.0, ge=0.1, le=100)
    context: tuple[str, ...] = ()
    retention: dict[str, list[RetentionAction]] = {}

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

    model_name: str = "churn"
    experiment: str = "churn-training"


class BundleConfig(_Strict):
    """What the model bundle carries besides the model."""

    reference_rows: int = Field(1000, gt=0)  # drift reference sample of training rows


class KFPConfig(_Strict):
    """Kubeflow Pipelines submission."""

    endpoint: str = ""
    namespace: str = "kubeflow"
    experiment: str = "churn"


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
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in err.errors()
        )
        raise ConfigError(f"{path}: {problems}") from err
