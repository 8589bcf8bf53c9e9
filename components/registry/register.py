"""MLflow: the run (parameters, metrics, plots, decision), the registry and its aliases.

The registry keeps one model name (`registry.model_name`). Every registered
run becomes a new version with the alias ``challenger``; the alias
``champion`` moves to it only when the gate allowed it. Aliases, never the
deprecated stages API. Each version is an MLflow pyfunc model whose artifact
``bundle`` is the model bundle itself, so `models:/churn@champion` resolves to
exactly the bundle that was evaluated; `churn_model.registry.download_bundle` fetches it.

Tracking URI: `Settings.mlflow_tracking_uri` (``sqlite:///mlflow.db`` by
default, a remote ``http(s)://`` server from the environment). For a local
SQLite store the experiment's artifacts go under ``<artifact_root>/mlruns``.
"""

from __future__ import annotations

import json
import logging
import tempfile
from collections.abc import Mapping
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
    """An `MlflowClient` for tracking and registry at `tracking_uri` (also set as default)."""
    import mlflow
    from mlflow.tracking import MlflowClient

    uri = absolute_tracking_uri(tracking_uri)
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
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


def start_run(client: Any, experiment: str, artifact_root: str | None, run_name: str) -> Any:
    """Start (and return) an active MLflow run in `experiment`."""
    import mlflow

    experiment_id = ensure_experiment(client, experiment, artifact_root)
    return mlflow.start_run(experiment_id=experiment_id, run_name=run_name)


def log_run(
    *,
    params: Mapping[str, Any],
    metrics: Mapping[str, float],
    tags: Mapping[str, str],
    plots: Mapping[str, bytes],
    documents: Mapping[str, Any],
) -> None:
    """Log params, metrics, tags, PNG plots (under plots/) and JSON documents to the active run."""
    import mlflow

    mlflow.log_params({k: str(v)[:6000] for k, v in params.items()})
    mlflow.log_metrics(dict(metrics))
    mlflow.set_tags(dict(tags))
    with tempfile.TemporaryDirectory(prefix="churn-plots-") as tmp:
        for name, data in plots.items():
            (Path(tmp) / name).write_bytes(data)
        if plots:
            mlflow.log_artifacts(tmp, artifact_path="plots")
    for name, doc in documents.items():
        mlflow.log_dict(json.loads(json.dumps(doc, default=str)), name)


def register_bundle(
    client: Any,
    bundle_dir: str | Path,
    name: str,
    expected_version: int,
    promote: bool,
    version_tags: Mapping[str, str],
) -> Registration:
    """Log the bundle as a pyfunc model in the active run, register it, set the aliases.

    `expected_version` is the version written into the bundle's metadata; a
    different registry answer (a concurrent registration) fails loudly
    rather than leaving a bundle that names the wrong version.
    """
    import warnings
    from importlib.util import find_spec

    import mlflow

    # its path only: importing it would run its set_model() here
    spec = find_spec("churn_model.mlflow_model")
    assert spec is not None and spec.origin is not None
    code = Path(spec.origin)
    with warnings.catch_warnings():
        # we give the signature explicitly; an input example would only re-run predict
        warnings.filterwarnings("ignore", message=".*input example.*", category=UserWarning)
        warnings.filterwarnings("ignore", message=".*type hints.*", category=UserWarning)
        info = mlflow.pyfunc.log_model(
            name=PYFUNC_NAME,
            python_model=str(code),
            artifacts={BUNDLE_ARTIFACT: str(bundle_dir)},
            pip_requirements=pip_requirements(),
            signature=_signature(),
            registered_model_name=name,
        )
    version = str(info.registered_model_version)
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
    active = mlflow.active_run()
    run_id = active.info.run_id if active is not None else str(info.run_id)
    logger.info("registry: %s v%s -> aliases %s", name, version, ", ".join(aliases))
    return Registration(
        name=name,
        version=version,
        run_id=run_id,
        model_uri=f"models:/{name}/{version}",
        aliases=tuple(aliases),
    )
