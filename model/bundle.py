"""The model bundle: one directory that moves from the pipeline to every server.

Layout (bundle format 2)::

    metadata.json          "format": 2, name, version, metrics, threshold, input
                           schema, data hash, code version, synthetic flag, and
                           the sha256 of every file
    model.json             the model's format, kind and threshold, and per part
                           (features, estimator, calibrator) its JSON fields and
                           the files holding its arrays, each with its sha256
    model/features/*.npy   the fitted transform's mean and scale
    model/estimator/...    logistic: coef.npy; xgboost: booster.ubj (XGBoost's own
                           model file); mlp: one .npy per state_dict tensor
    monitor/estimator.json the label-free performance estimator (`churn_model.estimate`),
                           when the writer had held-out rows to calibrate it on
    ...                    anything else the writer adds (drift reference, explainer data)

The stored model is data, not class paths: `load_model` rebuilds every object
from its numbers with this code's classes (`to_state` / `from_state`), so
renaming a module never breaks a stored bundle, and nothing in a bundle is
unpickled. Bundles written before format 2 (no ``format`` key: format 1, a
pickled ``model.pkl``) are refused with an error naming both formats.

`load_model` checks every recorded sha256 before it reads any file, then the
format, then rebuilds the model.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from churn_core.config import EstimateConfig
from churn_core.errors import BundleIntegrityError, BundleUnusable, NotFound
from churn_core.io import sha256_bytes, sha256_file
from churn_model.calibration import IsotonicCalibrator, SigmoidCalibrator
from churn_model.estimate import PerformanceEstimator, read_estimator
from churn_model.features import ChurnFeatures
from churn_model.model import ChurnModel
from churn_model.scorers import LogisticScorer, MLPScorer, XGBoostScorer
from churn_model.serialize import Reader, json_bytes, pack, unpack

logger = logging.getLogger(__name__)

FORMAT = 2
METADATA = "metadata.json"
MODEL = "model.json"
MODEL_DIR = "model"
PICKLED_MODEL = "model.pkl"
ESTIMATOR = "monitor/estimator.json"  # the label-free performance estimator
# what each bundle format keeps its model in (format 1 has no "format" key)
FORMATS = {1: f"pickled {PICKLED_MODEL}", 2: f"{MODEL} with .npy arrays"}
_MODEL_FILE = {1: PICKLED_MODEL, 2: MODEL}

# the stored names of the estimator kinds and calibration methods (data, not class paths)
ESTIMATORS: dict[str, Any] = {
    "logistic": LogisticScorer,
    "xgboost": XGBoostScorer,
    "mlp": MLPScorer,
}
CALIBRATORS: dict[str, Any] = {"sigmoid": SigmoidCalibrator, "isotonic": IsotonicCalibrator}


def pack_calibrator(calibrator: Any, folder: str) -> tuple[dict[str, Any] | None, dict[str, bytes]]:
    """A fitted calibrator (or None) as its entry ``{"method", ...pack entry}`` and its files.

    Raises:
        TypeError: not one of `CALIBRATORS`.
    """
    if calibrator is None:
        return None, {}
    method = getattr(calibrator, "method", None)
    if method not in CALIBRATORS or type(calibrator) is not CALIBRATORS[method]:
        raise TypeError(f"cannot store a calibrator {type(calibrator).__name__}")
    entry, files = pack(calibrator.to_state(), folder)
    return {"method": method, **entry}, files


def unpack_calibrator(entry: Mapping[str, Any] | None, read: Reader) -> Any:
    """The calibrator of a `pack_calibrator` entry (None for None).

    Raises:
        ValueError: an unknown method, or a file not matching its sha256.
    """
    if entry is None:
        return None
    method = entry["method"]
    if method not in CALIBRATORS:
        raise ValueError(f"unknown calibration {method!r}; known: {', '.join(CALIBRATORS)}")
    return CALIBRATORS[method].from_state(unpack(entry, read))


# -- writing ---------------------------------------------------------------------------
def model_files(model: ChurnModel) -> dict[str, bytes]:
    """The model as bundle files: ``model.json`` and the arrays and files it names.

    Raises:
        TypeError: a part this format has no stored form for.
    """
    estimator = model.estimator
    kind = getattr(estimator, "kind", None)
    if kind not in ESTIMATORS or type(estimator) is not ESTIMATORS[kind]:
        raise TypeError(
            f"cannot store an estimator {type(estimator).__name__} (kind {kind!r}); "
            f"bundle format {FORMAT} stores {', '.join(ESTIMATORS)}"
        )
    features, files = pack(model.features.to_state(), f"{MODEL_DIR}/features")
    stored_estimator, more = pack(estimator.to_state(), f"{MODEL_DIR}/estimator")
    files.update(more)
    calibrator, more = pack_calibrator(model.calibrator, f"{MODEL_DIR}/calibrator")
    files.update(more)
    document = {
        "format": FORMAT,
        "kind": kind,
        "threshold": float(model.threshold),
        "features": features,
        "estimator": {"kind": kind, **stored_estimator},
        "calibrator": calibrator,
    }
    return {MODEL: json_bytes(document), **files}


def write_bundle(directory: str | Path, files: dict[str, bytes], metadata: dict[str, Any]) -> Path:
    """Write `files` and a metadata.json recording their sha256, atomically.

    The bundle is assembled in a sibling temporary directory and renamed into
    place, so a reader never sees half a bundle. The metadata is written as
    given: a model bundle's writer puts ``"format": FORMAT`` in it.
    """
    target = Path(directory)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    digests: dict[str, str] = {}
    for name, data in files.items():
        path = staging / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        digests[name] = sha256_bytes(data)
    meta = {**metadata, "files": digests}
    (staging / METADATA).write_text(json.dumps(meta, indent=2, sort_keys=True, default=str))
    if target.exists():
        raise FileExistsError(f"bundle {target} exists already; bundles are immutable")
    os.replace(staging, target)
    return target


# -- reading ---------------------------------------------------------------------------
def read_metadata(directory: str | Path) -> dict[str, Any]:
    """The bundle's metadata.json.

    Raises:
        NotFound: there is none.
        BundleIntegrityError: it is not a JSON object (a corrupted or truncated file).
    """
    path = Path(directory) / METADATA
    if not path.is_file():
        raise NotFound(f"{directory}: not a model bundle (no {METADATA})")
    try:
        data = json.loads(path.read_bytes())
    except (ValueError, UnicodeDecodeError) as err:
        raise BundleIntegrityError(f"{path}: {METADATA} is not valid JSON ({err})") from err
    if not isinstance(data, dict):
        raise BundleIntegrityError(f"{path}: {METADATA} is not a JSON object")
    return data


def bundle_format(metadata: Mapping[str, Any]) -> Any:
    """The bundle format recorded in the metadata (1 when there is no ``format`` key)."""
    return metadata.get("format", 1)


def verify_bundle(directory: str | Path) -> dict[str, Any]:
    """Check every file against its recorded sha256; return the metadata."""
    root = Path(directory)
    meta = read_metadata(root)
    files = meta.get("files")
    model_file = _MODEL_FILE.get(bundle_format(meta), MODEL)
    if not isinstance(files, dict) or model_file not in files:
        raise BundleIntegrityError(f"{root}: metadata records no sha256 for {model_file}")
    for name, expected in files.items():
        path = root / name
        if not path.is_file():
            raise BundleIntegrityError(f"{root}: file {name} is missing")
        actual = sha256_file(path)
        if actual != expected:
            raise BundleIntegrityError(
                f"{root}: {name} has sha256 {actual[:12]}..., metadata says {expected[:12]}...; "
                "refusing to load it"
            )
    return meta


def check_format(directory: str | Path, metadata: Mapping[str, Any]) -> None:
    """Refuse a bundle of another format than this code reads.

    Raises:
        BundleUnusable: the bundle's format is not `FORMAT`; the message names both.
    """
    found = bundle_format(metadata)
    if type(found) is not int:
        raise BundleUnusable(f"{directory}: bundle format {found!r} is not a format number")
    if found == FORMAT:
        return
    what = f" ({FORMATS[found]})" if found in FORMATS else ""
    if found < FORMAT:
        advice = "retrain, or serve it with an older release"
    else:
        advice = "serve it with a newer release"
    raise BundleUnusable(
        f"{directory}: bundle format {found}{what} cannot be read by this code, which reads "
        f"format {FORMAT} ({FORMATS[FORMAT]}): {advice}"
    )


def read_model(directory: str | Path, metadata: Mapping[str, Any]) -> ChurnModel:
    """Rebuild the `ChurnModel` of a verified format-2 bundle from its stored state.

    Only files whose sha256 the metadata records (and `verify_bundle` checked)
    are read.

    Raises:
        BundleIntegrityError: model.json names a file the metadata does not record.
        BundleUnusable: model.json or a part cannot be rebuilt by this code.
    """
    root = Path(directory)
    recorded = metadata.get("files") or {}

    def read(name: str) -> bytes:
        if name not in recorded:
            raise BundleIntegrityError(
                f"{root}: {MODEL} names {name}, whose sha256 the metadata does not record"
            )
        return (root / name).read_bytes()

    try:
        document = json.loads(read(MODEL))
        return _rebuild(document, read)
    except (KeyError, TypeError, ValueError, RuntimeError) as err:
        raise BundleUnusable(
            f"{root}: {MODEL} cannot be rebuilt by this code ({type(err).__name__}: {err})"
        ) from err


def _rebuild(document: Mapping[str, Any], read: Reader) -> ChurnModel:
    if document["format"] != FORMAT:
        raise ValueError(f"{MODEL} says format {document['format']!r}, the metadata {FORMAT}")
    kind = document["estimator"]["kind"]
    if kind not in ESTIMATORS:
        raise ValueError(f"unknown estimator kind {kind!r}; known: {', '.join(ESTIMATORS)}")
    features = ChurnFeatures.from_state(unpack(document["features"], read))
    estimator = ESTIMATORS[kind].from_state(unpack(document["estimator"], read))
    width = len(features.output_features)
    if estimator.n_features != width:
        raise ValueError(
            f"the {kind} estimator expects {estimator.n_features} columns, "
            f"the feature transform gives {width}"
        )
    calibrator = unpack_calibrator(document.get("calibrator"), read)
    return ChurnModel(
        features=features,
        estimator=estimator,
        calibrator=calibrator,
        threshold=float(document["threshold"]),
    )


def load_model(directory: str | Path) -> tuple[ChurnModel, dict[str, Any]]:
    """Verify every file's sha256, check the format, rebuild the model: (ChurnModel, metadata).

    Raises:
        NotFound: no metadata.json.
        BundleIntegrityError: a file is missing or does not match its sha256.
        BundleUnusable: a bundle of another format, or one this code cannot rebuild.
    """
    meta = verify_bundle(directory)
    check_format(directory, meta)
    model = read_model(directory, meta)
    logger.info("loaded bundle %s (%s v%s)", directory, meta.get("name"), meta.get("version"))
    return model, meta


def load_bundle_estimator(
    directory: str | Path,
    config: EstimateConfig | None = None,
    metadata: Mapping[str, Any] | None = None,
) -> PerformanceEstimator:
    """The bundle's label-free performance estimator (``monitor/estimator.json``).

    Every file's sha256 is checked first (`verify_bundle`) unless `metadata` from
    a verified load (`load_model`) is given. `config` replaces the stored
    settings (the drift service's `monitor.estimate`).

    Raises:
        NotFound: no metadata.json, or a bundle written without an estimator.
        BundleIntegrityError: a file is missing or does not match its sha256.
        BundleUnusable: an estimator of another format, or one that cannot be rebuilt.
    """
    root = Path(directory)
    meta = verify_bundle(root) if metadata is None else metadata
    if ESTIMATOR not in (meta.get("files") or {}):
        raise NotFound(
            f"{root}: the bundle has no performance estimator ({ESTIMATOR}); it was written "
            "without held-out rows or by an older release"
        )
    return read_estimator((root / ESTIMATOR).read_bytes(), f"{root}/{ESTIMATOR}", config)
