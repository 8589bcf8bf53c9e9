"""The data contract applied to a batch of column arrays: every way into the served model.

`check_request_columns` raises `InvalidInput` naming the column and the value
at the first problem. numpy only, fast for one-row requests. The server, the
MLflow pyfunc model and batch scoring all call it before scoring.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from typing import Any

import numpy as np

from churn_core.errors import InvalidInput
from churn_model.contract import BLANK_ALLOWED, FEATURE_COLUMNS, FEATURE_NAMES, Categorical, Numeric

_CATEGORIES: dict[str, frozenset[str]] = {
    c.name: frozenset(c.categories) for c in FEATURE_COLUMNS if isinstance(c, Categorical)
}
_NUMERICS: dict[str, Numeric] = {c.name: c for c in FEATURE_COLUMNS if isinstance(c, Numeric)}
_REQUIRED = frozenset(FEATURE_NAMES)


def check_request_columns(
    cols: Mapping[str, Sequence[Any] | np.ndarray], *, ignore: Collection[str] = ()
) -> None:
    """Check a batch of column arrays (a serving request) against the contract.

    Each column holds the batch's values, shape `[n]` or `[n, 1]`: strings for
    categoricals (decode BYTES first), real numbers for numeric columns
    (int or float, not bool, not strings). `TotalCharges` may be NaN only
    where `tenure` is 0 (the contract's known quirk; the transform treats it
    as 0.0 billed).

    Args:
        cols: column name -> values.
        ignore: extra column names tolerated (e.g. the customer id).

    Raises:
        InvalidInput: at the first problem, naming the column and the value:
            missing or extra column, bad shape or length, empty batch, wrong
            type, unknown category, NaN/infinite or out-of-range number,
            non-integer in an integer column.
    """
    names = set(cols)
    missing = _REQUIRED - names
    if missing:
        raise InvalidInput(f"missing column(s): {', '.join(sorted(missing))}")
    extra = names - _REQUIRED - set(ignore)
    if extra:
        raise InvalidInput(f"unexpected column(s): {', '.join(sorted(extra))}")
    n: int | None = None
    numeric_values: dict[str, np.ndarray] = {}
    for name in FEATURE_NAMES:
        values = _column_array(name, cols[name])
        if n is None:
            n = len(values)
            if n == 0:
                raise InvalidInput(f"column {name!r}: empty batch (0 rows)")
        elif len(values) != n:
            raise InvalidInput(f"column {name!r} has {len(values)} values, expected {n}")
        if name in _CATEGORIES:
            _check_categories(name, values)
        else:
            numeric_values[name] = _check_numbers(name, values, numeric_values)


def _column_array(name: str, values: Any) -> np.ndarray:
    if isinstance(values, str | bytes) or not hasattr(values, "__len__"):
        raise InvalidInput(f"column {name!r}: expected a list of values, got {values!r}")
    arr = values if isinstance(values, np.ndarray) else np.asarray(values, dtype=object)
    if arr.ndim == 2 and arr.shape[1] == 1:
        arr = arr[:, 0]
    if arr.ndim != 1:
        raise InvalidInput(f"column {name!r}: shape {list(arr.shape)}, expected [n] or [n, 1]")
    return arr


def _check_categories(name: str, values: np.ndarray) -> None:
    allowed = _CATEGORIES[name]
    try:
        bad = set(values.tolist()) - allowed
    except TypeError as err:  # an unhashable element (a list, a dict)
        raise InvalidInput(f"column {name!r}: expected strings, got {values.tolist()!r}") from err
    if not bad:
        return
    for value in values.tolist():
        if value in bad:
            if not isinstance(value, str):
                raise InvalidInput(
                    f"column {name!r}: expected a string, got {type(value).__name__} {value!r}"
                )
            raise InvalidInput(
                f"column {name!r}: unknown category {value!r}; allowed: "
                + ", ".join(sorted(allowed))
            )


def _check_numbers(name: str, values: np.ndarray, seen: Mapping[str, np.ndarray]) -> np.ndarray:
    col = _NUMERICS[name]
    kind = values.dtype.kind
    if kind in "iu":
        number = values.astype(np.float64)
    elif kind == "f":
        number = values.astype(np.float64, copy=False)
    elif kind == "O":
        for value in values.tolist():
            if isinstance(value, bool | np.bool_) or not isinstance(
                value, int | float | np.integer | np.floating
            ):
                raise InvalidInput(
                    f"column {name!r}: expected a number, got {type(value).__name__} {value!r}"
                )
        number = values.astype(np.float64)
    else:
        first = values.tolist()[0]
        raise InvalidInput(
            f"column {name!r}: expected a number, got {type(first).__name__} {first!r}"
        )
    # Comparisons with NaN are False without a warning: no errstate needed (it is slow).
    finite = np.isfinite(number)
    if not finite.all():
        blank_ok = BLANK_ALLOWED.get(name)
        bad = ~finite
        if blank_ok is not None and blank_ok[0] in seen:
            bad &= ~(np.isnan(number) & (seen[blank_ok[0]] == blank_ok[1]))
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            hint = ""
            if blank_ok is not None:
                hint = f" (NaN is allowed only when {blank_ok[0]} == {blank_ok[1]})"
            raise InvalidInput(
                f"column {name!r}: value {_py(values, i)!r} is not a finite number{hint}"
            )
    out = (number < col.minimum) | (number > col.maximum)
    if out.any():
        i = int(np.flatnonzero(out)[0])
        raise InvalidInput(
            f"column {name!r}: value {_py(values, i)!r} out of range "
            f"[{col.minimum:g}, {col.maximum:g}]"
        )
    if col.integer and kind not in "iu":
        frac = number != np.floor(number)
        frac &= finite
        if frac.any():
            i = int(np.flatnonzero(frac)[0])
            raise InvalidInput(f"column {name!r}: value {_py(values, i)!r} is not an integer")
    return number


def _py(values: np.ndarray, i: int) -> Any:
    value = values[i]
    return value.item() if isinstance(value, np.generic) else value
