"""KFP v2 lightweight components for the training stages: thin typed wrappers.

train_logistic | train_xgboost | train_mlp (independent: on a cluster they run in
parallel; `kfp.local` runs them one after another) -> evaluate; then
`churn_components.registry.component` (select -> register). Each body imports
inside itself (KFP runs the function's source alone in the components image)
and calls the plain functions of `churn_components.training.steps`; the glue
that turns their results into KFP Metrics, ClassificationMetrics and Markdown
lives in `churn_components.training.glue`.

``config_json`` is the whole `ChurnConfig` as JSON (the pipeline compiles in
`model_config.yaml`'s values).
"""

# No `from __future__ import annotations` here: KFP reads the annotations at decoration.
from kfp import dsl
from kfp.dsl import (
    Artifact,
    ClassificationMetrics,
    Dataset,
    Input,
    Markdown,
    Metrics,
    Model,
    Output,
)

from churn_components.common import COMPONENTS_IMAGE


@dsl.component(base_image=COMPONENTS_IMAGE, install_kfp_package=False)
def train_logistic(
    train: Input[Dataset],
    transform: Input[Artifact],
    config_json: str,
    candidate: Output[Model],
    metrics: Output[Metrics],
) -> None:
    """Logistic regression: C grid inside training folds, 5x5 CV, final fit."""
    from churn_components.training import glue

    glue.train("logistic", train, transform, config_json, candidate, metrics)


@dsl.component(base_image=COMPONENTS_IMAGE, install_kfp_package=False)
def train_xgboost(
    train: Input[Dataset],
    transform: Input[Artifact],
    config_json: str,
    candidate: Output[Model],
    metrics: Output[Metrics],
) -> None:
    """XGBoost: trees by early stopping inside training folds, 5x5 CV, final fit."""
    from churn_components.training import glue

    glue.train("xgboost", train, transform, config_json, candidate, metrics)


@dsl.component(base_image=COMPONENTS_IMAGE, install_kfp_package=False)
def train_mlp(
    train: Input[Dataset],
    transform: Input[Artifact],
    config_json: str,
    candidate: Output[Model],
    metrics: Output[Metrics],
) -> None:
    """Torch MLP: seeded, single-threaded, 5x5 CV, final fit."""
    from churn_components.training import glue

    glue.train("mlp", train, transform, config_json, candidate, metrics)


@dsl.component(base_image=COMPONENTS_IMAGE, install_kfp_package=False)
def evaluate(
    logistic: Input[Model],
    xgboost: Input[Model],
    mlp: Input[Model],
    train: Input[Dataset],
    test: Input[Dataset],
    transform: Input[Artifact],
    config_json: str,
    evaluation: Output[Artifact],
    metrics: Output[Metrics],
    logistic_curves: Output[ClassificationMetrics],
    xgboost_curves: Output[ClassificationMetrics],
    mlp_curves: Output[ClassificationMetrics],
    report: Output[Markdown],
) -> None:
    """Calibration, thresholds, CV and held-out metrics per candidate; the leakage guard."""
    from churn_components.training import glue

    glue.evaluate(
        {"logistic": logistic, "xgboost": xgboost, "mlp": mlp},
        train,
        test,
        transform,
        config_json,
        evaluation,
        metrics,
        {"logistic": logistic_curves, "xgboost": xgboost_curves, "mlp": mlp_curves},
        report,
    )
