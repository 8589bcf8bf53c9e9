"""The served schema and the request decoding of the hot path.

Inputs are the data contract's customer attributes, one v2 tensor each:
BYTES for categoricals, INT64 for integer attributes, FP64 for the others
(any integer or floating datatype is accepted for a number). Decoding turns
the tensors of an `InferRequest` (REST JSON, REST binary extension, gRPC
contents or raw contents) straight into numpy column arrays, with no pandas on
the way, checks the tensor structure here (names, datatypes, shapes) and the
values with the contract's `check_request_columns` (categories, ranges, NaN,
types). Every problem is an `InvalidInput` naming the column and the value.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from churn_core.errors import InvalidInput
from churn_model.checks import check_request_columns
from churn_model.contract import FEATURE_COLUMNS, ID_COLUMN, Categorical, Numeric

INT_TYPES = frozenset({"INT8", "INT16", "INT32", "INT64", "UINT8", "UINT16", "UINT32", "UINT64"})
FLOAT_TYPES = frozenset({"FP16", "FP32", "FP64"})

OUTPUT_PROBABILITY = "churn_probability"
OUTPUT_DECISION = "churn"
OUTPUT_ID = ID_COLUMN  # echoed when the request sends customer ids
ID_MAX_LENGTH = 64
PREDICTOR_OUTPUTS = (
    {"name": OUTPUT_PROBABILITY, "datatype": "FP32", "shape": [-1]},
    {"name": OUTPUT_DECISION, "datatype": "BOOL", "shape": [-1]},
)


@dataclass(frozen=True)
class InputSpec:
    """One served input tensor: a customer attribute."""

    name: str
    datatype: str
    categories: tuple[str, ...] = ()
    minimum: float | None = None
    maximum: float | None = None

    @property
    def is_categorical(self) -> bool:
        """BYTES input with a closed set of values."""
        return self.datatype == "BYTES"

    def accepts(self, datatype: str) -> bool:
        """Whether a tensor of `datatype` can carry this attribute."""
        if self.is_categorical:
            return datatype == "BYTES"
        if self.datatype == "INT64":
            return datatype in INT_TYPES or datatype in FLOAT_TYPES
        return datatype in INT_TYPES or datatype in FLOAT_TYPES

    def metadata(self) -> dict[str, Any]:
        """The v2 metadata tensor."""
        return {"name": self.name, "datatype": self.datatype, "shape": [-1]}


def input_specs(metadata: Mapping[str, Any] | None = None) -> tuple[InputSpec, ...]:
    """The input tensors, from the data contract (the bundle's `input_schema` if it names types).

    The contract is the single source of the attributes; a bundle's
    `input_schema` may only confirm it. A bundle whose schema names different
    columns was fitted on another contract and is refused.
    """
    specs = []
    for col in FEATURE_COLUMNS:
        if isinstance(col, Categorical):
            specs.append(InputSpec(col.name, "BYTES", categories=col.categories))
        else:
            assert isinstance(col, Numeric)
            specs.append(
                InputSpec(
                    col.name,
                    "INT64" if col.integer else "FP64",
                    minimum=col.minimum,
                    maximum=col.maximum,
                )
            )
    schema = (metadata or {}).get("input_schema")
    if schema:
        names = _schema_names(schema)
        expected = [s.name for s in specs]
        if names and sorted(names) != sorted(expected):
            raise InvalidInput(
                f"bundle input_schema names columns {sorted(set(names) ^ set(expected))} "
                "that differ from the data contract; refusing it"
            )
    return tuple(specs)


def _schema_names(schema: Any) -> list[str]:
    if isinstance(schema, Mapping):
        cols = schema.get("columns", schema)
        if isinstance(cols, Mapping):
            return [str(k) for k in cols]
        schema = cols
    if isinstance(schema, Sequence):
        return [str(c["name"]) for c in schema if isinstance(c, Mapping) and "name" in c]
    return []


def _values(infer_input: Any) -> Any:
    """The tensor's elements: a list (JSON, gRPC contents) or an array (raw contents)."""
    raw = getattr(infer_input, "_raw_data", None)
    data = infer_input.data
    if raw is not None and not data:
        return infer_input.as_numpy()
    return data


def _shape_rows(name: str, shape: Any, count: int) -> int:
    try:
        dims = [int(d) for d in shape]
    except (TypeError, ValueError) as err:
        raise InvalidInput(f"input {name!r}: shape {shape!r} is not a list of integers") from err
    if len(dims) == 1 or (len(dims) == 2 and dims[1] == 1):
        rows = dims[0]
    else:
        raise InvalidInput(
            f"input {name!r}: shape {dims}, expected [n] or [n, 1] (one value per customer)"
        )
    if rows < 0:
        raise InvalidInput(f"input {name!r}: negative dimension in shape {dims}")
    if rows != count:
        raise InvalidInput(f"input {name!r}: shape {dims} says {rows} values, data has {count}")
    return rows


def _flat(name: str, values: Any, numeric: bool) -> np.ndarray:
    if isinstance(values, np.ndarray):
        return values.reshape(-1)
    try:
        arr = np.asarray(values)
        if numeric and arr.dtype.kind in "US":  # a string among numbers: keep each value as sent
            arr = np.asarray(values, dtype=object)
    except ValueError as err:  # ragged nesting
        raise InvalidInput(f"input {name!r}: data is not a rectangular list: {err}") from err
    return arr.reshape(-1) if arr.ndim != 1 else arr


def _strings(name: str, arr: np.ndarray) -> np.ndarray:
    """BYTES elements as str (bytes decoded as UTF-8); non-strings are kept for the check."""
    if arr.dtype.kind == "U":
        return arr.astype(object)
    if arr.dtype.kind == "S":
        arr = arr.astype(object)
    if arr.dtype != object:
        return arr  # numbers in a BYTES tensor: check_request_columns names the value
    out = arr.copy()
    for i, value in enumerate(arr.tolist()):
        if isinstance(value, bytes):
            try:
                out[i] = value.decode("utf-8")
            except UnicodeDecodeError as err:
                raise InvalidInput(f"input {name!r}: value {value!r} is not UTF-8 text") from err
    return out


_NUMBER_TYPES = frozenset({int, float})


def _plain(values: Any, spec: InputSpec, datatype: str) -> np.ndarray | None:
    """The common case without per-value work, or None to take the general path."""
    if type(values) is not list or not values:
        return None
    if spec.is_categorical:
        if all(type(v) is str for v in values):
            return np.array(values, dtype=object)
        if all(type(v) is bytes for v in values):  # gRPC bytes_contents
            try:
                return np.array([v.decode("utf-8") for v in values], dtype=object)
            except UnicodeDecodeError:
                return None  # the general path names the value
        return None
    types = {type(v) for v in values}
    try:
        if types == {int}:  # kept integral, so errors show the value as sent
            return np.array(values, dtype=np.int64)
        if types <= _NUMBER_TYPES and datatype in FLOAT_TYPES:
            return np.array(values, dtype=np.float64)
    except OverflowError:
        return None
    return None


def _numbers(spec: InputSpec, datatype: str, arr: np.ndarray) -> np.ndarray:
    kind = arr.dtype.kind
    if datatype in INT_TYPES and kind == "f":
        bad = arr[~np.isfinite(arr) | (arr != np.floor(arr))]
        if bad.size:
            raise InvalidInput(
                f"input {spec.name!r}: datatype {datatype} but value {bad[0].item()!r} "
                "is not an integer"
            )
    if kind == "O":
        # JSON null stands for a missing number (allowed only where the contract allows NaN)
        arr = np.asarray([np.nan if v is None else v for v in arr.tolist()], dtype=object)
        if all(isinstance(v, int | float) and not isinstance(v, bool) for v in arr.tolist()):
            arr = arr.astype(np.float64)
    return arr


def check_ids(values: Any) -> np.ndarray:
    """The optional `customerID` input as an object array of str: an id, never a feature.

    Raises:
        InvalidInput: naming the value, for an empty, over-long or non-printable id.
    """
    out = np.empty(len(values), dtype=object)
    for i, value in enumerate(values):
        if isinstance(value, bytes):
            try:
                value = value.decode("utf-8")
            except UnicodeDecodeError as err:
                raise InvalidInput(
                    f"input {ID_COLUMN!r}: value {value!r} is not UTF-8 text"
                ) from err
        if not isinstance(value, str) or not value or not value.isprintable():
            raise InvalidInput(
                f"input {ID_COLUMN!r}: value {value!r} at row {i} is not an id "
                "(a non-empty string of printable characters)"
            )
        if len(value) > ID_MAX_LENGTH:
            raise InvalidInput(
                f"input {ID_COLUMN!r}: value {value[:80]!r} at row {i} is longer than "
                f"{ID_MAX_LENGTH} characters"
            )
        out[i] = value
    return out


def decode_columns(
    inputs: Sequence[Any], specs: Sequence[InputSpec], by_name: Mapping[str, InputSpec]
) -> dict[str, np.ndarray]:
    """Turn v2 input tensors into checked column arrays (name -> 1-d array).

    Args:
        inputs: the request's `InferInput`s.
        specs: the served inputs in order.
        by_name: the same, by name.

    Returns:
        Categoricals as object arrays of str, numbers as float64 arrays; the
        optional `customerID` input (an id, not a feature) as an object array
        of str under its name.

    Raises:
        InvalidInput: naming the input and the value, for any structural or
            contract problem.
    """
    cols: dict[str, np.ndarray] = {}
    for infer_input in inputs:
        name = infer_input.name
        spec = by_name.get(name)
        if name == ID_COLUMN and spec is None:
            if name in cols:
                raise InvalidInput(f"input {name!r} appears more than once")
            if infer_input.datatype != "BYTES":
                raise InvalidInput(
                    f"input {name!r} has datatype {infer_input.datatype}, expected BYTES"
                )
            arr = _flat(name, _values(infer_input), False)
            _shape_rows(name, infer_input.shape, arr.shape[0])
            cols[name] = check_ids(arr.tolist())
            continue
        if spec is None:
            raise InvalidInput(
                f"unexpected input {name!r}; the model takes: {', '.join(s.name for s in specs)}"
            )
        if name in cols:
            raise InvalidInput(f"input {name!r} appears more than once")
        datatype = infer_input.datatype
        if not spec.accepts(datatype):
            expected = "BYTES" if spec.is_categorical else f"{spec.datatype} (or another number)"
            raise InvalidInput(f"input {name!r} has datatype {datatype}, expected {expected}")
        values = _values(infer_input)
        fast = _plain(values, spec, datatype)
        if fast is not None:  # a flat JSON list of str / of numbers: one conversion
            _shape_rows(name, infer_input.shape, len(fast))
            cols[name] = fast
            continue
        arr = _flat(name, values, not spec.is_categorical)
        _shape_rows(name, infer_input.shape, arr.shape[0])
        if spec.is_categorical:
            cols[name] = _strings(name, arr)
        else:
            cols[name] = _numbers(spec, datatype, arr)
    check_request_columns(cols, ignore=(ID_COLUMN,))
    ids = cols.get(ID_COLUMN)
    if ids is not None and len(ids) != len(cols[specs[0].name]):
        raise InvalidInput(
            f"input {ID_COLUMN!r} has {len(ids)} values, expected {len(cols[specs[0].name])}"
        )
    for spec in specs:
        if not spec.is_categorical:
            cols[spec.name] = cols[spec.name].astype(np.float64, copy=False)
    return cols


def decode_instances(instances: Any, specs: Sequence[InputSpec]) -> dict[str, np.ndarray]:
    """Turn v1 `instances` (a list of objects, one per customer) into checked columns."""
    if not isinstance(instances, list) or not instances:
        raise InvalidInput('"instances" must be a non-empty list of objects, one per customer')
    names = [s.name for s in specs]
    known = set(names)
    lists: dict[str, list[Any]] = {n: [] for n in names}
    for i, inst in enumerate(instances):
        if not isinstance(inst, dict):
            raise InvalidInput(
                f"instance {i}: expected an object of attribute -> value, got "
                f"{type(inst).__name__} {str(inst)[:80]!r}"
            )
        extra = inst.keys() - known
        if extra:
            raise InvalidInput(f"instance {i}: unexpected attribute(s) {', '.join(sorted(extra))}")
        missing = known - inst.keys()
        if missing:
            raise InvalidInput(f"instance {i}: missing attribute(s) {', '.join(sorted(missing))}")
        for n in names:
            lists[n].append(inst[n])
    cols: dict[str, np.ndarray] = {}
    for spec in specs:
        arr = np.empty(len(instances), dtype=object)
        arr[:] = lists[spec.name]
        if not spec.is_categorical:
            arr = _numbers(spec, "FP64", arr)
        cols[spec.name] = arr
    check_request_columns(cols)
    for spec in specs:
        if not spec.is_categorical:
            cols[spec.name] = cols[spec.name].astype(np.float64, copy=False)
    return cols


def column_of(message: str, names: Sequence[str]) -> str:
    """The attribute an error message is about (for the validation-error metric)."""
    for name in names:
        if f"'{name}'" in message:
            return name
    return "_request"
