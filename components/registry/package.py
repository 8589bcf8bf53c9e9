"""The model bundle's contents: what exactly was evaluated, packed for every server.

A bundle (see `churn_model.bundle`) written here holds:

=============================  ==================================================
``model.json``                 the `ChurnModel` as data (bundle format 2): kind,
                               served threshold, and for the fitted
                               `ChurnFeatures`, the estimator and the calibrator
                               their JSON fields and files (with sha256)
``model/features/*.npy``       the transform's fitted mean and scale
``model/estimator/...``        logistic ``coef.npy``; XGBoost ``booster.ubj``
                               (its own model file); MLP one ``.npy`` per
                               ``state_dict`` tensor
``metadata.json``              ``format`` (2), name, version, kind, metrics (CV
                               and held-out), thresholds, input schema, output
                               features, training-data sha256, code version,
                               synthetic flag, created time, sha256 of every file
``reference.csv``              drift reference: a seeded sample of training rows
                               (the raw customer attributes)
``drift/``                     the drift detector fitted on that reference
                               (`churn_model.drift`: ``drift.json`` + ``.npy``)
``monitor/estimator.json``     the label-free performance estimator
                               (`churn_model.estimate`): recalibration fitted on
                               the held-out rows, the reference's region
``explainer/background.npy``   a seeded sample of transformed training rows
``explainer/explainer.json``   output feature -> customer attributes it comes from
``report.md``                  the model report (also shown in the KFP UI)
=============================  ==================================================

Plain functions; `churn_components.registry.register` adds MLflow around them.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from churn_core.config import ChurnConfig
from churn_core.io import sha256_bytes
from churn_model.bundle import ESTIMATOR, FORMAT, MODEL, model_files, write_bundle
from churn_model.contract import FEATURE_COLUMNS, FEATURE_NAMES, Categorical
from churn_model.drift import FORMAT_VERSION as DRIFT_FORMAT
from churn_model.drift import detector_files, fit_detector
from churn_model.estimate import FORMAT_VERSION as ESTIMATOR_FORMAT
from churn_model.estimate import estimator_bytes, fit_estimator
from churn_model.model import ChurnModel
from churn_model.serialize import npy_bytes

logger = logging.getLogger(__name__)

REFERENCE = "reference.csv"
DRIFT = "drift"  # the drift detector fitted on the reference (`churn_model.drift`)
BACKGROUND = "explainer/background.npy"
EXPLAINER = "explainer/explainer.json"
REPORT = "report.md"


def input_schema() -> dict[str, Any]:
    """The served inputs, one per customer attribute, from the data contract."""
    columns: list[dict[str, Any]] = []
    for col in FEATURE_COLUMNS:
        if isinstance(col, Categorical):
            columns.append(
                {"name": col.name, "datatype": "BYTES", "categories": list(col.categories)}
            )
        else:
            columns.append(
                {
                    "name": col.name,
                    "datatype": "INT64" if col.integer else "FP64",
                    "minimum": col.minimum,
                    "maximum": col.maximum,
                }
            )
    return {"columns": columns}


def code_version() -> str:
    """`git describe` of the source tree when it is a checkout, else the package version."""
    root = Path(__file__).resolve().parent.parent
    try:
        out = subprocess.run(
            ["git", "describe", "--always", "--dirty", "--tags"],
            cwd=root,
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        )
        if out.stdout.strip():
            return f"git:{out.stdout.strip()}"
    except (OSError, subprocess.SubprocessError):
        pass
    from importlib.metadata import PackageNotFoundError, version

    try:
        return f"churn-platform=={version('churn-platform')}"
    except PackageNotFoundError:
        return "unknown"


def permutation_importance(
    model: ChurnModel, frame: pd.DataFrame, y: np.ndarray, seed: int
) -> dict[str, float]:
    """Drop in held-out ROC-AUC when one customer attribute is shuffled (model-agnostic)."""
    from sklearn.metrics import roc_auc_score

    # a blank TotalCharges is 0.0 only at tenure 0 (the transform's rule); make that explicit
    # so shuffling tenure cannot strand a blank beside a non-zero tenure
    frame = frame.copy()
    frame["TotalCharges"] = frame["TotalCharges"].astype(float).fillna(0.0)
    base = roc_auc_score(y, model.predict_proba(frame))
    rng = np.random.default_rng(seed)
    out: dict[str, float] = {}
    for name in FEATURE_NAMES:
        shuffled = frame.copy()
        shuffled[name] = frame[name].to_numpy()[rng.permutation(len(frame))]
        out[name] = float(base - roc_auc_score(y, model.predict_proba(shuffled)))
    return out


def bundle_contents(
    model: ChurnModel,
    train: pd.DataFrame,
    config: ChurnConfig,
    *,
    summary: Mapping[str, Any],
    training_data: Mapping[str, Any],
    synthetic: bool,
    version: str | None = None,
    report: str = "",
    extra: Mapping[str, Any] | None = None,
    held_out: tuple[np.ndarray, np.ndarray] | None = None,
) -> tuple[dict[str, bytes], dict[str, Any]]:
    """The bundle's files and metadata (without the per-file sha256, added when written).

    Args:
        model: the served `ChurnModel`.
        train: the training split (raw attributes) for the reference and background samples.
        config: the configuration the run used.
        summary: the selected candidate's `Evaluation.summary()`.
        training_data: sha256, source URI and rows of the ingested data.
        synthetic: whether the data was the synthetic stand-in.
        version: the registry version; None: a content hash of model.json (which
            records the sha256 of every file of the model).
        report: the Markdown model report.
        extra: more metadata (the gate decision, the run id, ...).
        held_out: the served model's probabilities on the held-out rows and their
            labels: the performance estimator is calibrated on them (never on
            training rows); None: the bundle has no estimator.
    """
    seed = config.split.seed
    stored_model = model_files(model)
    rng = np.random.default_rng(seed)
    n_ref = min(config.bundle.reference_rows, len(train))
    ref_rows = np.sort(rng.choice(len(train), size=n_ref, replace=False))
    reference = train.iloc[ref_rows][list(FEATURE_NAMES)].reset_index(drop=True)
    detector = fit_detector(reference, config.drift)
    n_bg = min(config.explainer.background_rows, len(train))
    bg_rows = np.sort(rng.choice(len(train), size=n_bg, replace=False))
    background = model.features.transform(train.iloc[bg_rows])
    output_features = [
        {"name": f.name, "sources": list(f.sources)} for f in model.features.output_features
    ]
    explainer = {
        "kind": model.kind,
        "method": {
            "logistic": "exact linear attributions (coef x (x - background mean))",
            "xgboost": "exact TreeSHAP (booster.predict(pred_contribs=True))",
            "mlp": "integrated gradients from the background mean",
        }.get(model.kind, ""),
        "background": BACKGROUND,
        "background_rows": int(n_bg),
        "output_features": output_features,
    }
    files = {
        **stored_model,
        REFERENCE: reference.to_csv(index=False).encode(),
        BACKGROUND: npy_bytes(np.ascontiguousarray(background, dtype=np.float64)),
        EXPLAINER: (json.dumps(explainer, indent=2) + "\n").encode(),
    }
    files.update({f"{DRIFT}/{name}": data for name, data in detector_files(detector).items()})
    monitor: dict[str, Any] = {}
    if held_out is not None:
        probabilities, labels = held_out
        estimator = fit_estimator(
            probabilities, labels, reference, model.threshold, config.monitor.estimate
        )
        files[ESTIMATOR] = estimator_bytes(estimator)
        monitor = {
            "monitor": {
                "estimator": ESTIMATOR,
                "format": ESTIMATOR_FORMAT,
                "calibration_rows": int(len(labels)),
            }
        }
    if report:
        files[REPORT] = report.encode()
    thresholds = dict(summary["thresholds"])
    metadata: dict[str, Any] = {
        "format": FORMAT,
        "name": config.registry.model_name,
        "version": version or f"sha-{sha256_bytes(stored_model[MODEL])[:12]}",
        "kind": model.kind,
        "threshold": float(model.threshold),
        "thresholds": {**thresholds, "served_rule": config.selection.threshold},
        "calibration": summary["calibration"],
        "metrics": {
            "cv": summary["cv"],
            "cv_std": summary["cv_std"],
            "test": summary["test"],
            "test_at": summary.get("test_at", {}),
        },
        "params": summary.get("params", {}),
        "input_schema": input_schema(),
        "output_features": output_features,
        "training_data": dict(training_data),
        "code_version": code_version(),
        "synthetic": bool(synthetic),
        "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "reference": {"file": REFERENCE, "rows": int(n_ref)},
        "drift": {"dir": DRIFT, "backend": config.drift.backend, "format": DRIFT_FORMAT},
        "explainer": {"background": BACKGROUND, "file": EXPLAINER},
        **monitor,
        **dict(extra or {}),
    }
    return files, metadata


def write_model_bundle(
    directory: str | Path, files: dict[str, bytes], metadata: dict[str, Any]
) -> Path:
    """Write the bundle atomically (`churn_model.bundle.write_bundle`)."""
    path = write_bundle(directory, files, metadata)
    logger.info(
        "bundle %s v%s (%s) written to %s",
        metadata["name"],
        metadata["version"],
        metadata["kind"],
        path,
    )
    return path


def publish_bundle(
    local_dir: str | Path,
    store_uri: str,
    name: str,
    version: str,
    connection_string: str | None = None,
) -> str:
    """Copy a bundle to the artifact store under ``bundles/<name>/<version>/``; its URI.

    A version already published with a different model (a registry reset against an
    old store, two registries sharing one store) is refused, never overwritten.
    """
    from churn_core.errors import StoreError
    from churn_core.store import open_store
    from churn_model.bundle import METADATA, read_metadata

    store = open_store(store_uri, connection_string or None)
    prefix = f"bundles/{name}/{version}"
    if store.exists(f"{prefix}/{METADATA}"):
        stored = json.loads(store.get_bytes(f"{prefix}/{METADATA}")).get("files", {})
        ours = read_metadata(local_dir)["files"]
        if stored.get(MODEL) != ours[MODEL]:
            raise StoreError(
                f"{store.uri(prefix)} already holds another model (version {version!r} of "
                f"{name!r}, {MODEL} sha256 {stored.get(MODEL)}); refusing to overwrite it"
            )
    store.put_dir(local_dir, prefix)
    return store.uri(prefix)
