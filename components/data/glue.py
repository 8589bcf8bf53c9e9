"""Glue between the KFP data components and `churn_components.data.steps`.

Takes KFP artifact objects (anything with ``.path``, ``.metadata`` and
``log_metric``) and the pipeline's ``config_json``, calls the plain stage
functions and copies their metadata onto the artifacts. Each stage reads its
parameters from ``config_json`` (the same configuration every later stage
reads), never from a value compiled into the pipeline. No kfp import here, so
it is testable with stand-ins.
"""

from __future__ import annotations

from typing import Any

from churn_components import common
from churn_components.data import steps as stages


def ingest(source_uri: str, artifact_store: str, raw: Any, metrics: Any) -> None:
    """The body of ingest_data."""
    connection = common.component_logging().azure_storage_connection_string
    meta = stages.ingest_files(source_uri, raw.path, connection)
    common.annotate(raw, meta)
    common.log_metrics(metrics, meta, ("rows", "bytes", "synthetic"))
    if artifact_store:
        stages.publish(artifact_store, "ingest", {stages.RAW: raw.path}, meta, connection)


def validate(
    raw: Any,
    config_json: str,
    artifact_store: str,
    validated: Any,
    report: Any,
    rejected: Any,
    metrics: Any,
) -> None:
    """The body of validate_data: `data.max_rejected_share` from the config."""
    connection = common.component_logging().azure_storage_connection_string
    config = common.config_from_json(config_json)
    meta = stages.validate_files(
        raw.path,
        validated.path,
        report.path,
        rejected.path,
        config.data.max_rejected_share,
        upstream=dict(raw.metadata),
    )
    common.annotate(validated, meta)
    common.annotate(report, {**meta, "sha256": meta["report_sha256"]})
    common.annotate(rejected, {**meta, "sha256": meta["rejected_sha256"]})
    common.log_metrics(
        metrics,
        meta,
        (
            "input_rows",
            "accepted_rows",
            "rejected_rows",
            "rejected_share",
            "blank_total_charges_tenure_0",
            "churn_share",
            "synthetic",
        ),
    )
    if artifact_store:
        files = {
            stages.VALIDATED: validated.path,
            stages.REPORT: report.path,
            stages.REJECTED: rejected.path,
        }
        stages.publish(artifact_store, "validate", files, meta, connection)


def preprocess(
    validated: Any, config_json: str, artifact_store: str, train: Any, test: Any, metrics: Any
) -> None:
    """The body of preprocess_data: `split.test_size` and `split.seed` from the config."""
    connection = common.component_logging().azure_storage_connection_string
    split = common.config_from_json(config_json).split
    meta = stages.preprocess_files(
        validated.path,
        train.path,
        test.path,
        split.test_size,
        split.seed,
        upstream=dict(validated.metadata),
    )
    common.annotate(train, {**meta, "rows": meta["train_rows"], "sha256": meta["train_sha256"]})
    common.annotate(test, {**meta, "rows": meta["test_rows"], "sha256": meta["test_sha256"]})
    common.log_metrics(
        metrics,
        meta,
        ("train_rows", "test_rows", "train_churn_share", "test_churn_share", "synthetic"),
    )
    if artifact_store:
        files = {stages.TRAIN: train.path, stages.TEST: test.path}
        stages.publish(
            artifact_store,
            "preprocess",
            files,
            {**meta, "sha256": meta["train_sha256"]},
            connection,
        )


def features(
    train: Any,
    config_json: str,
    artifact_store: str,
    transform: Any,
    description: Any,
    metrics: Any,
) -> None:
    """The body of fit_features: `features.tenure_bands` from the config."""
    connection = common.component_logging().azure_storage_connection_string
    bands = common.config_from_json(config_json).features.tenure_bands
    meta = stages.features_files(
        train.path, transform.path, description.path, bands, upstream=dict(train.metadata)
    )
    common.annotate(transform, meta)
    common.annotate(description, {**meta, "sha256": meta["description_sha256"]})
    common.log_metrics(metrics, meta, ("fitted_rows", "n_features", "synthetic"))
    if artifact_store:
        files = {stages.TRANSFORM: transform.path, stages.DESCRIPTION: description.path}
        stages.publish(artifact_store, "features", files, meta, connection)
