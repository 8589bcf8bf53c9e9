"""The model bundle: one directory that moves from the pipeline to every server.

Layout::

    metadata.json        name, version, metrics, threshold, input schema, data hash,
                         code version, synthetic flag, and the sha256 of every file
    model.pkl            ChurnModel (fitted transform + estimator + calibrator)
    ...                  anything else the writer adds (drift reference, explainer data)

`load_model` checks every recorded sha256 before it unpickles anything.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import pickle
import tempfile
from pathlib import Path
from typing import Any

from churn_core.errors import BundleIntegrityError, NotFound

logger = logging.getLogger(__name__)

METADATA = "metadata.json"
MODEL = "model.pkl"


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file, streamed."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def write_bundle(directory: str | Path, files: dict[str, bytes], metadata: dict[str, Any]) -> Path:
    """Write `files` and a metadata.json recording their sha256, atomically.

    The bundle is assembled in a sibling temporary directory and renamed into
    place, so a reader never sees half a bundle.
    """
    target = Path(directory)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    digests: dict[str, str] = {}
    for name, data in files.items():
        path = staging / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        digests[name] = hashlib.sha256(data).hexdigest()
    meta = {**metadata, "files": digests}
    (staging / METADATA).write_text(json.dumps(meta, indent=2, sort_keys=True, default=str))
    if target.exists():
        raise FileExistsError(f"bundle {target} exists already; bundles are immutable")
    os.replace(staging, target)
    return target


def read_metadata(directory: str | Path) -> dict[str, Any]:
    """The bundle's metadata.json."""
    path = Path(directory) / METADATA
    if not path.is_file():
        raise NotFound(f"{directory}: not a model bundle (no {METADATA})")
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def verify_bundle(directory: str | Path) -> dict[str, Any]:
    """Check every file against its recorded sha256; return the metadata."""
    root = Path(directory)
    meta = read_metadata(root)
    files = meta.get("files")
    if not isinstance(files, dict) or MODEL not in files:
        raise BundleIntegrityError(f"{root}: metadata records no sha256 for {MODEL}")
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


def load_model(directory: str | Path) -> tuple[Any, dict[str, Any]]:
    """Verify, then unpickle the model. Returns (ChurnModel, metadata)."""
    meta = verify_bundle(directory)
    with open(Path(directory) / MODEL, "rb") as fh:
        model = pickle.load(fh)  # noqa: S301 - verified against metadata sha256 above
    logger.info("loaded bundle %s (%s v%s)", directory, meta.get("name"), meta.get("version"))
    return model, meta
