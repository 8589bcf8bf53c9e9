"""Decoding v2 tensors and v1 instances into checked columns, without pandas."""

from __future__ import annotations

import math

import numpy as np
import pytest
from kserve import InferInput

from churn_core.errors import InvalidInput
from churn_inference.schema import column_of, decode_columns, decode_instances, input_specs
from churn_model.contract import FEATURE_COLUMNS, Categorical

SPECS = input_specs()
BY_NAME = {s.name: s for s in SPECS}

ROW = {
    "gender": "Female",
    "SeniorCitizen": 0,
    "Partner": "Yes",
    "Dependents": "No",
    "tenure": 1,
    "PhoneService": "No",
    "MultipleLines": "No phone service",
    "InternetService": "DSL",
    "OnlineSecurity": "No",
    "OnlineBackup": "Yes",
    "DeviceProtection": "No",
    "TechSupport": "No",
    "StreamingTV": "No",
    "StreamingMovies": "No",
    "Contract": "Month-to-month",
    "PaperlessBilling": "Yes",
    "PaymentMethod": "Electronic check",
    "MonthlyCharges": 29.85,
    "TotalCharges": 29.85,
}


def tensors(rows: list[dict], binary: bool = False, **override: tuple[str, list]) -> list:
    out = []
    for col in FEATURE_COLUMNS:
        values = [r[col.name] for r in rows]
        if isinstance(col, Categorical):
            arr, dt = np.asarray(values, dtype=object), "BYTES"
        elif col.integer:
            arr, dt = np.asarray(values, dtype=np.int64), "INT64"
        else:
            arr, dt = np.asarray(values, dtype=np.float64), "FP64"
        if col.name in override:
            dt, data = override[col.name]
            out.append(InferInput(col.name, [len(data)], dt, data=data))
            continue
        tensor = InferInput(col.name, [len(arr)], dt)
        tensor.set_data_from_numpy(arr, binary_data=binary)
        if binary:  # as the REST binary extension / gRPC raw contents arrive
            tensor._data = []
        out.append(tensor)
    return out


def test_schema_follows_the_contract():
    assert [s.name for s in SPECS] == [c.name for c in FEATURE_COLUMNS]
    assert BY_NAME["Contract"].datatype == "BYTES"
    assert BY_NAME["tenure"].datatype == "INT64"
    assert BY_NAME["MonthlyCharges"].datatype == "FP64"


@pytest.mark.parametrize("binary", [False, True])
def test_decodes_json_and_raw_tensors_to_columns(binary):
    rows = [ROW, {**ROW, "Contract": "Two year", "tenure": 40, "TotalCharges": 1200.5}]
    cols = decode_columns(tensors(rows, binary=binary), SPECS, BY_NAME)
    assert cols["Contract"].tolist() == ["Month-to-month", "Two year"]
    assert cols["tenure"].dtype == np.float64
    assert cols["tenure"].tolist() == [1.0, 40.0]
    assert cols["TotalCharges"].tolist() == [29.85, 1200.5]


def test_bytes_values_are_decoded_as_utf8():
    cols = decode_columns(tensors([ROW], Contract=("BYTES", [b"One year"])), SPECS, BY_NAME)
    assert cols["Contract"].tolist() == ["One year"]


def test_null_total_charges_allowed_only_for_tenure_zero():
    ok = decode_columns(
        tensors([{**ROW, "tenure": 0}], TotalCharges=("FP64", [None])), SPECS, BY_NAME
    )
    assert math.isnan(ok["TotalCharges"][0])
    with pytest.raises(InvalidInput, match="TotalCharges"):
        decode_columns(tensors([ROW], TotalCharges=("FP64", [None])), SPECS, BY_NAME)


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"Contract": ("BYTES", ["Weekly"])}, "unknown category 'Weekly'"),
        ({"tenure": ("INT64", [-3])}, "'tenure'.*-3.*out of range"),
        ({"tenure": ("INT64", [1.5])}, "'tenure'.*1.5.*not an integer"),
        ({"MonthlyCharges": ("FP64", ["cheap"])}, "'MonthlyCharges'.*'cheap'"),
        ({"MonthlyCharges": ("FP64", [True])}, "'MonthlyCharges'.*True"),
        ({"Contract": ("FP64", [1.0])}, "'Contract' has datatype FP64, expected BYTES"),
        ({"tenure": ("BYTES", ["1"])}, "'tenure' has datatype BYTES"),
        ({"gender": ("BYTES", [b"\xff\xfe"])}, "'gender'.*not UTF-8"),
        ({"gender": ("BYTES", [7])}, "'gender'.*expected a string"),
        ({"MonthlyCharges": ("FP64", [1e9])}, "'MonthlyCharges'.*out of range"),
    ],
)
def test_bad_values_name_column_and_value(override, message):
    with pytest.raises(InvalidInput, match=message):
        decode_columns(tensors([ROW], **override), SPECS, BY_NAME)


def test_structure_errors():
    good = tensors([ROW])
    with pytest.raises(InvalidInput, match="missing column.*tenure"):
        decode_columns([t for t in good if t.name != "tenure"], SPECS, BY_NAME)
    with pytest.raises(InvalidInput, match="unexpected input 'customerId'"):
        decode_columns([*good, InferInput("customerId", [1], "BYTES", ["x"])], SPECS, BY_NAME)
    # the customer id is an id, not a feature: kept apart, checked as an id
    cols = decode_columns([*good, InferInput("customerID", [1], "BYTES", ["x-1"])], SPECS, BY_NAME)
    assert cols["customerID"].tolist() == ["x-1"]
    with pytest.raises(InvalidInput, match="'customerID' has datatype INT64, expected BYTES"):
        decode_columns([*good, InferInput("customerID", [1], "INT64", [7])], SPECS, BY_NAME)
    with pytest.raises(InvalidInput, match="'customerID': value 7 at row 0 is not an id"):
        decode_columns([*good, InferInput("customerID", [1], "BYTES", [7])], SPECS, BY_NAME)
    with pytest.raises(InvalidInput, match="'gender' appears more than once"):
        decode_columns([*good, good[0]], SPECS, BY_NAME)
    bad_shape = tensors([ROW])
    bad_shape[0].shape = [2]
    with pytest.raises(InvalidInput, match="'gender': shape \\[2\\] says 2 values, data has 1"):
        decode_columns(bad_shape, SPECS, BY_NAME)
    bad_rank = tensors([ROW])
    bad_rank[0].shape = [1, 1, 1]
    with pytest.raises(InvalidInput, match="expected \\[n\\] or \\[n, 1\\]"):
        decode_columns(bad_rank, SPECS, BY_NAME)
    two = tensors([ROW, ROW])
    two[3] = tensors([ROW])[3]
    with pytest.raises(InvalidInput, match="has 1 values, expected 2"):
        decode_columns(two, SPECS, BY_NAME)


def test_v1_instances():
    cols = decode_instances([ROW, {**ROW, "Contract": "One year"}], SPECS)
    assert cols["Contract"].tolist() == ["Month-to-month", "One year"]
    assert cols["MonthlyCharges"].dtype == np.float64
    with pytest.raises(InvalidInput, match="instance 1: missing attribute.*tenure"):
        decode_instances([ROW, {k: v for k, v in ROW.items() if k != "tenure"}], SPECS)
    with pytest.raises(InvalidInput, match="instance 0: unexpected attribute.*plan"):
        decode_instances([{**ROW, "plan": "gold"}], SPECS)
    with pytest.raises(InvalidInput, match="non-empty list"):
        decode_instances([], SPECS)
    with pytest.raises(InvalidInput, match="instance 0: expected an object"):
        decode_instances([[1, 2]], SPECS)


def test_column_of_names_the_attribute():
    names = [s.name for s in SPECS]
    assert column_of("column 'tenure': value -3 out of range", names) == "tenure"
    assert column_of("no column here", names) == "_request"


def test_bundle_schema_with_other_columns_is_refused():
    with pytest.raises(InvalidInput, match="differ from the data contract"):
        input_specs({"input_schema": {"columns": [{"name": "age", "datatype": "INT64"}]}})
