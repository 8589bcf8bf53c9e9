"""The MLflow pyfunc face of a model bundle: `models:/churn@champion` loads and predicts.

Imported only by code that logs or loads the MLflow model (it imports mlflow).
The wrapper holds no model of its own: `load_context` verifies and loads the
bundle shipped as the MLflow model's artifact ``bundle`` with
`churn_model.bundle.load_model`, so MLflow serves exactly the bundle's numbers.

`predict` checks its input with the data contract's `check_request_columns`,
the check the server runs, before scoring: a negative tenure or a NaN
`TotalCharges` (with tenure > 0) is an `InvalidInput` naming the column and
the value, never a NaN probability.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from mlflow.pyfunc import PythonModel

from churn_core.errors import InvalidInput
from churn_model.checks import check_request_columns
from churn_model.contract import FEATURE_NAMES, ID_COLUMN, NUMERIC_NAMES
from churn_model.registry import BUNDLE_ARTIFACT

_NUMERIC = frozenset(NUMERIC_NAMES)


class ChurnBundleModel(PythonModel):
    """Churn probability and decision for a frame of customers."""

    def load_context(self, context: Any) -> None:
        """Verify every file's sha256, then rebuild the bundle's `ChurnModel` from its data."""
        from churn_model.bundle import load_model

        self.model, self.metadata = load_model(context.artifacts[BUNDLE_ARTIFACT])

    def predict(
        self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None
    ) -> pd.DataFrame:
        """Columns `churn_probability` and `churn` (at the bundle's threshold).

        Raises:
            InvalidInput: the input breaks the data contract (naming the column
                and the value), or is not a table of customers.
        """
        cols = checked_columns(model_input)
        p = self.model.predict_proba_columns(cols)
        return pd.DataFrame({"churn_probability": p, "churn": p >= self.model.threshold})


def checked_columns(model_input: Any) -> dict[str, np.ndarray]:
    """The contract's columns of `model_input`, checked; numbers as float64.

    Takes what MLflow passes after enforcing the signature (strings as object
    or pandas ``string`` columns, integers as int64, doubles as float64) and
    what a caller passes straight to the python model (any pandas dtype, a
    mapping of column -> values, a list of records). A ``customerID`` column
    is accepted and ignored.

    Raises:
        InvalidInput: at the first problem, naming the column and the value.
    """
    frame = _frame(model_input)
    names = [str(c) for c in frame.columns]
    if len(set(names)) != len(names):
        dup = next(n for n in names if names.count(n) > 1)
        raise InvalidInput(f"column {dup!r} appears more than once")
    cols = {
        name: _values(name, frame[column])
        for name, column in zip(names, frame.columns, strict=True)
    }
    check_request_columns(cols, ignore=(ID_COLUMN,))
    return {
        name: cols[name].astype(np.float64) if name in _NUMERIC else cols[name]
        for name in FEATURE_NAMES
    }


def _frame(model_input: Any) -> pd.DataFrame:
    if isinstance(model_input, pd.DataFrame):
        return model_input
    try:
        return pd.DataFrame(model_input)
    except (TypeError, ValueError) as err:
        raise InvalidInput(
            "model input must be a table of customers (a DataFrame, a mapping of column -> "
            f"values or a list of records), got {type(model_input).__name__}: {err}"
        ) from err


def _values(name: str, column: pd.Series) -> np.ndarray:
    """A column as the numpy array `check_request_columns` reads (missing numbers as NaN)."""
    dtype = column.dtype
    if isinstance(dtype, pd.CategoricalDtype):
        return column.to_numpy(dtype=object)
    if name in _NUMERIC and pd.api.types.is_extension_array_dtype(dtype):
        if pd.api.types.is_numeric_dtype(dtype) and not pd.api.types.is_bool_dtype(dtype):
            return column.to_numpy(dtype=np.float64, na_value=np.nan)  # Int64, Float64
    values = column.to_numpy()
    if name in _NUMERIC and values.dtype == object:
        # None / pd.NA stand for a missing number, as JSON null does for the server
        values = np.asarray(
            [np.nan if v is None or v is pd.NA else v for v in values.tolist()], dtype=object
        )
    return values
