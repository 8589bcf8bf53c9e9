"""The features stage: fit the one feature transform on the training split.

The fitted `ChurnFeatures` is stored as data, like inside a model bundle: one
small zip (`churn_model.serialize.write_archive`) holding ``transform.json``
(the format, the parameters, the output features and each array's file with
its sha256) and the fitted ``mean.npy`` and ``scale.npy``; the archive's own
sha256 is recorded. The training stage rebuilds the transform from it and puts
it in the model bundle, so serving computes exactly the numbers training saw.
A small JSON describes the output columns and which customer attributes each
comes from.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any

import pandas as pd

from churn_core.io import sha256_bytes
from churn_model.bundle import FORMAT
from churn_model.contract import ID_COLUMN
from churn_model.features import ChurnFeatures
from churn_model.serialize import json_bytes, pack, read_archive, unpack, write_archive
from churn_model.synthetic import is_synthetic

logger = logging.getLogger(__name__)

MANIFEST = "transform.json"


@dataclass(frozen=True)
class FittedFeatures:
    """The fitted transform, its stored bytes (the archive), and the description (JSON-ready)."""

    transform: ChurnFeatures
    stored: bytes
    description: dict[str, Any]


def store_features(transform: ChurnFeatures) -> bytes:
    """A fitted transform as one archive of JSON and `.npy` files (same bytes for the same fit)."""
    entry, files = pack(transform.to_state(), "")
    return write_archive({MANIFEST: json_bytes({"format": FORMAT, **entry}), **files})


def fit_features(
    train: pd.DataFrame, tenure_bands: tuple[int, ...], scale: bool = True
) -> FittedFeatures:
    """Fit `ChurnFeatures` on the training split; store it and describe its outputs."""
    transform = ChurnFeatures(tenure_bands=tuple(tenure_bands), scale=scale).fit(train)
    stored = store_features(transform)
    description = {
        "format": FORMAT,
        "params": {"tenure_bands": list(transform.tenure_bands), "scale": transform.scale},
        "fitted_rows": len(train),
        "n_features": len(transform.output_features),
        "features": [
            {"name": f.name, "sources": list(f.sources)} for f in transform.output_features
        ],
        "sha256": sha256_bytes(stored),
        "synthetic": is_synthetic(train[ID_COLUMN]) if ID_COLUMN in train else False,
    }
    logger.info(
        "features: fitted on %d rows -> %d columns, sha256 %s",
        len(train),
        description["n_features"],
        description["sha256"],
    )
    return FittedFeatures(transform=transform, stored=stored, description=description)


def load_features(data: bytes, expected_sha256: str | None = None) -> ChurnFeatures:
    """Rebuild a stored transform, after checking its sha256 when one is given.

    Raises:
        BundleIntegrityError: the sha256 differs, or the bytes are not a stored transform.
        BundleUnusable: a transform stored in another format.
    """
    from churn_core.errors import BundleIntegrityError, BundleUnusable

    if expected_sha256 is not None:
        actual = sha256_bytes(data)
        if actual != expected_sha256:
            raise BundleIntegrityError(
                f"feature transform sha256 {actual} != recorded {expected_sha256}; refusing to load"
            )
    try:
        files = read_archive(data)
        manifest = json.loads(files[MANIFEST])
    except (KeyError, ValueError) as err:
        raise BundleIntegrityError(
            f"not a stored feature transform (a zip with {MANIFEST}): {err}"
        ) from err
    found = manifest.get("format") if isinstance(manifest, dict) else None
    if found != FORMAT:
        raise BundleUnusable(
            f"feature transform stored in format {found!r} cannot be read by this code, "
            f"which reads format {FORMAT}: re-run the features stage"
        )
    try:
        return ChurnFeatures.from_state(unpack(manifest, files.__getitem__))
    except (KeyError, TypeError, ValueError) as err:
        raise BundleUnusable(
            f"the stored feature transform cannot be rebuilt by this code "
            f"({type(err).__name__}: {err})"
        ) from err
