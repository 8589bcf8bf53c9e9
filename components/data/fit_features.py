"""The features stage: fit the one feature transform on the training split.

The fitted `ChurnFeatures` is pickled as an artifact (with its sha256); the
training stage loads it and puts the very same object in the model bundle, so
serving computes exactly the numbers training saw. A small JSON describes the
output columns and which customer attributes each comes from.
"""

from __future__ import annotations

import hashlib
import logging
import pickle
from dataclasses import dataclass
from typing import Any

import pandas as pd

from churn_model.contract import ID_COLUMN
from churn_model.features import ChurnFeatures
from churn_model.synthetic import is_synthetic

logger = logging.getLogger(__name__)

PICKLE_PROTOCOL = 5


@dataclass(frozen=True)
class FittedFeatures:
    """The fitted transform, its pickle, and the description (JSON-ready)."""

    transform: ChurnFeatures
    pickled: bytes
    description: dict[str, Any]


def fit_features(
    train: pd.DataFrame, tenure_bands: tuple[int, ...], scale: bool = True
) -> FittedFeatures:
    """Fit `ChurnFeatures` on the training split; pickle it and describe its outputs."""
    transform = ChurnFeatures(tenure_bands=tuple(tenure_bands), scale=scale).fit(train)
    pickled = pickle.dumps(transform, protocol=PICKLE_PROTOCOL)
    description = {
        "class": f"{type(transform).__module__}.{type(transform).__qualname__}",
        "params": {"tenure_bands": list(transform.tenure_bands), "scale": transform.scale},
        "fitted_rows": len(train),
        "n_features": len(transform.output_features),
        "features": [
            {"name": f.name, "sources": list(f.sources)} for f in transform.output_features
        ],
        "sha256": hashlib.sha256(pickled).hexdigest(),
        "pickle_protocol": PICKLE_PROTOCOL,
        "synthetic": is_synthetic(train[ID_COLUMN]) if ID_COLUMN in train else False,
    }
    logger.info(
        "features: fitted on %d rows -> %d columns, sha256 %s",
        len(train),
        description["n_features"],
        description["sha256"],
    )
    return FittedFeatures(transform=transform, pickled=pickled, description=description)


def load_features(data: bytes, expected_sha256: str | None = None) -> ChurnFeatures:
    """Unpickle a fitted transform, after checking its sha256 when one is given."""
    from churn_core.errors import BundleIntegrityError

    if expected_sha256 is not None:
        actual = hashlib.sha256(data).hexdigest()
        if actual != expected_sha256:
            raise BundleIntegrityError(
                f"feature transform sha256 {actual} != recorded {expected_sha256}; refusing to load"
            )
    transform = pickle.loads(data)  # noqa: S301 - checked above when a digest is recorded
    if not isinstance(transform, ChurnFeatures):
        raise BundleIntegrityError(f"expected a ChurnFeatures pickle, got {type(transform)!r}")
    return transform
