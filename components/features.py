"""The one feature transform: fitted by the pipeline, saved in the bundle, reused by serving.

It is written once, over numpy column arrays, so the same code serves a
7,000-row training frame and a single-row request without pandas overhead:
`transform(df)` and `transform_columns({...})` are the same computation.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin

from churn_components.contract import FEATURE_COLUMNS, Categorical
from churn_core.errors import InvalidInput

SERVICE_COLUMNS = (
    "PhoneService",
    "MultipleLines",
    "OnlineSecurity",
    "OnlineBackup",
    "DeviceProtection",
    "TechSupport",
    "StreamingTV",
    "StreamingMovies",
)
DEFAULT_TENURE_BANDS = (12, 24, 48, 60)


@dataclass(frozen=True)
class OutputFeature:
    """One column of the transformed matrix and the customer attributes it comes from."""

    name: str
    sources: tuple[str, ...]


@dataclass
class _Fitted:
    mean: np.ndarray
    scale: np.ndarray
    features: list[OutputFeature] = field(default_factory=list)


class ChurnFeatures(TransformerMixin, BaseEstimator):  # type: ignore[misc]
    """Cleaning, one-hot encoding, engineered features and standard scaling.

    Engineered features: tenure bands, number of subscribed services, charges
    per month of tenure, log total charges and the gap between the monthly
    charge and the average charge so far. Blank `TotalCharges` (first-month
    customers) becomes 0.0: nothing has been billed yet.

    Args:
        tenure_bands: upper edges (months) of the tenure bands; one more band
            collects everything above the last edge.
        scale: standardise every output column with the training mean and std
            (for logistic regression and the MLP; harmless for trees).
    """

    def __init__(self, tenure_bands: tuple[int, ...] = DEFAULT_TENURE_BANDS, scale: bool = True):
        self.tenure_bands = tenure_bands
        self.scale = scale

    # -- the computation -------------------------------------------------
    def _raw(self, cols: Mapping[str, Any]) -> tuple[np.ndarray, list[OutputFeature]]:
        blocks: list[np.ndarray] = []
        features: list[OutputFeature] = []
        n = None
        for col in FEATURE_COLUMNS:
            if col.name not in cols:
                raise InvalidInput(f"missing column {col.name!r}")
            values = np.asarray(cols[col.name])
            if values.ndim != 1:
                values = values.reshape(-1)
            if n is None:
                n = len(values)
            elif len(values) != n:
                raise InvalidInput(
                    f"column {col.name!r} has {len(values)} values, expected {n} like the others"
                )
            if isinstance(col, Categorical):
                cats = np.asarray(col.categories, dtype=object)
                onehot = values.astype(object)[:, None] == cats[None, :]
                known = onehot.any(axis=1)
                if not known.all():
                    bad = values[~known][0]
                    raise InvalidInput(
                        f"column {col.name!r}: unknown category {bad!r}; "
                        f"allowed: {', '.join(col.categories)}"
                    )
                blocks.append(onehot.astype(np.float64))
                features += [OutputFeature(f"{col.name}={c}", (col.name,)) for c in col.categories]
        n = n or 0
        tenure = _numeric(cols, "tenure")
        monthly = _numeric(cols, "MonthlyCharges")
        total = _numeric(cols, "TotalCharges")
        total = np.where(np.isnan(total) & (tenure == 0), 0.0, total)
        senior = _numeric(cols, "SeniorCitizen")
        per_month = total / np.maximum(tenure, 1.0)
        services = np.zeros(n)
        for name in SERVICE_COLUMNS:
            services += np.asarray(cols[name], dtype=object) == "Yes"
        services += np.asarray(cols["InternetService"], dtype=object) != "No"
        edges = np.asarray(self.tenure_bands, dtype=np.float64)
        band = np.searchsorted(edges, tenure, side="left")
        bands = band[:, None] == np.arange(len(edges) + 1)[None, :]
        numeric = np.column_stack(
            [senior, tenure, monthly, total, per_month, np.log1p(total), monthly - per_month, services]
        )
        blocks.append(numeric)
        blocks.append(bands.astype(np.float64))
        features += [
            OutputFeature("SeniorCitizen", ("SeniorCitizen",)),
            OutputFeature("tenure", ("tenure",)),
            OutputFeature("MonthlyCharges", ("MonthlyCharges",)),
            OutputFeature("TotalCharges", ("TotalCharges",)),
            OutputFeature("charges_per_tenure_month", ("TotalCharges", "tenure")),
            OutputFeature("log_total_charges", ("TotalCharges",)),
            OutputFeature("monthly_minus_average", ("MonthlyCharges", "TotalCharges", "tenure")),
            OutputFeature("n_services", (*SERVICE_COLUMNS, "InternetService")),
        ]
        lows = (0, *self.tenure_bands)
        highs = (*(str(e) for e in self.tenure_bands), "inf")
        features += [
            OutputFeature(f"tenure_band_{lo}_{hi}", ("tenure",)) for lo, hi in zip(lows, highs)
        ]
        return np.concatenate(blocks, axis=1) if n else np.zeros((0, len(features))), features

    # -- sklearn API -----------------------------------------------------
    def fit(self, X: pd.DataFrame, y: Any = None) -> ChurnFeatures:  # noqa: N803
        """Learn the scaling from the training frame."""
        raw, features = self._raw(_columns_of(X))
        if not np.isfinite(raw).all():
            raise InvalidInput("training data has non-finite values after cleaning")
        mean = raw.mean(axis=0) if self.scale else np.zeros(raw.shape[1])
        std = raw.std(axis=0) if self.scale else np.ones(raw.shape[1])
        self.fitted_ = _Fitted(mean=mean, scale=np.where(std > 0, std, 1.0), features=features)
        return self

    def transform_columns(self, cols: Mapping[str, Any]) -> np.ndarray:
        """Transform column arrays (name -> 1-d values); the fast path for serving."""
        raw, _ = self._raw(cols)
        return (raw - self.fitted_.mean) / self.fitted_.scale

    def transform(self, X: pd.DataFrame) -> np.ndarray:  # noqa: N803
        """Transform a data frame holding (at least) the contract's feature columns."""
        return self.transform_columns(_columns_of(X))

    @property
    def output_features(self) -> list[OutputFeature]:
        """Every output column with the customer attributes it is computed from."""
        return list(self.fitted_.features)

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        """Names of the output columns (sklearn convention)."""
        return np.asarray([f.name for f in self.fitted_.features], dtype=object)


def _columns_of(frame: pd.DataFrame) -> dict[str, np.ndarray]:
    return {c.name: frame[c.name].to_numpy() for c in FEATURE_COLUMNS if c.name in frame}


def _numeric(cols: Mapping[str, Any], name: str) -> np.ndarray:
    values = np.asarray(cols[name]).reshape(-1)
    try:
        return values.astype(np.float64)
    except (TypeError, ValueError) as err:
        raise InvalidInput(f"column {name!r}: non-numeric value in {values.tolist()[:3]}") from err
