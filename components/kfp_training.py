"""KFP v2 lightweight components for the training stages: thin typed wrappers.

train_logistic | train_xgboost | train_mlp (independent, so they run in
parallel on a cluster) -> evaluate -> select -> register. Each body imports
inside itself (KFP runs the function's source alone in the components image)
and calls the plain functions of `churn_components.training_steps`; the glue
that turns their results into KFP Metrics, ClassificationMetrics and Markdown
lives in `churn_components.kfp_glue`.

``config_json`` is the whole `ChurnConfig` as JSON (the pipeline compiles in
`model_config.yaml`'s values). ``tracking_uri``: MLflow; empty means no
registry (the bundle is still written, its version a content hash).
``artifact_store``: where the bundle is copied (``bundles/<name>/<version>/``),
a folder or an Azure Blob URI; credentials come from the environment.
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

from churn_components.kfp_data import COMPONENTS_IMAGE


@dsl.component(base_image=COMPONENTS_IMAGE, install_kfp_package=False)
def train_logistic(
    train: Input[Dataset],
    transform: Input[Artifact],
    config_json: str,
    candidate: Output[Model],
    metrics: Output[Metrics],
) -> None:
    """Logistic regression: C grid inside training folds, 5x5 CV, final fit."""
    from churn_components import kfp_glue

    kfp_glue.train("logistic", train, transform, config_json, candidate, metrics)


@dsl.component(base_image=COMPONENTS_IMAGE, install_kfp_package=False)
def train_xgboost(
    train: Input[Dataset],
    transform: Input[Artifact],
    config_json: str,
    candidate: Output[Model],
    metrics: Output[Metrics],
) -> None:
    """XGBoost: trees by early stopping inside training folds, 5x5 CV, final fit."""
    from churn_components import kfp_glue

    kfp_glue.train("xgboost", train, transform, config_json, candidate, metrics)


@dsl.component(base_image=COMPONENTS_IMAGE, install_kfp_package=False)
def train_mlp(
    train: Input[Dataset],
    transform: Input[Artifact],
    config_json: str,
    candidate: Output[Model],
    metrics: Output[Metrics],
) -> None:
    """Torch MLP: seeded, single-threaded, 5x5 CV, final fit."""
    from churn_components import kfp_glue

    kfp_glue.train("mlp", train, transform, config_json, candidate, metrics)


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
    from churn_components import kfp_glue

    kfp_glue.evaluate(
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


@dsl.component(base_image=COMPONENTS_IMAGE, install_kfp_package=False)
def select(
    evaluation: Input[Artifact],
    config_json: str,
    tracking_uri: str,
    decision: Output[Artifact],
    metrics: Output[Metrics],
) -> str:
    """The best candidate by the configured rule, gated against the registry's champion."""
    from churn_components import kfp_glue

    return kfp_glue.select(evaluation, config_json, tracking_uri, decision, metrics)


@dsl.component(base_image=COMPONENTS_IMAGE, install_kfp_package=False)
def register(
    logistic: Input[Model],
    xgboost: Input[Model],
    mlp: Input[Model],
    evaluation: Input[Artifact],
    decision: Input[Artifact],
    raw: Input[Dataset],
    train: Input[Dataset],
    test: Input[Dataset],
    transform: Input[Artifact],
    config_json: str,
    tracking_uri: str,
    artifact_store: str,
    bundle: Output[Model],
    metrics: Output[Metrics],
    curves: Output[ClassificationMetrics],
    report: Output[Markdown],
) -> str:
    """Write the model bundle, log it to MLflow, register it, move the aliases."""
    from churn_components import kfp_glue

    return kfp_glue.register(
        {"logistic": logistic, "xgboost": xgboost, "mlp": mlp},
        evaluation,
        decision,
        raw,
        train,
        test,
        transform,
        config_json,
        tracking_uri,
        artifact_store,
        bundle,
        metrics,
        curves,
        report,
    )
