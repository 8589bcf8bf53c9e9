"""`model_config.yaml`: each bad value is a ConfigError naming the file, field and value."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from churn_core.config import ChurnConfig, expand_env, load_config
from churn_core.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]
PROJECT_CONFIG = ROOT / "model_config.yaml"


def project_raw() -> dict[str, Any]:
    """The committed model_config.yaml as plain data, environment references expanded."""
    raw: dict[str, Any] = yaml.safe_load(expand_env(PROJECT_CONFIG.read_text()))
    return raw


def with_value(raw: dict[str, Any], dotted: str, value: Any) -> dict[str, Any]:
    """A deep copy of `raw` with `dotted` (a.b.c) set to `value`."""
    out = copy.deepcopy(raw)
    *parents, leaf = dotted.split(".")
    node = out
    for key in parents:
        node = node.setdefault(key, {})
    node[leaf] = value
    return out


def write(tmp_path: Path, raw: dict[str, Any]) -> Path:
    path = tmp_path / "model_config.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def test_the_committed_config_loads() -> None:
    config = load_config(PROJECT_CONFIG)
    assert config.features.tenure_bands == (12, 24, 48, 60)
    assert config.models.enabled == ("logistic", "xgboost", "mlp")
    assert config.models.xgboost.monotone_constraints["tenure"] == -1


def test_the_defaults_load(tmp_path: Path) -> None:
    empty = tmp_path / "empty.yaml"
    empty.write_text("# nothing set: every default\n")
    assert load_config(empty) == ChurnConfig()
    # the defaults also pass the checks when validated as data
    assert ChurnConfig.model_validate(ChurnConfig().model_dump()) == ChurnConfig()


# (field set, bad value, what the error must say: "<dotted field> = <value>", what is allowed)
BAD_VALUES = [
    ("data.max_rejected_share", 1.5, "data.max_rejected_share = 1.5", "less than or equal to 1"),
    ("data.synthetic_rows", 0, "data.synthetic_rows = 0", "greater than 0"),
    ("split.test_size", 0.0, "split.test_size = 0.0", "greater than 0"),
    ("split.seed", -1, "split.seed = -1", "greater than or equal to 0"),
    (
        "features.tenure_bands",
        [48, 12, 12, 60],
        "features.tenure_bands = [48, 12, 12, 60]",
        "strictly ascending (each above the one before), got 12 after 48",
    ),
    ("features.tenure_bands", [12, 12], "features.tenure_bands = [12, 12]", "got 12 after 12"),
    (
        "features.tenure_bands",
        [48, 12, 12, -3],
        "features.tenure_bands[3] = -3",
        "greater than or equal to 1",
    ),
    ("features.tenure_bands", [0, 12], "features.tenure_bands[0] = 0", "greater than or equal"),
    ("models.enabled", [], "models.enabled = []", "at least 1 item"),
    ("models.enabled", ["mlp", "mlp"], "models.enabled = ['mlp', 'mlp']", "'mlp' is listed twice"),
    ("models.enabled", ["forest"], "models.enabled[0] = 'forest'", "'xgboost' or 'mlp'"),
    ("models.logistic.c_grid", [], "models.logistic.c_grid = []", "at least 1 item"),
    ("models.logistic.c_grid", [0.1, 0.0], "models.logistic.c_grid[1] = 0.0", "greater than 0"),
    ("models.logistic.max_iter", 0, "models.logistic.max_iter = 0", "greater than 0"),
    ("models.logistic.validation_share", 1.0, "validation_share = 1.0", "less than 1"),
    ("models.xgboost.max_depth", 0, "models.xgboost.max_depth = 0", "greater than or equal to 1"),
    ("models.xgboost.learning_rate", 0.0, "xgboost.learning_rate = 0.0", "greater than 0"),
    ("models.xgboost.learning_rate", 1.5, "xgboost.learning_rate = 1.5", "less than or equal"),
    ("models.xgboost.max_n_estimators", 0, "xgboost.max_n_estimators = 0", "or equal to 1"),
    ("models.xgboost.subsample", 1.2, "xgboost.subsample = 1.2", "less than or equal to 1"),
    ("models.xgboost.subsample", 0.0, "xgboost.subsample = 0.0", "greater than 0"),
    ("models.xgboost.colsample_bytree", -0.1, "colsample_bytree = -0.1", "greater than 0"),
    ("models.xgboost.min_child_weight", -1.0, "min_child_weight = -1.0", "or equal to 0"),
    ("models.xgboost.reg_lambda", -1.0, "xgboost.reg_lambda = -1.0", "or equal to 0"),
    ("models.xgboost.max_bin", 1, "models.xgboost.max_bin = 1", "greater than or equal to 2"),
    ("models.xgboost.early_stopping_rounds", 0, "early_stopping_rounds = 0", "or equal to 1"),
    ("models.xgboost.validation_share", 0.0, "xgboost.validation_share = 0.0", "greater than"),
    (
        "models.xgboost.monotone_constraints",
        {"tenure": 2},
        "models.xgboost.monotone_constraints.tenure = 2",
        "-1, 0 or 1",
    ),
    (
        "models.xgboost.monotone_constraints",
        {"": 1},
        "models.xgboost.monotone_constraints: key ''",
        "at least 1 character",
    ),
    ("models.xgboost.exclude_features", [""], "exclude_features[0] = ''", "at least 1 character"),
    ("models.mlp.hidden", [16, 0], "models.mlp.hidden[1] = 0", "greater than or equal to 1"),
    ("models.mlp.dropout", 1.0, "models.mlp.dropout = 1.0", "less than 1"),
    ("models.mlp.dropout", -0.1, "models.mlp.dropout = -0.1", "greater than or equal to 0"),
    ("models.mlp.epochs", 0, "models.mlp.epochs = 0", "greater than or equal to 1"),
    ("models.mlp.batch_size", 0, "models.mlp.batch_size = 0", "greater than or equal to 1"),
    ("models.mlp.learning_rate", 0.0, "models.mlp.learning_rate = 0.0", "greater than 0"),
    ("models.mlp.weight_decay", -0.01, "models.mlp.weight_decay = -0.01", "or equal to 0"),
    ("evaluation.cv_folds", 1, "evaluation.cv_folds = 1", "greater than or equal to 2"),
    ("evaluation.cv_repeats", 0, "evaluation.cv_repeats = 0", "greater than or equal to 1"),
    ("evaluation.ece_bins", 0, "evaluation.ece_bins = 0", "greater than or equal to 2"),
    ("evaluation.ece_bins", 1, "evaluation.ece_bins = 1", "greater than or equal to 2"),
    ("evaluation.max_plausible_auc", 0.5, "max_plausible_auc = 0.5", "greater than 0.5"),
    ("evaluation.max_plausible_auc", 1.01, "max_plausible_auc = 1.01", "less than or equal to 1"),
    ("evaluation.calibration", "platt", "evaluation.calibration = 'platt'", "'isotonic'"),
    ("economics.offer_cost", -5.0, "economics.offer_cost = -5.0", "or equal to 0"),
    ("economics.customer_value", -1.0, "economics.customer_value = -1.0", "or equal to 0"),
    ("economics.offer_acceptance", 1.3, "offer_acceptance = 1.3", "less than or equal to 1"),
    ("economics.offer_acceptance", -0.1, "offer_acceptance = -0.1", "greater than or equal"),
    ("selection.f1_weight", -0.5, "selection.f1_weight = -0.5", "greater than or equal to 0"),
    ("selection.auc_weight", -0.5, "selection.auc_weight = -0.5", "greater than or equal to 0"),
    ("explainer.top_k", 0, "explainer.top_k = 0", "greater than or equal to 1"),
    ("explainer.background_rows", 0, "explainer.background_rows = 0", "must be >= 1"),
    ("bundle.reference_rows", 0, "bundle.reference_rows = 0", "greater than 0"),
    ("registry.model_name", "", "registry.model_name = ''", "at least 1 character"),
]


@pytest.mark.parametrize(
    ("field", "value", "says", "allowed"),
    BAD_VALUES,
    ids=[f"{f}={v!r}" for f, v, _, _ in BAD_VALUES],
)
def test_a_bad_value_is_a_config_error_naming_file_field_and_value(
    tmp_path: Path, field: str, value: Any, says: str, allowed: str
) -> None:
    path = write(tmp_path, with_value(project_raw(), field, value))
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    message = str(caught.value)
    assert message.startswith(f"{path}: "), message
    assert says in message, message
    assert allowed in message, message
    assert ";" not in message, message  # this one problem only


def test_both_selection_weights_zero_is_refused(tmp_path: Path) -> None:
    raw = with_value(with_value(project_raw(), "selection.f1_weight", 0), "selection.auc_weight", 0)
    both = r"selection\.f1_weight = 0\.0: f1_weight and auc_weight are both 0: at least one"
    with pytest.raises(ConfigError, match=both):
        load_config(write(tmp_path, raw))
    # one of them may be 0
    one = with_value(project_raw(), "selection.f1_weight", 0)
    assert load_config(write(tmp_path, one)).selection.auc_weight == 0.5


@pytest.mark.parametrize("text", [".inf", ".nan", "-.inf"])
def test_infinite_or_nan_numbers_are_refused(tmp_path: Path, text: str) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(f"models:\n  mlp:\n    weight_decay: {text}\n")
    with pytest.raises(ConfigError, match=r"models\.mlp\.weight_decay = .*finite number"):
        load_config(path)


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    raw = with_value(project_raw(), "evaluation.ece_bins", 0)
    raw = with_value(raw, "models.mlp.epochs", 0)
    message = str(pytest.raises(ConfigError, load_config, write(tmp_path, raw)).value)
    assert "evaluation.ece_bins = 0" in message and "models.mlp.epochs = 0" in message


def test_unknown_keys_are_named_with_the_known_ones(tmp_path: Path) -> None:
    raw = with_value(project_raw(), "models.xgboost.n_estimators", 100)
    message = str(pytest.raises(ConfigError, load_config, write(tmp_path, raw)).value)
    assert "models.xgboost.n_estimators: unknown key" in message
    assert "max_n_estimators" in message  # what the user probably meant


def test_a_missing_required_field_is_named(tmp_path: Path) -> None:
    raw = with_value(project_raw(), "explainer.retention", {"Contract": [{"when": "*"}]})
    with pytest.raises(ConfigError, match=r"explainer\.retention\.Contract\[0\]\.suggestion"):
        load_config(write(tmp_path, raw))


def test_environment_references_are_expanded_and_checked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("models:\n  mlp:\n    epochs: ${CHURN_TEST_EPOCHS:-3}\n")
    monkeypatch.delenv("CHURN_TEST_EPOCHS", raising=False)
    assert load_config(path).models.mlp.epochs == 3
    monkeypatch.setenv("CHURN_TEST_EPOCHS", "7")
    assert load_config(path).models.mlp.epochs == 7
    monkeypatch.setenv("CHURN_TEST_EPOCHS", "0")
    with pytest.raises(ConfigError, match=r"models\.mlp\.epochs = 0"):
        load_config(path)
    path.write_text("kfp:\n  endpoint: ${CHURN_TEST_UNSET}\n")
    monkeypatch.delenv("CHURN_TEST_UNSET", raising=False)
    with pytest.raises(ConfigError, match="CHURN_TEST_UNSET is not set"):
        load_config(path)


def test_the_checks_also_guard_the_json_the_components_receive() -> None:
    from churn_components.common import config_from_json

    good = ChurnConfig().model_dump_json()
    assert config_from_json(good) == ChurnConfig()
    bad = good.replace('"ece_bins":10', '"ece_bins":0')
    assert bad != good
    with pytest.raises(ConfigError, match="ece_bins"):
        config_from_json(bad)


# -- names of output features: checked by training, where the fitted transform is known ----
def _with_xgboost(config: ChurnConfig, **update: Any) -> ChurnConfig:
    models = config.models.model_copy(
        update={"xgboost": config.models.xgboost.model_copy(update=update)}
    )
    return config.model_copy(update={"models": models})


def test_the_committed_xgboost_names_are_output_features(synthetic_frame: Any) -> None:
    from churn_components.training.train import check_feature_names
    from churn_model.features import ChurnFeatures

    config = load_config(PROJECT_CONFIG)
    fitted = ChurnFeatures(tenure_bands=config.features.tenure_bands).fit(synthetic_frame)
    check_feature_names([f.name for f in fitted.output_features], config.models.xgboost)


@pytest.mark.parametrize(
    ("update", "says"),
    [
        (
            {"monotone_constraints": {"tenure": -1, "tenur": -1}},
            "models.xgboost.monotone_constraints.tenur = -1: 'tenur' is not an output feature",
        ),
        (
            {"exclude_features": ("tenure_band_*", "tenure_band_0_12")},  # bands are 24, 48 here
            "models.xgboost.exclude_features[1] = 'tenure_band_0_12': matches no output feature",
        ),
    ],
)
def test_training_refuses_xgboost_names_the_transform_lacks_before_any_fit(
    synthetic_frame: Any, update: dict[str, Any], says: str
) -> None:
    from churn_components.training.train import train_candidate
    from churn_model.features import ChurnFeatures

    config = _with_xgboost(load_config(PROJECT_CONFIG), **update)
    fitted = ChurnFeatures(tenure_bands=(24, 48)).fit(synthetic_frame)
    with pytest.raises(ConfigError) as caught:
        train_candidate(synthetic_frame, fitted, "xgboost", config)
    message = str(caught.value)
    assert says in message, message
    assert "the output features are: gender=Female" in message  # what is allowed
    # the other kinds do not read models.xgboost: they train
    logistic = train_candidate(synthetic_frame, fitted, "logistic", _fast(config))
    assert logistic.kind == "logistic"


def _fast(config: ChurnConfig) -> ChurnConfig:
    from tests.fixtures.training import small_config

    return small_config(config)
