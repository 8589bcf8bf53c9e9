"""Where a registered bundle lives in MLflow: the alias names, the artifact, the download.

Training registers (`churn_components.registry.register`); every server and
the drift service resolve ``models:/<name>@<alias>`` to a bundle folder here.
"""

from __future__ import annotations

import logging
from pathlib import Path

from churn_core.errors import ConfigError, InvalidInput, NotFound, StoreError

logger = logging.getLogger(__name__)

CHAMPION = "champion"
CHALLENGER = "challenger"
PYFUNC_NAME = "model"
BUNDLE_ARTIFACT = "bundle"  # the pyfunc model's artifact holding the bundle folder
# what the registry answers for an unknown model, version or alias
_UNKNOWN = frozenset({"RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"})


def absolute_tracking_uri(uri: str, base: str | Path | None = None) -> str:
    """Make a relative ``sqlite:///file.db`` absolute (subprocesses may run elsewhere)."""
    prefix = "sqlite:///"
    if uri.startswith(prefix) and not uri.startswith(prefix + "/"):
        path = Path(base or Path.cwd()) / uri[len(prefix) :]
        return prefix + str(path.resolve())
    return uri


def parse_models_uri(model_uri: str) -> tuple[str, str | None, str | None]:
    """The (name, alias, version) named by a models URI; one of alias and version is None.

    ``models:/<name>@<alias>`` -> (name, alias, None);
    ``models:/<name>/<version>`` -> (name, None, version).

    Raises:
        InvalidInput: any other form (a stage name, a sub-path, no name).
    """
    rest = model_uri[len("models:/") :] if model_uri.startswith("models:/") else ""
    name, at, alias = rest.partition("@")
    if at and name and alias and "/" not in name + alias:
        return name, alias, None
    name, slash, version = rest.partition("/")
    if not at and slash and name and version.isdigit():
        return name, None, version
    raise InvalidInput(
        f"model URI {model_uri!r}: expected models:/<name>@<alias> or models:/<name>/<version>"
    )


def download_bundle(model_uri: str, dst: str | Path, *, tracking_uri: str) -> Path:
    """Fetch the bundle of a registered model (``models:/<name>@<alias>`` or ``/<version>``).

    Resolves the version with an `MlflowClient` at `tracking_uri` and downloads the
    ``artifacts/bundle`` folder of its pyfunc model; no process-wide MLflow URI is set.

    Args:
        model_uri: an MLflow models URI.
        dst: a local folder to download into.
        tracking_uri: the MLflow tracking (and registry) URI; the entry point's
            `Settings.mlflow_tracking_uri`.

    Returns:
        The local bundle folder (holding metadata.json and model.json).

    Raises:
        NotFound: no such registered model, alias or version, or it holds no churn bundle.
        StoreError: the registry or its artifact store could not be reached or read.
    """
    import mlflow
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    if not tracking_uri:
        raise ConfigError(f"{model_uri}: no MLflow tracking URI (CHURN_MLFLOW_TRACKING_URI)")
    name, alias, number = parse_models_uri(model_uri)
    uri = absolute_tracking_uri(tracking_uri)
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    try:
        if alias is not None:
            version = client.get_model_version_by_alias(name, alias)
        else:
            version = client.get_model_version(name, str(number))
        source = client.get_model_version_download_uri(name, version.version)
    except MlflowException as err:
        if err.error_code in _UNKNOWN:
            raise NotFound(
                f"{model_uri}: not found in the MLflow registry at {uri}: {err}"
            ) from err
        raise StoreError(f"{model_uri}: cannot read the MLflow registry at {uri}: {err}") from err
    Path(dst).mkdir(parents=True, exist_ok=True)
    where = f"{source.rstrip('/')}/artifacts/{BUNDLE_ARTIFACT}"
    try:
        local = mlflow.artifacts.download_artifacts(
            artifact_uri=where, dst_path=str(dst), tracking_uri=uri, registry_uri=uri
        )
    except (MlflowException, OSError) as err:
        if getattr(err, "error_code", None) in _UNKNOWN or isinstance(err, FileNotFoundError):
            raise NotFound(f"{model_uri} (v{version.version}): no bundle at {where}") from err
        raise StoreError(
            f"{model_uri} (v{version.version}): cannot download {where}: {err}"
        ) from err
    bundle = Path(local)
    if not (bundle / "metadata.json").is_file():
        raise NotFound(
            f"{model_uri} (v{version.version}): the registered model holds no churn bundle"
        )
    logger.info("downloaded %s (v%s) to %s", model_uri, version.version, bundle)
    return bundle
