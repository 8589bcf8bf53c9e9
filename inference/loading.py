"""Fetching and verifying a model bundle for serving.

A bundle is named by a local path (or ``file://``), an Azure Blob URI
(``az://`` or ``https://<account>.blob.core.windows.net/...``) or a registry
alias (``models:/<name>@<alias>``). Remote bundles are copied into a temporary
folder first; then `churn_model.bundle.load_model` checks every file's sha256
before it reads any, checks the bundle format, and rebuilds the model from
its stored numbers (nothing is unpickled).
"""

from __future__ import annotations

import logging
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

import numpy as np

from churn_core.config import ExplainerConfig
from churn_core.errors import BundleUnusable, NotFound
from churn_inference.schema import InputSpec, input_specs
from churn_model.bundle import MODEL, load_model
from churn_model.explain import Explainer, load_background
from churn_model.trees import accelerate

logger = logging.getLogger(__name__)


@dataclass
class ServedBundle:
    """Everything a server needs from one verified bundle."""

    model: Any
    metadata: dict[str, Any]
    source: str
    threshold: float
    version: str
    kind: str
    sha256: str
    specs: tuple[InputSpec, ...]
    explainer: Explainer


def fetch_bundle(
    uri: str, dst: Path, connection_string: str = "", *, tracking_uri: str = ""
) -> Path:
    """A local folder holding the bundle named by `uri` (copied into `dst` if remote).

    Args:
        uri: a bundle folder, ``file://``, a blob URI or ``models:/<name>@<alias>``.
        dst: where a remote bundle is copied to.
        connection_string: Azure Storage connection string for a blob URI (empty:
            DefaultAzureCredential).
        tracking_uri: the MLflow registry that resolves a ``models:/`` URI.
    """
    if uri.startswith("models:/"):
        from churn_model.registry import download_bundle

        return download_bundle(uri, dst, tracking_uri=tracking_uri)
    from churn_core.store import is_blob_uri, open_store

    if is_blob_uri(uri):
        store = open_store(uri, connection_string)
        return store.get_dir("", dst / "bundle")
    parsed = urlparse(uri)
    path = Path(unquote(parsed.path)) if parsed.scheme == "file" else Path(uri)
    if not path.is_dir():
        raise NotFound(f"model bundle {uri} does not exist (no such folder)")
    return path


def _probe() -> dict[str, np.ndarray]:
    """One valid customer from the contract (first category, smallest value)."""
    from churn_model.contract import FEATURE_COLUMNS, Categorical

    cols: dict[str, np.ndarray] = {}
    for col in FEATURE_COLUMNS:
        if isinstance(col, Categorical):
            cols[col.name] = np.asarray([col.categories[0]], dtype=object)
        else:
            cols[col.name] = np.asarray([max(col.minimum, 1.0)], dtype=np.float64)
    return cols


def _self_test(model: Any, uri: str) -> None:
    """Predict one customer at load time: a bundle this code cannot run is refused now."""
    try:
        proba = np.asarray(model.predict_proba_columns(_probe()), dtype=np.float64)
    except Exception as err:  # noqa: BLE001 - any failure means the bundle cannot be served
        raise BundleUnusable(
            f"{uri}: the bundle does not run with this code version "
            f"({type(err).__name__}: {err}); re-train or serve it with the code that wrote it"
        ) from err
    if proba.shape != (1,) or not (0.0 <= float(proba[0]) <= 1.0):
        raise BundleUnusable(f"{uri}: self-test prediction {proba!r} is not one probability")


def open_bundle(
    uri: str,
    explainer_config: ExplainerConfig | None = None,
    connection_string: str = "",
    *,
    tracking_uri: str = "",
) -> ServedBundle:
    """Fetch (`fetch_bundle`), verify (sha256 of every file) and load a bundle.

    Raises:
        churn_core.errors.BundleIntegrityError: a file does not match its recorded sha256.
        NotFound: nothing at `uri`.
        BundleUnusable: a bundle of another format, or one this code cannot rebuild or run.
        churn_core.errors.ConfigError: the explainer section names what the contract lacks.
    """
    config = explainer_config or ExplainerConfig()
    with tempfile.TemporaryDirectory(prefix="churn-bundle-") as tmp:
        local = fetch_bundle(uri, Path(tmp), connection_string, tracking_uri=tracking_uri)
        model, meta = load_model(local)
        _self_test(model, uri)
        background = load_background(local, meta)
    check = model.features.transform_columns(_probe())
    if background is not None and background.shape[1] == check.shape[1]:
        check = np.vstack([check, background])
    accelerate(model, check)
    threshold = float(meta.get("threshold", getattr(model, "threshold", 0.5)))
    if abs(threshold - float(getattr(model, "threshold", threshold))) > 1e-12:
        logger.warning(
            "bundle threshold %.6f differs from the model object's %.6f; serving the bundle's",
            threshold,
            model.threshold,
        )
    explainer = Explainer(model, threshold, background=background, config=config)
    files = meta.get("files") or {}
    return ServedBundle(
        model=model,
        metadata=meta,
        source=uri,
        threshold=threshold,
        version=str(meta.get("version", "0")),
        kind=str(meta.get("kind", model.kind)),
        sha256=str(files.get(MODEL, ""))[:12],
        specs=input_specs(meta),
        explainer=explainer,
    )
