"""The one feature transform: fitted by the pipeline, saved in the bundle, reused by serving.

It is written once, over numpy column arrays, so the same code serves a
7,000-row training frame and a single-row request without pandas overhead:
`transform(df)` and `transform_columns({...})` are the same computation.

It is stored as data (`to_state`): its parameters, the fitted mean and scale
arrays and the output feature names it produced; `from_state` rebuilds it and
refuses a state whose recorded features differ from what this code's layout
gives for the same parameters.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.exceptions import NotFittedError

from churn_core.errors import InvalidInput
from churn_model.contract import FEATURE_COLUMNS, Categorical
from churn_model.serialize import State

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


class ChurnFeatures(TransformerMixin, BaseEstimator):
    """Cleaning, one-hot encoding, engineered features and standard scaling.

    Engineered features: tenure bands, number of subscribed services, charges
    per month of tenure, log total charges, the gap between the monthly
    charge and the average charge so far, and log tenure per contract type
    (appended last, so earlier column positions stay put). Blank `TotalCharges` (first-month
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
        """The unscaled matrix: one-hot categories, numbers, engineered features, bands.

        Written for single rows as much as for whole frames: the output is
        allocated once and filled in place; categories are looked up in a
        dict and scattered in one numpy call (no object-array broadcasting).
        """
        layout = _layout(tuple(self.tenure_bands))
        arrays: dict[str, np.ndarray] = {}
        n: int | None = None
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
            arrays[col.name] = values
        n = n or 0
        width = len(layout.features)
        out = np.zeros((n, width))
        # All one-hot positions at once: per column a python list of category
        # indices (dict lookups beat numpy calls for small batches), then one
        # scatter into the flat output.
        positions = []
        for name, _, index, categories in layout.categorical:
            values = arrays[name].tolist()
            try:
                idx = [index.get(v, -1) for v in values]
            except TypeError as err:  # an unhashable value
                raise InvalidInput(f"column {name!r}: unknown category in {values!r}") from err
            if -1 in idx:
                bad = arrays[name][idx.index(-1)]
                raise InvalidInput(
                    f"column {name!r}: unknown category {bad!r}; allowed: {', '.join(categories)}"
                )
            positions.append(idx)
        if n:
            flat = np.asarray(positions, dtype=np.intp)
            flat += layout.offsets[:, None]
            flat += np.arange(0, n * width, width, dtype=np.intp)[None, :]
            out.reshape(-1)[flat.reshape(-1)] = 1.0
        tenure = _numeric(arrays, "tenure")
        monthly = _numeric(arrays, "MonthlyCharges")
        total = _numeric(arrays, "TotalCharges")
        total = np.where(np.isnan(total) & (tenure == 0), 0.0, total)
        per_month = total / np.maximum(tenure, 1.0)
        # Number of services: the one-hot "=Yes" columns, plus any internet service.
        services = out[:, layout.service_yes].sum(axis=1)
        services += 1.0 - out[:, layout.internet_no]
        j = layout.numeric
        out[:, j] = _numeric(arrays, "SeniorCitizen")
        out[:, j + 1] = tenure
        out[:, j + 2] = monthly
        out[:, j + 3] = total
        out[:, j + 4] = per_month
        out[:, j + 5] = np.log1p(total)
        out[:, j + 6] = monthly - per_month
        out[:, j + 7] = services
        band = np.searchsorted(layout.edges, tenure, side="left")
        out[np.arange(n), layout.bands + band] = 1.0
        # log tenure per contract type: loyalty builds differently on each contract
        contract = layout.contract
        out[:, layout.interactions : layout.interactions + len(contract)] = (
            np.log1p(tenure)[:, None] * out[:, contract]
        )
        return out, list(layout.features)

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
        fitted = getattr(self, "fitted_", None)
        if fitted is None:
            raise NotFittedError("ChurnFeatures is not fitted yet: call fit() first")
        raw, _ = self._raw(cols)
        return (raw - fitted.mean) / fitted.scale

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

    # -- stored form -----------------------------------------------------
    def to_state(self) -> State:
        """Parameters, output features (for the record and the check) and the fitted arrays."""
        fitted = getattr(self, "fitted_", None)
        if fitted is None:
            raise NotFittedError("ChurnFeatures is not fitted yet: nothing to store")
        return State(
            fields={
                "params": {
                    "tenure_bands": [int(b) for b in self.tenure_bands],
                    "scale": self.scale,
                },
                "output_features": [
                    {"name": f.name, "sources": list(f.sources)} for f in fitted.features
                ],
            },
            arrays={
                "mean": np.asarray(fitted.mean, dtype=np.float64),
                "scale": np.asarray(fitted.scale, dtype=np.float64),
            },
        )

    @classmethod
    def from_state(cls, state: State) -> ChurnFeatures:
        """The fitted transform again; its output features come from this code's layout.

        Raises:
            ValueError: the recorded output features or the arrays do not match the
                layout this code derives from the stored parameters.
        """
        params = state.fields["params"]
        transform = cls(
            tenure_bands=tuple(int(b) for b in params["tenure_bands"]), scale=bool(params["scale"])
        )
        features = list(_layout(transform.tenure_bands).features)
        recorded = [
            OutputFeature(str(f["name"]), tuple(str(s) for s in f["sources"]))
            for f in state.fields["output_features"]
        ]
        if recorded != features:
            first = next(
                (i for i, (a, b) in enumerate(zip(recorded, features, strict=False)) if a != b),
                min(len(recorded), len(features)),
            )
            raise ValueError(
                f"stored feature transform has {len(recorded)} output features, this code's layout "
                f"{len(features)}; first difference at column {first}: stored "
                f"{_name_at(recorded, first)}, code {_name_at(features, first)}"
            )
        mean, scale = state.arrays["mean"], state.arrays["scale"]
        for name, array in (("mean", mean), ("scale", scale)):
            if array.shape != (len(features),) or array.dtype != np.float64:
                raise ValueError(
                    f"stored feature {name} array is {array.dtype}{list(array.shape)}, "
                    f"expected float64[{len(features)}]"
                )
        transform.fitted_ = _Fitted(mean=mean, scale=scale, features=features)
        return transform


def _name_at(features: list[OutputFeature], i: int) -> str:
    return repr(features[i].name) if i < len(features) else "(none)"


def _columns_of(frame: pd.DataFrame) -> dict[str, np.ndarray]:
    return {c.name: frame[c.name].to_numpy() for c in FEATURE_COLUMNS if c.name in frame}


def _numeric(cols: Mapping[str, Any], name: str) -> np.ndarray:
    values = np.asarray(cols[name]).reshape(-1)
    try:
        return values.astype(np.float64)
    except (TypeError, ValueError) as err:
        raise InvalidInput(f"column {name!r}: non-numeric value in {values.tolist()[:3]}") from err


@dataclass(frozen=True)
class _Layout:
    """Where each block sits in the output matrix (depends only on the tenure bands)."""

    features: tuple[OutputFeature, ...]
    categorical: tuple[tuple[str, int, dict[str, int], tuple[str, ...]], ...]
    offsets: np.ndarray
    service_yes: np.ndarray
    internet_no: int
    numeric: int
    bands: int
    edges: np.ndarray
    interactions: int
    contract: np.ndarray


@lru_cache(maxsize=8)
def _layout(tenure_bands: tuple[int, ...]) -> _Layout:
    features: list[OutputFeature] = []
    categorical = []
    positions: dict[str, int] = {}
    for col in FEATURE_COLUMNS:
        if isinstance(col, Categorical):
            offset = len(features)
            categorical.append(
                (col.name, offset, {c: i for i, c in enumerate(col.categories)}, col.categories)
            )
            for c in col.categories:
                positions[f"{col.name}={c}"] = len(features)
                features.append(OutputFeature(f"{col.name}={c}", (col.name,)))
    numeric = len(features)
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
    bands = len(features)
    lows = (0, *tenure_bands)
    highs = (*(str(e) for e in tenure_bands), "inf")
    features += [
        OutputFeature(f"tenure_band_{lo}_{hi}", ("tenure",))
        for lo, hi in zip(lows, highs, strict=True)
    ]
    interactions = len(features)
    contract_categories = next(c.categories for c in FEATURE_COLUMNS if c.name == "Contract")
    features += [
        OutputFeature(f"log_tenure_x_Contract={c}", ("tenure", "Contract"))
        for c in contract_categories
    ]
    edges = np.asarray(tenure_bands, dtype=np.float64)
    edges.setflags(write=False)
    return _Layout(
        features=tuple(features),
        categorical=tuple(categorical),
        offsets=np.asarray([c[1] for c in categorical], dtype=np.intp),
        service_yes=np.asarray([positions[f"{name}=Yes"] for name in SERVICE_COLUMNS]),
        internet_no=positions["InternetService=No"],
        numeric=numeric,
        bands=bands,
        edges=edges,
        interactions=interactions,
        contract=np.asarray([positions[f"Contract={c}"] for c in contract_categories]),
    )
