"""KFP v2 lightweight components for the data stages: thin typed wrappers.

Each body imports inside itself (KFP runs the function's source alone in the
components image) and calls the plain functions of `churn_components.data.steps`.
Artifact metadata carries ``sha256``, ``rows`` and ``synthetic``; numbers go
to an ``Output[Metrics]`` so the KFP UI shows them.

``artifact_store``: when not empty, the stage also copies its outputs to the
project's artifact store (a local folder or Azure Blob, `churn_core.store`)
under ``data/<stage>/<sha256[:16]>/``: KFP cannot use Azure Blob as its own
pipeline root, so the artifacts that matter are written there by us. Blob
credentials come from the component's environment, never from a pipeline
parameter (those are visible in the KFP UI): each body is an entry point and
reads ``CHURN_AZURE_STORAGE_CONNECTION_STRING`` (`Settings`) once at its start
(empty: workload identity).

The components run in ``COMPONENTS_IMAGE`` (built from ``components/Dockerfile``),
which already holds kfp and this project, so nothing is pip-installed at run
time (``install_kfp_package=False``). Locally they run with
``kfp.local.SubprocessRunner(use_venv=False)`` in the current environment.
"""

# No `from __future__ import annotations` here: KFP reads the annotations at decoration.
from typing import Any, NamedTuple

from kfp import dsl
from kfp.dsl import Artifact, Dataset, Input, Metrics, Output

from churn_components.common import COMPONENTS_IMAGE


@dsl.component(base_image=COMPONENTS_IMAGE, install_kfp_package=False)
def ingest_data(
    source_uri: str,
    artifact_store: str,
    raw: Output[Dataset],
    metrics: Output[Metrics],
) -> None:
    """Read the source table (path, https, Azure Blob) unchanged; record sha256 and rows."""
    from churn_components import common
    from churn_components.data import steps as stages
    from churn_core.settings import Settings

    connection = Settings().azure_storage_connection_string
    common.component_logging()
    meta = stages.ingest_files(source_uri, raw.path, connection)
    common.annotate(raw, meta)
    common.log_metrics(metrics, meta, ("rows", "bytes", "synthetic"))
    if artifact_store:
        stages.publish(artifact_store, "ingest", {stages.RAW: raw.path}, meta, connection)


@dsl.component(base_image=COMPONENTS_IMAGE, install_kfp_package=False)
def validate_data(
    raw: Input[Dataset],
    max_rejected_share: float,
    artifact_store: str,
    validated: Output[Dataset],
    report: Output[Artifact],
    rejected: Output[Dataset],
    metrics: Output[Metrics],
) -> None:
    """Check every row against the data contract; fail above the rejected-share limit."""
    from churn_components import common
    from churn_components.data import steps as stages
    from churn_core.settings import Settings

    connection = Settings().azure_storage_connection_string
    common.component_logging()
    meta = stages.validate_files(
        raw.path,
        validated.path,
        report.path,
        rejected.path,
        max_rejected_share,
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


@dsl.component(base_image=COMPONENTS_IMAGE, install_kfp_package=False)
def preprocess_data(
    validated: Input[Dataset],
    test_size: float,
    seed: int,
    artifact_store: str,
    train: Output[Dataset],
    test: Output[Dataset],
    metrics: Output[Metrics],
) -> None:
    """Stratified train/test split with a fixed seed."""
    from churn_components import common
    from churn_components.data import steps as stages
    from churn_core.settings import Settings

    connection = Settings().azure_storage_connection_string
    common.component_logging()
    meta = stages.preprocess_files(
        validated.path, train.path, test.path, test_size, seed, upstream=dict(validated.metadata)
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


@dsl.component(base_image=COMPONENTS_IMAGE, install_kfp_package=False)
def fit_features(
    train: Input[Dataset],
    tenure_bands: list,
    artifact_store: str,
    transform: Output[Artifact],
    description: Output[Artifact],
    metrics: Output[Metrics],
) -> None:
    """Fit the one feature transform on the training split; save it with its sha256."""
    from churn_components import common
    from churn_components.data import steps as stages
    from churn_core.settings import Settings

    connection = Settings().azure_storage_connection_string
    common.component_logging()
    meta = stages.features_files(
        train.path, transform.path, description.path, tenure_bands, upstream=dict(train.metadata)
    )
    common.annotate(transform, meta)
    common.annotate(description, {**meta, "sha256": meta["description_sha256"]})
    common.log_metrics(metrics, meta, ("fitted_rows", "n_features", "synthetic"))
    if artifact_store:
        files = {stages.TRANSFORM: transform.path, stages.DESCRIPTION: description.path}
        stages.publish(artifact_store, "features", files, meta, connection)


class DataTasks(NamedTuple):
    """The four data-stage tasks inside a pipeline; `.features.outputs["transform"]` etc."""

    ingest: Any
    validate: Any
    preprocess: Any
    features: Any


def add_data_stages(
    source_uri: Any,
    artifact_store: Any,
    max_rejected_share: Any,
    test_size: Any,
    seed: Any,
    tenure_bands: Any,
) -> DataTasks:
    """Create ingest -> validate -> preprocess -> features; call inside a `@dsl.pipeline` body.

    Arguments may be pipeline parameters or constants. Ingest is never cached:
    its input is a URI whose content can change while the string stays the same.
    """
    ingest = ingest_data(source_uri=source_uri, artifact_store=artifact_store)
    ingest.set_caching_options(False)
    validate = validate_data(
        raw=ingest.outputs["raw"],
        max_rejected_share=max_rejected_share,
        artifact_store=artifact_store,
    )
    preprocess = preprocess_data(
        validated=validate.outputs["validated"],
        test_size=test_size,
        seed=seed,
        artifact_store=artifact_store,
    )
    features = fit_features(
        train=preprocess.outputs["train"],
        tenure_bands=tenure_bands,
        artifact_store=artifact_store,
    )
    return DataTasks(ingest, validate, preprocess, features)
