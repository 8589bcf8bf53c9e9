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


class RetentionAction(_Strict):
    """A retention suggestion shown for a reason."""

    when: str
    suggestion: str


class ExplainerConfig(_Strict):
    """Explanations."""

    top_k: int = Field(3, ge=1)
    background_rows: int = 200
    retention: dict[str, list[RetentionAction]] = {}


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
