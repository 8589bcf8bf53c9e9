"""KFP v2 lightweight components for the data stages: thin typed wrappers.

Each body imports inside itself (KFP runs the function's source alone in the
components image) and hands its artifacts to `churn_components.data.glue`,
which calls the plain functions of `churn_components.data.steps`. Artifact
metadata carries ``sha256``, ``rows`` and ``synthetic``; numbers go to an
``Output[Metrics]`` so the KFP UI shows them.

``config_json`` is the whole `ChurnConfig` as JSON, the same pipeline
parameter every training and registry stage reads: validate, preprocess and
features take their parameters (``data.max_rejected_share``, ``split.*``,
``features.tenure_bands``) from it, so a run submitted with another
configuration uses it in every stage.

``artifact_store``: when not empty, the stage also copies its outputs to the
project's artifact store (a local folder or Azure Blob, `churn_core.store`)
under ``data/<stage>/<sha256[:16]>/``: KFP cannot use Azure Blob as its own
pipeline root, so the artifacts that matter are written there by us. Blob
credentials come from the component's environment, never from a pipeline
parameter (those are visible in the KFP UI): each body is an entry point and
reads ``CHURN_AZURE_STORAGE_CONNECTION_STRING`` (`Settings`) once at its start
(empty: workload identity).

The components run in ``COMPONENTS_IMAGE`` (the ``components`` target of the top-level
``Dockerfile``), which already holds kfp and this project, so nothing is pip-installed at run
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
    from churn_components.data import glue

    glue.ingest(source_uri, artifact_store, raw, metrics)


@dsl.component(base_image=COMPONENTS_IMAGE, install_kfp_package=False)
def validate_data(
    raw: Input[Dataset],
    config_json: str,
    artifact_store: str,
    validated: Output[Dataset],
    report: Output[Artifact],
    rejected: Output[Dataset],
    metrics: Output[Metrics],
) -> None:
    """Check every row against the data contract; fail above data.max_rejected_share."""
    from churn_components.data import glue

    glue.validate(raw, config_json, artifact_store, validated, report, rejected, metrics)


@dsl.component(base_image=COMPONENTS_IMAGE, install_kfp_package=False)
def preprocess_data(
    validated: Input[Dataset],
    config_json: str,
    artifact_store: str,
    train: Output[Dataset],
    test: Output[Dataset],
    metrics: Output[Metrics],
) -> None:
    """Stratified train/test split (split.test_size, split.seed)."""
    from churn_components.data import glue

    glue.preprocess(validated, config_json, artifact_store, train, test, metrics)


@dsl.component(base_image=COMPONENTS_IMAGE, install_kfp_package=False)
def fit_features(
    train: Input[Dataset],
    config_json: str,
    artifact_store: str,
    transform: Output[Artifact],
    description: Output[Artifact],
    metrics: Output[Metrics],
) -> None:
    """Fit the one feature transform on the training split; save it with its sha256."""
    from churn_components.data import glue

    glue.features(train, config_json, artifact_store, transform, description, metrics)


class DataTasks(NamedTuple):
    """The four data-stage tasks inside a pipeline; `.features.outputs["transform"]` etc."""

    ingest: Any
    validate: Any
    preprocess: Any
    features: Any


def add_data_stages(source_uri: Any, artifact_store: Any, config_json: Any) -> DataTasks:
    """Create ingest -> validate -> preprocess -> features; call inside a `@dsl.pipeline` body.

    Arguments may be pipeline parameters or constants; `config_json` should be
    the pipeline's own ``config_json`` parameter (the JSON of `ChurnConfig`), so
    the data stages read the configuration the rest of the run reads. Ingest
    is never cached: its input is a URI whose content can change while the
    string stays the same.
    """
    ingest = ingest_data(source_uri=source_uri, artifact_store=artifact_store)
    ingest.set_caching_options(False)
    validate = validate_data(
        raw=ingest.outputs["raw"], config_json=config_json, artifact_store=artifact_store
    )
    preprocess = preprocess_data(
        validated=validate.outputs["validated"],
        config_json=config_json,
        artifact_store=artifact_store,
    )
    features = fit_features(
        train=preprocess.outputs["train"], config_json=config_json, artifact_store=artifact_store
    )
    return DataTasks(ingest, validate, preprocess, features)
