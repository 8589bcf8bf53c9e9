"""The four data stages over files: what the KFP components and `churn data ...` both call.

Two levels:

* ``*_files`` functions take explicit file paths (a KFP component passes its
  artifacts' ``.path``) and return the stage's JSON-ready metadata;
* ``run_*`` functions take directories (the CLI and `dvc.yaml`): they read
  the upstream ``metadata.json``, call the ``*_files`` function with the fixed
  file names below, and write their own ``metadata.json``.

Every stage's metadata carries ``synthetic`` (true when the upstream said so or
the rows carry synthetic ids) and the sha256 of each file it wrote. Tables
between stages are Parquet (types and NaN survive exactly); the raw table
stays the CSV bytes that were read.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from churn_components.common import read_dataset, write_dataset
from churn_core.io import sha256_bytes, sha256_file, write_bytes_atomic
from churn_model.contract import ID_COLUMN
from churn_model.synthetic import announce, is_synthetic

logger = logging.getLogger(__name__)

# File names inside each stage's output directory (CLI / dvc.yaml).
RAW = "raw.csv"
VALIDATED = "validated.parquet"
REPORT = "report.json"
REJECTED = "rejected.csv"
TRAIN = "train.parquet"
TEST = "test.parquet"
TRANSFORM = "transform.zip"
DESCRIPTION = "features.json"
METADATA = "metadata.json"


# -- small file helpers ---------------------------------------------------------------


def write_json(path: str | Path, payload: Mapping[str, Any]) -> str:
    """Pretty, key-sorted JSON (stable bytes for DVC); return the sha256."""
    text = json.dumps(payload, indent=2, sort_keys=True, default=str) + "\n"
    return write_bytes_atomic(path, text.encode())


def read_json(path: str | Path) -> dict[str, Any]:
    """A JSON object from a file; {} when the file does not exist."""
    path = Path(path)
    if not path.is_file():
        return {}
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def _synthetic(upstream: Mapping[str, Any] | None, ids: Any, stage: str) -> bool:
    flag = bool((upstream or {}).get("synthetic")) or is_synthetic(ids)
    if flag:
        announce(f"{stage} stage")
    return flag


# -- stages over files (KFP components call these) ------------------------------------


def ingest_files(
    source_uri: str, raw_path: str | Path, connection_string: str = ""
) -> dict[str, Any]:
    """Read `source_uri` and write its bytes unchanged to `raw_path`; return the metadata.

    `connection_string` is for a blob source (empty: DefaultAzureCredential).
    """
    from churn_components.data.ingest import ingest

    ingested = ingest(source_uri, connection_string=connection_string)
    write_bytes_atomic(raw_path, ingested.data)
    return {"stage": "ingest", **ingested.metadata}


def validate_files(
    raw_path: str | Path,
    validated_path: str | Path,
    report_path: str | Path,
    rejected_path: str | Path,
    max_rejected_share: float,
    upstream: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Validate the raw CSV; write accepted rows, the report and the rejected-cells table.

    The report and the rejected table are written even when the stage fails, so
    the reason can be read; the accepted rows are written only when it passes.

    Raises:
        DataContractError: not a CSV, header breaks the contract, or the rejected
            share is above `max_rejected_share`.
    """
    from churn_components.data.validate import validate_csv

    source = str((upstream or {}).get("source_uri") or raw_path)
    data = Path(raw_path).read_bytes()
    result = validate_csv(data, source)
    synthetic = _synthetic(upstream, result.accepted[ID_COLUMN], "validate") or is_synthetic(
        result.rejected[ID_COLUMN]
    )
    report = {**result.report, "synthetic": synthetic, "max_rejected_share": max_rejected_share}
    report["passed"] = report["rejected_share"] <= max_rejected_share
    report_sha = write_json(report_path, report)
    rejected_sha = write_bytes_atomic(rejected_path, result.rejected.to_csv(index=False).encode())
    result.raise_if_over_limit(max_rejected_share)
    validated_sha = write_dataset(result.accepted, validated_path)
    counts = {k: report[k] for k in ("input_rows", "accepted_rows", "rejected_rows")}
    return {
        "stage": "validate",
        "source_uri": source,
        "rows": report["accepted_rows"],
        **counts,
        "rejected_share": report["rejected_share"],
        "blank_total_charges_tenure_0": report["known_quirks"]["blank_total_charges_tenure_0"],
        "churn_share": report["churn_share"],
        "synthetic": synthetic,
        "input_sha256": (upstream or {}).get("sha256") or sha256_bytes(data),
        "sha256": validated_sha,
        "report_sha256": report_sha,
        "rejected_sha256": rejected_sha,
    }


def preprocess_files(
    validated_path: str | Path,
    train_path: str | Path,
    test_path: str | Path,
    test_size: float,
    seed: int,
    upstream: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Stratified split of the validated rows into train and test tables."""
    from churn_components.data.preprocess import split_frame

    frame = read_dataset(validated_path)
    split = split_frame(frame, test_size=test_size, seed=seed)
    synthetic = _synthetic(upstream, frame[ID_COLUMN], "preprocess")
    return {
        "stage": "preprocess",
        **split.metadata,
        "synthetic": synthetic,
        "input_sha256": (upstream or {}).get("sha256"),
        "train_sha256": write_dataset(split.train, train_path),
        "test_sha256": write_dataset(split.test, test_path),
    }


def features_files(
    train_path: str | Path,
    transform_path: str | Path,
    description_path: str | Path,
    tenure_bands: tuple[int, ...] | list[int],
    upstream: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Fit the feature transform on the train table; write it (as data) and its description."""
    from churn_components.data.fit_features import fit_features

    train = read_dataset(train_path)
    fitted = fit_features(train, tuple(int(b) for b in tenure_bands))
    synthetic = _synthetic(upstream, train[ID_COLUMN], "features")
    description = {**fitted.description, "synthetic": synthetic}
    if upstream and upstream.get("train_sha256"):
        description["train_sha256"] = upstream["train_sha256"]
    write_bytes_atomic(transform_path, fitted.stored)
    description_sha = write_json(description_path, description)
    return {
        "stage": "features",
        "format": description["format"],
        "fitted_rows": description["fitted_rows"],
        "n_features": description["n_features"],
        "tenure_bands": description["params"]["tenure_bands"],
        "synthetic": synthetic,
        "train_sha256": description.get("train_sha256"),
        "sha256": description["sha256"],
        "description_sha256": description_sha,
    }


# -- stages over directories (CLI, dvc.yaml) ------------------------------------------


def _finish(out_dir: Path, meta: dict[str, Any], started: float) -> dict[str, Any]:
    write_json(out_dir / METADATA, meta)
    logger.info(
        "%s stage done in %.2f s -> %s", meta["stage"], time.perf_counter() - started, out_dir
    )
    return meta


def run_ingest(source_uri: str, out_dir: str | Path, connection_string: str = "") -> dict[str, Any]:
    """`out_dir/raw.csv` + `metadata.json` from `source_uri`."""
    started = time.perf_counter()
    out = Path(out_dir)
    return _finish(out, ingest_files(source_uri, out / RAW, connection_string), started)


def run_validate(
    in_dir: str | Path, out_dir: str | Path, max_rejected_share: float
) -> dict[str, Any]:
    """`out_dir/{validated.parquet, report.json, rejected.csv, metadata.json}` from ingest."""
    started = time.perf_counter()
    src, out = Path(in_dir), Path(out_dir)
    meta = validate_files(
        src / RAW,
        out / VALIDATED,
        out / REPORT,
        out / REJECTED,
        max_rejected_share,
        upstream=read_json(src / METADATA),
    )
    return _finish(out, meta, started)


def run_preprocess(
    in_dir: str | Path, out_dir: str | Path, test_size: float, seed: int
) -> dict[str, Any]:
    """`out_dir/{train,test}.parquet` + `metadata.json` from validate."""
    started = time.perf_counter()
    src, out = Path(in_dir), Path(out_dir)
    meta = preprocess_files(
        src / VALIDATED,
        out / TRAIN,
        out / TEST,
        test_size,
        seed,
        upstream=read_json(src / METADATA),
    )
    return _finish(out, meta, started)


def run_features(
    in_dir: str | Path, out_dir: str | Path, tenure_bands: tuple[int, ...] | list[int]
) -> dict[str, Any]:
    """`out_dir/{transform.zip, features.json, metadata.json}` from preprocess."""
    started = time.perf_counter()
    src, out = Path(in_dir), Path(out_dir)
    meta = features_files(
        src / TRAIN,
        out / TRANSFORM,
        out / DESCRIPTION,
        tenure_bands,
        upstream=read_json(src / METADATA),
    )
    return _finish(out, meta, started)


# -- copying to the artifact store ------------------------------------------------------


def publish(
    store_uri: str,
    stage: str,
    files: Mapping[str, str | Path],
    metadata: Mapping[str, Any],
    connection_string: str = "",
) -> str:
    """Copy a stage's files to the artifact store under ``data/<stage>/<digest[:16]>/``.

    `connection_string` is for a blob store (empty: DefaultAzureCredential).

    The prefix is content-addressed (a sha256 over the files' names and
    digests), so republishing the same outputs is idempotent and a published
    snapshot never changes. The ``metadata.json`` (with each file's store URI
    and sha256) goes last, so its presence means the snapshot is complete.

    Returns:
        The store URI of the snapshot's prefix.
    """
    from churn_core.store import open_store

    if not files:
        raise ValueError("publish: no files")
    manifest = "".join(f"{name}:{sha256_file(path)}\n" for name, path in sorted(files.items()))
    prefix = f"data/{stage}/{sha256_bytes(manifest.encode())[:16]}"
    store = open_store(store_uri, connection_string)
    uris: dict[str, dict[str, str]] = {}
    for name, path in files.items():
        digest_of_file = store.put_file(path, f"{prefix}/{name}")
        uris[name] = {"uri": store.uri(f"{prefix}/{name}"), "sha256": digest_of_file}
    store.put_bytes(
        f"{prefix}/{METADATA}",
        (
            json.dumps({**metadata, "files": uris}, indent=2, sort_keys=True, default=str) + "\n"
        ).encode(),
    )
    where = store.uri(prefix)
    logger.info("%s: published %d file(s) to %s", stage, len(files), where)
    return where
