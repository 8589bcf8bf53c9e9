"""KFP v2 lightweight components for the registry stages: select and register.

Thin typed wrappers over `churn_components.registry.glue` (which calls the
plain functions of `churn_components.registry.steps`). ``tracking_uri``:
MLflow; empty means no registry (the bundle is still written, its version a
content hash). ``artifact_store``: where the bundle is copied
(``bundles/<name>/<version>/``), a folder or an Azure Blob URI; credentials
come from the environment.
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
def select(
    evaluation: Input[Artifact],
    test: Input[Dataset],
    config_json: str,
    tracking_uri: str,
    decision: Output[Artifact],
    metrics: Output[Metrics],
) -> str:
    """The best candidate by the configured rule, gated against the registry's champion.

    Champion and challenger are scored on the same rows: `test`, the held-out
    split the challenger was evaluated on.
    """
    from churn_components.registry import glue

    return glue.select(evaluation, test, config_json, tracking_uri, decision, metrics)


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
    trigger: str = "",
) -> str:
    """Write the model bundle, log it to MLflow, register it, move the aliases.

    `trigger`: the retraining trigger's reason and evidence (JSON; empty when started by hand).
    """
    from churn_components.registry import glue

    return glue.register(
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
        trigger,
    )
