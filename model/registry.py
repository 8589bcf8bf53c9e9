"""Where a registered bundle lives in MLflow: the alias names, the artifact, the download.

Training registers (`churn_components.registry.register`); every server and
the drift service resolve ``models:/<name>@<alias>`` to a bundle folder here.
"""

from __future__ import annotations

import logging
from pathlib import Path

from churn_core.errors import NotFound

logger = logging.getLogger(__name__)

CHAMPION = "champion"
CHALLENGER = "challenger"
PYFUNC_NAME = "model"
BUNDLE_ARTIFACT = "bundle"  # the pyfunc model's artifact holding the bundle folder


def absolute_tracking_uri(uri: str, base: str | Path | None = None) -> str:
    """Make a relative ``sqlite:///file.db`` absolute (subprocesses may run elsewhere)."""
    prefix = "sqlite:///"
    if uri.startswith(prefix) and not uri.startswith(prefix + "/"):
        path = Path(base or Path.cwd()) / uri[len(prefix) :]
        return prefix + str(path.resolve())
    return uri


def download_bundle(model_uri: str, dst: str | Path, tracking_uri: str | None = None) -> Path:
    """Fetch the bundle of a registered model (``models:/<name>@<alias>`` or ``/<version>``).

    Args:
        model_uri: an MLflow models URI.
        dst: a local folder to download into.
        tracking_uri: the MLflow tracking/registry URI; default `Settings.mlflow_tracking_uri`.

    Returns:
        The local bundle folder (holding metadata.json and model.json).
    """
    import mlflow
    from mlflow.exceptions import MlflowException

    if tracking_uri is None:
        from churn_core.settings import Settings

        tracking_uri = Settings().mlflow_tracking_uri
    uri = absolute_tracking_uri(tracking_uri)
    mlflow.set_registry_uri(uri)
    Path(dst).mkdir(parents=True, exist_ok=True)
    try:
        local = mlflow.artifacts.download_artifacts(
            artifact_uri=model_uri, dst_path=str(dst), tracking_uri=uri
        )
    except MlflowException as err:
        raise NotFound(f"{model_uri}: not found in the MLflow registry at {uri}: {err}") from err
    bundle = Path(local) / "artifacts" / BUNDLE_ARTIFACT
    if not (bundle / "metadata.json").is_file():
        raise NotFound(f"{model_uri}: the registered model holds no churn bundle")
    logger.info("downloaded %s to %s", model_uri, bundle)
    return bundle
