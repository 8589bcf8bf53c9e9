"""The v2 client's request building: datatypes from the contract, values typed, never judged."""

from __future__ import annotations

import pytest

from churn_core.errors import InvalidInput
from churn_inference.client import (
    Scored,
    V2Client,
    format_table,
    read_customers,
    v2_inputs,
    v2_request,
)
from churn_model.contract import FEATURE_COLUMNS, FEATURE_NAMES, Categorical
from churn_model.synthetic import generate_csv_bytes


@pytest.fixture(scope="module")
def raw():
    return read_customers(generate_csv_bytes(rows=20, seed=1), "synthetic")


def test_one_input_per_attribute_typed_by_the_contract(raw):
    inputs = v2_inputs(raw)
    assert [t["name"] for t in inputs] == list(FEATURE_NAMES)
    for col, tensor in zip(FEATURE_COLUMNS, inputs, strict=True):
        if isinstance(col, Categorical):
            assert tensor["datatype"] == "BYTES"
            assert all(isinstance(v, str) for v in tensor["data"])
        elif col.integer:
            assert tensor["datatype"] == "INT64"
            assert all(type(v) is int for v in tensor["data"])
        else:
            assert tensor["datatype"] == "FP64"
            assert all(v is None or isinstance(v, int | float) for v in tensor["data"])
        assert tensor["shape"] == [len(raw)]
    body = v2_request(raw, ("reasons",))
    assert body["parameters"] == {"content_type": "pd"} and body["outputs"] == [{"name": "reasons"}]


def test_values_are_typed_not_judged(raw):
    frame = raw.iloc[:4].copy()
    frame["extra"] = "x"
    frame.loc[0, "TotalCharges"] = " "
    frame.loc[1, "TotalCharges"] = "nan"
    frame.loc[2, "tenure"] = "abc"  # the server names it, not the client
    frame.loc[3, "tenure"] = "12.0"
    frame.loc[3, "Contract"] = "Weekly"
    by_name = {t["name"]: t["data"] for t in v2_inputs(frame)}
    assert "extra" not in by_name and "customerID" not in by_name and "Churn" not in by_name
    assert by_name["TotalCharges"][:2] == [None, None]
    assert by_name["tenure"][2:] == ["abc", 12.0]
    assert by_name["Contract"][3] == "Weekly"


def test_a_missing_attribute_is_not_invented(raw):
    names = [t["name"] for t in v2_inputs(raw.drop(columns=["tenure"]))]
    assert "tenure" not in names and len(names) == len(FEATURE_NAMES) - 1


def test_read_customers_refuses_what_is_not_a_table():
    with pytest.raises(InvalidInput, match="in.csv: no customers"):
        read_customers(b"customerID,gender\n", "in.csv")
    with pytest.raises(InvalidInput, match="x.csv: not a CSV"):
        read_customers(b"", "x.csv")


def test_table_layout():
    scored = Scored(
        "churn",
        "3",
        [0.71234, 0.05],
        [True, False],
        reasons=[["Contract = Month-to-month raises churn risk"], []],
        suggestions=[["Offer a contract."], []],
    )
    text = format_table(["A-1", "B-22"], scored, ["Yes", "No"])
    assert text.splitlines() == [
        "customerID  churn probability  churn  actual",
        "----------  -----------------  -----  ------",
        "A-1                     0.712    yes     Yes",
        "    1. Contract = Month-to-month raises churn risk",
        "       -> Offer a contract.",
        "B-22                    0.050     no      No",
    ]


@pytest.mark.parametrize(
    ("url", "timeout", "named"),
    [
        ("notaurl", 30.0, "'notaurl'"),
        ("ftp://127.0.0.1:8080", 30.0, "'ftp://127.0.0.1:8080'"),
        ("http://", 30.0, "'http://'"),
        ("http://127.0.0.1:8080", 0.0, "0.0"),
        ("http://127.0.0.1:8080", -1.0, "-1.0"),
    ],
)
def test_a_bad_url_or_timeout_is_refused_naming_the_value(url, timeout, named):
    with pytest.raises(InvalidInput, match=r"(URL|timeout).*" + named.replace(".", r"\.")):
        V2Client(url, timeout=timeout)
