"""MLflow: the run (parameters, metrics, plots, decision), the registry and its aliases.

The registry keeps one model name (`registry.model_name`). Every registered
run becomes a new version with the alias ``challenger``; the alias
``champion`` moves to it only when the gate allowed it. Aliases, never the
deprecated stages API. Each version is an MLflow pyfunc model whose artifact
``bundle`` is the model bundle itself, so `models:/churn@champion` resolves to
exactly the bundle that was evaluated; `churn_model.registry.download_bundle` fetches it.

Tracking URI: passed in by the entry point (`Settings.mlflow_tracking_uri`,
``sqlite:///mlflow.db`` by default, or a remote ``http(s)://`` server). For a
local SQLite store the experiment's artifacts go under ``<artifact_root>/mlruns``.

Everything goes through an `MlflowClient` (`client_for`) and explicit run ids:
no process-wide tracking or registry URI is set and no fluent active run is
started, so registering leaves the caller's MLflow state as it was.
"""

from __future__ import annotations

import json
import logging
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from churn_core.errors import StoreError
from churn_model.registry import (
    BUNDLE_ARTIFACT,
    CHALLENGER,
    CHAMPION,
    PYFUNC_NAME,
    absolute_tracking_uri,
)

logger = logging.getLogger(__name__)

_RUNTIME_DISTRIBUTIONS = (
    "mlflow",
    "numpy",
    "pandas",
    "scipy",
    "scikit-learn",
    "xgboost-cpu",
    "torch",
    "pydantic",
    "pydantic-settings",
    "PyYAML",
)


def client_for(tracking_uri: str) -> Any:
    """An `MlflowClient` for tracking and registry at `tracking_uri`.

    The process-wide MLflow URIs stay as the caller left them: every call here goes
    through this client.
    """
    from mlflow.tracking import MlflowClient

    uri = absolute_tracking_uri(tracking_uri)
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def next_version(client: Any, name: str) -> int:
    """The version number the registry will give the next registration of `name`."""
    versions = client.search_model_versions(f"name = '{name}'")
    return 1 + max((int(v.version) for v in versions), default=0)


def pip_requirements() -> list[str]:
    """Pinned runtime requirements of the pyfunc model (explicit; MLflow infers odd ones)."""
    from importlib.metadata import PackageNotFoundError, version

    out = []
    for dist in _RUNTIME_DISTRIBUTIONS:
        try:
            out.append(f"{dist}=={version(dist)}")
        except PackageNotFoundError:
            continue
    return out


def _signature() -> Any:
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, Schema

    from churn_model.contract import FEATURE_COLUMNS, Categorical

    def spec(col: Any) -> Any:
        if isinstance(col, Categorical):
            return ColSpec("string", col.name)
        return ColSpec("long" if col.integer else "double", col.name)

    inputs = Schema([spec(c) for c in FEATURE_COLUMNS])
    outputs = Schema([ColSpec("double", "churn_probability"), ColSpec("boolean", "churn")])
    return ModelSignature(inputs=inputs, outputs=outputs)


def _flat_metrics(prefix: str, metrics: Mapping[str, float]) -> dict[str, float]:
    return {
        f"{prefix}{k}": float(v)
        for k, v in metrics.items()
        if isinstance(v, int | float) and v == v  # drop NaN
    }


def ensure_experiment(client: Any, name: str, artifact_root: str | None) -> str:
    """The experiment id; created with its artifacts under `artifact_root` for local stores."""
    exp = client.get_experiment_by_name(name)
    if exp is not None:
        return str(exp.experiment_id)
    location = None
    if artifact_root and client.tracking_uri.startswith("sqlite:"):
        location = (Path(artifact_root).resolve() / "mlruns").as_uri()
    return str(client.create_experiment(name, artifact_location=location))


@dataclass(frozen=True)
class Registration:
    """Where the registered model went."""

    name: str
    version: str
    run_id: str
    model_uri: str
    aliases: tuple[str, ...]


@contextmanager
def start_run(
    client: Any, experiment: str, artifact_root: str | None, run_name: str
) -> Iterator[Any]:
    """A new run (the `Run` entity) in `experiment`, ended FINISHED, or FAILED if the body raises.

    The run is created with `client`; it never becomes MLflow's active run.
    """
    experiment_id = ensure_experiment(client, experiment, artifact_root)
    run = client.create_run(experiment_id, run_name=run_name)
    run_id = run.info.run_id
    try:
        yield run
    except BaseException:
        _terminate(client, run_id, "FAILED")
        raise
    client.set_terminated(run_id, "FINISHED")


def _terminate(client: Any, run_id: str, status: str) -> None:
    """Mark a run ended; a failure to do so is logged, never raised over the original error."""
    try:
        client.set_terminated(run_id, status)
    except Exception as err:  # noqa: BLE001 - the body's exception is the one that matters
        logger.warning("registry: could not mark run %s %s: %s", run_id, status, err)


def log_run(
    client: Any,
    run_id: str,
    *,
    params: Mapping[str, Any],
    metrics: Mapping[str, float],
    tags: Mapping[str, str],
    plots: Mapping[str, bytes],
    documents: Mapping[str, Any],
    texts: Mapping[str, str],
) -> None:
    """Log params, metrics and tags (one batch), PNG plots (under plots/), JSON and text files."""
    import time

    from mlflow.entities import Metric, Param, RunTag

    now = int(time.time() * 1000)
    client.log_batch(
        run_id,
        metrics=[Metric(k, float(v), now, 0) for k, v in metrics.items()],
        params=[Param(k, str(v)[:6000]) for k, v in params.items()],
        tags=[RunTag(k, str(v)) for k, v in tags.items()],
    )
    if plots:
        with tempfile.TemporaryDirectory(prefix="churn-plots-") as tmp:
            for name, data in plots.items():
                (Path(tmp) / name).write_bytes(data)
            client.log_artifacts(run_id, tmp, artifact_path="plots")
    for name, doc in documents.items():
        client.log_dict(run_id, json.loads(json.dumps(doc, default=str)), name)
    for name, text in texts.items():
        client.log_text(run_id, text, name)


def save_pyfunc(bundle_dir: str | Path, path: str | Path) -> Path:
    """Write the pyfunc model wrapping the bundle (artifact ``bundle``) into the folder `path`.

    A local save: no tracking server, no run. The model is "models from code"
    (`churn_model.mlflow_model`, by path), so nothing is pickled but the bundle itself.
    """
    import shutil
    import warnings
    from importlib.util import find_spec

    import mlflow

    # its path only: importing it would run its set_model() here
    spec = find_spec("churn_model.mlflow_model")
    assert spec is not None and spec.origin is not None
    with tempfile.TemporaryDirectory(prefix="churn-pyfunc-") as staging:
        bundle = Path(bundle_dir)
        if bundle.name != BUNDLE_ARTIFACT:  # MLflow stores an artifact folder by its own name
            bundle = Path(shutil.copytree(bundle, Path(staging) / BUNDLE_ARTIFACT))
        with warnings.catch_warnings():
            # we give the signature explicitly; an input example would only re-run predict
            warnings.filterwarnings("ignore", message=".*input example.*", category=UserWarning)
            warnings.filterwarnings("ignore", message=".*type hints.*", category=UserWarning)
            mlflow.pyfunc.save_model(
                path=str(path),
                python_model=spec.origin,
                artifacts={BUNDLE_ARTIFACT: str(bundle)},
                pip_requirements=pip_requirements(),
                signature=_signature(),
            )
    return Path(path)


def register_bundle(
    client: Any,
    run_id: str,
    bundle_dir: str | Path,
    name: str,
    expected_version: int,
    promote: bool,
    version_tags: Mapping[str, str],
) -> Registration:
    """Log the bundle as a pyfunc model in run `run_id`, register it, set the aliases.

    The version's source is the run's ``model`` artifact folder, so
    ``<source>/artifacts/bundle`` is the bundle (`churn_model.registry.download_bundle`).
    `expected_version` is the version written into the bundle's metadata; a
    different registry answer (a concurrent registration) fails loudly
    rather than leaving a bundle that names the wrong version.
    """
    with tempfile.TemporaryDirectory(prefix="churn-model-") as tmp:
        local = save_pyfunc(bundle_dir, Path(tmp) / PYFUNC_NAME)
        client.log_artifacts(run_id, str(local), artifact_path=PYFUNC_NAME)
    source = f"{client.get_run(run_id).info.artifact_uri.rstrip('/')}/{PYFUNC_NAME}"
    ensure_registered_model(client, name)
    version = str(client.create_model_version(name, source=source, run_id=run_id).version)
    if version != str(expected_version):
        raise StoreError(
            f"registry gave {name} version {version}, the bundle says {expected_version}: "
            "another run registered at the same time; re-run this one"
        )
    aliases = [CHALLENGER] + ([CHAMPION] if promote else [])
    for alias in aliases:
        client.set_registered_model_alias(name, alias, version)
    for key, value in version_tags.items():
        client.set_model_version_tag(name, version, key, str(value))
    logger.info("registry: %s v%s -> aliases %s", name, version, ", ".join(aliases))
    return Registration(
        name=name,
        version=version,
        run_id=run_id,
        model_uri=f"models:/{name}/{version}",
        aliases=tuple(aliases),
    )


def ensure_registered_model(client: Any, name: str) -> None:
    """Create the registered model `name` unless it exists (a concurrent creation is fine)."""
    from mlflow.exceptions import MlflowException

    try:
        client.create_registered_model(name)
    except MlflowException as err:
        if err.error_code != "RESOURCE_ALREADY_EXISTS":
            raise
