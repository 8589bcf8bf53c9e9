"""The data contract: table validation (report, rejected cells, stage limit), request checks."""

from __future__ import annotations

import gzip

import numpy as np
import pandas as pd
import pytest

from churn_components.data.validate import (
    BAD_LABEL,
    DUPLICATE_ID,
    MISSING_VALUE,
    NON_NUMERIC,
    NOT_INTEGER,
    OUT_OF_RANGE,
    REPORT_MAX_ISSUES,
    UNKNOWN_CATEGORY,
    read_raw_csv,
    validate_csv,
)
from churn_core.errors import DataContractError, InvalidInput
from churn_model.checks import check_request_columns
from churn_model.contract import ALL_COLUMNS, FEATURE_NAMES


@pytest.fixture
def raw(synthetic_raw_frame: pd.DataFrame) -> pd.DataFrame:
    """A mutable copy of the synthetic table, every cell a string (as read from the CSV)."""
    return synthetic_raw_frame.astype(str).head(200).copy()


def csv_of(frame: pd.DataFrame) -> bytes:
    return frame.to_csv(index=False).encode()


def issues(result, reason=None):
    table = result.rejected
    return table if reason is None else table[table["reason"] == reason]


# -- the clean case and the quirk -------------------------------------------------------


def test_clean_table_is_fully_accepted_and_typed(raw):
    result = validate_csv(csv_of(raw), "clean.csv")
    assert result.report["input_rows"] == 200
    assert result.report["accepted_rows"] == 200
    assert result.report["rejected_rows"] == 0
    assert result.rejected.empty
    acc = result.accepted
    assert list(acc.columns) == list(ALL_COLUMNS)
    assert acc["tenure"].dtype == np.int64 and acc["SeniorCitizen"].dtype == np.int64
    assert acc["MonthlyCharges"].dtype == np.float64 and acc["TotalCharges"].dtype == np.float64
    assert acc["MonthlyCharges"].tolist() == raw["MonthlyCharges"].astype(float).tolist()
    result.raise_if_over_limit(0.0)  # nothing rejected: passes even a zero limit


def test_blank_total_charges_with_tenure_zero_is_the_known_quirk(raw):
    raw.loc[[3, 4], "tenure"] = "0"
    raw.loc[[3, 4], "TotalCharges"] = " "
    result = validate_csv(csv_of(raw))
    assert result.report["rejected_rows"] == 0
    assert result.report["known_quirks"]["blank_total_charges_tenure_0"] >= 2
    assert result.accepted.loc[[3, 4], "TotalCharges"].isna().all()


def test_blank_total_charges_with_positive_tenure_is_rejected(raw):
    raw.loc[5, "tenure"] = "12"
    raw.loc[5, "TotalCharges"] = ""
    result = validate_csv(csv_of(raw))
    [entry] = issues(result).to_dict(orient="records")
    assert entry["row"] == 6 and entry["column"] == "TotalCharges"
    assert entry["reason"] == MISSING_VALUE
    assert "blank allowed only when tenure == 0" in entry["detail"]


# -- one bad cell each: a specific reason, the row, the column and the value -----------------


@pytest.mark.parametrize(
    ("column", "value", "reason", "detail"),
    [
        ("Contract", "Weekly", UNKNOWN_CATEGORY, "allowed: Month-to-month, One year, Two year"),
        ("gender", "female", UNKNOWN_CATEGORY, "allowed: Female, Male"),
        ("tenure", "-3", OUT_OF_RANGE, "expected an integer in [0, 120]"),
        ("tenure", "2.5", NOT_INTEGER, "expected an integer in [0, 120]"),
        ("MonthlyCharges", "abc", NON_NUMERIC, "expected a number"),
        ("MonthlyCharges", "nan", NON_NUMERIC, "expected a number"),
        ("TotalCharges", "1,234", NON_NUMERIC, "expected a number"),
        ("MonthlyCharges", "9999", OUT_OF_RANGE, "expected a number in [0, 500]"),
        ("SeniorCitizen", "2", OUT_OF_RANGE, "expected an integer in [0, 1]"),
        ("PaymentMethod", "", MISSING_VALUE, "a value is required"),
        ("Churn", "Maybe", BAD_LABEL, "allowed: No, Yes"),
        ("Churn", "", BAD_LABEL, "allowed: No, Yes"),
    ],
)
def test_bad_cell_is_rejected_with_its_reason(raw, column, value, reason, detail):
    raw.loc[7, column] = value
    result = validate_csv(csv_of(raw), "bad.csv")
    rejected = issues(result).to_dict(orient="records")
    assert rejected == [
        {
            "row": 8,
            "customerID": raw.loc[7, "customerID"],
            "column": column,
            "value": value,
            "reason": reason,
            "detail": detail,
        }
    ]
    assert result.report["rejected_rows"] == 1
    assert result.report["reasons"][reason] == 1
    assert result.report["issues"][0]["value"] == value
    assert len(result.accepted) == 199
    assert raw.loc[7, "customerID"] not in set(result.accepted["customerID"])


def test_negative_tenure_is_reported_with_row_and_id(raw):
    raw.loc[0, "tenure"] = "-1"
    result = validate_csv(csv_of(raw))
    assert result.report["reasons"][OUT_OF_RANGE] == 1
    entry = result.report["issues"][0]
    assert (entry["row"], entry["column"], entry["value"]) == (1, "tenure", "-1")
    assert entry["customerID"] == raw.loc[0, "customerID"]


def test_duplicate_ids_reject_every_copy_and_name_the_other_rows(raw):
    raw.loc[10, "customerID"] = raw.loc[2, "customerID"]
    raw.loc[11, "customerID"] = raw.loc[2, "customerID"]
    result = validate_csv(csv_of(raw))
    dup = issues(result, DUPLICATE_ID)
    assert dup["row"].tolist() == [3, 11, 12]
    assert dup["detail"].tolist() == [
        "id also on row(s) 11, 12",
        "id also on row(s) 3, 12",
        "id also on row(s) 3, 11",
    ]
    assert result.report["reasons"][DUPLICATE_ID] == 3
    assert result.accepted["customerID"].is_unique
    assert len(result.accepted) == 197


def test_several_problems_in_one_row_count_the_row_once(raw):
    raw.loc[1, ["Contract", "tenure", "Churn"]] = ["Weekly", "-5", "?"]
    result = validate_csv(csv_of(raw))
    assert result.report["rejected_rows"] == 1
    assert result.report["rejected_cells"] == 3
    assert issues(result)["column"].tolist() == ["tenure", "Contract", "Churn"]  # contract order


def test_no_row_disappears_silently(raw):
    raw.loc[0, "tenure"] = "x"
    raw.loc[5, "gender"] = "?"
    raw.loc[9, "customerID"] = raw.loc[8, "customerID"]
    result = validate_csv(csv_of(raw))
    assert sorted(result.rejected["row"].unique()) == [1, 6, 9, 10]
    assert result.report["accepted_rows"] + result.report["rejected_rows"] == len(raw)
    accepted = set(result.accepted["customerID"])
    rejected = set(result.rejected["customerID"])
    assert len(accepted) == len(result.accepted) == len(raw) - 4
    assert accepted.isdisjoint(rejected)
    assert accepted | rejected == set(raw["customerID"])


def test_short_row_is_rejected_as_missing_values(raw):
    text = csv_of(raw).decode().splitlines()
    text[3] = ",".join(text[3].split(",")[:15])  # data row 3 loses its last 6 fields
    result = validate_csv(("\n".join(text) + "\n").encode())
    row3 = issues(result)
    assert set(row3["row"]) == {3}
    assert set(row3["column"]) >= {"MonthlyCharges", "PaymentMethod", "Churn"}
    assert result.report["rejected_rows"] == 1


# -- the stage limit --------------------------------------------------------------------


def test_rejected_share_above_limit_fails_with_counts(raw):
    raw.loc[:3, "Contract"] = "Weekly"  # 4 of 200 rows = 0.02
    result = validate_csv(csv_of(raw), "too-bad.csv")
    assert result.report["rejected_share"] == pytest.approx(0.02)
    result.raise_if_over_limit(0.02)  # at the limit: passes
    with pytest.raises(DataContractError) as err:
        result.raise_if_over_limit(0.01)
    msg = str(err.value)
    assert "too-bad.csv: 4 of 200 rows rejected" in msg
    assert "limit 0.01" in msg and "unknown_category 4" in msg


def test_report_lists_at_most_a_bounded_number_of_issues(raw):
    big = pd.concat([raw] * 6, ignore_index=True)
    big["customerID"] = [f"X-{i}" for i in range(len(big))]
    big["gender"] = "?"
    result = validate_csv(csv_of(big))
    assert result.report["rejected_cells"] == len(big) == 1200
    assert len(result.report["issues"]) == REPORT_MAX_ISSUES
    assert result.report["issues_truncated"] is True
    assert len(result.rejected) == 1200


# -- files that are not the table --------------------------------------------------------


def test_missing_column_is_named(raw):
    with pytest.raises(DataContractError, match=r"missing column\(s\) \['TechSupport'\]"):
        validate_csv(csv_of(raw.drop(columns=["TechSupport"])), "m.csv")


def test_extra_column_is_named(raw):
    raw["Region"] = "North"
    with pytest.raises(DataContractError, match=r"m.csv: .*extra column\(s\) \['Region'\]"):
        validate_csv(csv_of(raw), "m.csv")


def test_duplicate_header_column_is_named(raw):
    text = csv_of(raw).decode().replace("gender", "tenure", 1)
    with pytest.raises(DataContractError, match=r"duplicate column\(s\) in header: \['tenure'\]"):
        validate_csv(text.encode())


@pytest.mark.parametrize("content", [b"", b"\n\n  \n"])
def test_empty_file(content):
    with pytest.raises(DataContractError, match="e.csv: empty file"):
        validate_csv(content, "e.csv")


def test_header_only(raw):
    with pytest.raises(DataContractError, match="header but no data rows"):
        validate_csv(csv_of(raw.head(0)), "h.csv")


def test_binary_file_is_not_a_csv(raw):
    with pytest.raises(DataContractError, match="z.csv: not a CSV file: not UTF-8 text"):
        validate_csv(gzip.compress(csv_of(raw)), "z.csv")


def test_json_file_is_not_a_csv():
    data = b'{"customers": [{"customerID": "1", "tenure": 3}]}'
    with pytest.raises(DataContractError, match="j.json: not a CSV file with the Telco header"):
        validate_csv(data, "j.json")


def test_ragged_file_is_not_a_valid_csv(raw):
    text = csv_of(raw).decode().splitlines()
    text[5] += ",surplus,fields"
    with pytest.raises(DataContractError, match="r.csv: not a valid CSV file"):
        validate_csv(("\n".join(text)).encode(), "r.csv")


def test_read_raw_csv_keeps_every_cell_a_string(raw):
    frame = read_raw_csv(csv_of(raw))
    assert all(frame[c].map(type).eq(str).all() for c in frame.columns)
    assert frame["TotalCharges"].tolist() == raw["TotalCharges"].tolist()  # " " kept


# -- the serving request check -------------------------------------------------------------


@pytest.fixture
def request_cols(synthetic_frame: pd.DataFrame) -> dict[str, np.ndarray]:
    head = synthetic_frame.head(3)
    return {c: head[c].to_numpy() for c in FEATURE_NAMES}


def test_valid_requests_pass(request_cols):
    check_request_columns(request_cols)
    check_request_columns({k: v.tolist() for k, v in request_cols.items()})
    check_request_columns({k: np.asarray(v).reshape(-1, 1) for k, v in request_cols.items()})
    check_request_columns({**request_cols, "customerID": ["a", "b", "c"]}, ignore={"customerID"})
    one = {k: v[:1] for k, v in request_cols.items()}
    one["tenure"] = np.asarray([0])
    one["TotalCharges"] = np.asarray([np.nan])  # the quirk: nothing billed yet
    check_request_columns(one)
    one["MonthlyCharges"] = np.asarray([70], dtype=np.int32)  # any numeric dtype
    check_request_columns(one)


@pytest.mark.parametrize(
    ("column", "values", "message"),
    [
        (
            "Contract",
            ["Two year", "Weekly", "One year"],
            "column 'Contract': unknown category 'Weekly'",
        ),
        (
            "Contract",
            [b"Two year"] * 3,
            "column 'Contract': expected a string, got bytes b'Two year'",
        ),
        ("gender", [None, "Male", "Male"], "column 'gender': expected a string, got NoneType None"),
        ("gender", [["Male"], "Male", "Male"], "column 'gender': expected strings"),
        ("tenure", [1, -1, 3], r"column 'tenure': value -1 out of range \[0, 120\]"),
        ("tenure", [1.5, 2.0, 3.0], "column 'tenure': value 1.5 is not an integer"),
        ("MonthlyCharges", [1.0, float("nan"), 2.0], "column 'MonthlyCharges': value nan is not a"),
        ("MonthlyCharges", [float("inf"), 1.0, 2.0], "column 'MonthlyCharges': value inf is not a"),
        (
            "MonthlyCharges",
            ["70.5", "1", "2"],
            "column 'MonthlyCharges': expected a number, got str",
        ),
        (
            "MonthlyCharges",
            np.asarray(["7", "1", "2"]),
            "column 'MonthlyCharges': expected a number",
        ),
        (
            "SeniorCitizen",
            [True, False, True],
            "column 'SeniorCitizen': expected a number, got bool",
        ),
        (
            "SeniorCitizen",
            np.asarray([True, False, True]),
            "column 'SeniorCitizen': expected a number",
        ),
        ("TotalCharges", [100.0, float("nan"), 5.0], "NaN is allowed only when tenure == 0"),
        ("tenure", [1, 2], "column 'tenure' has 2 values, expected 3"),
        ("tenure", np.ones((3, 2)), r"column 'tenure': shape \[3, 2\], expected \[n\] or \[n, 1\]"),
        ("tenure", 5, "column 'tenure': expected a list of values, got 5"),
        ("tenure", "12", "column 'tenure': expected a list of values, got '12'"),
    ],
)
def test_bad_request_names_column_and_value(request_cols, column, values, message):
    request_cols["tenure"] = np.asarray([4, 5, 6])
    request_cols[column] = values
    with pytest.raises(InvalidInput, match=message):
        check_request_columns(request_cols)


def test_missing_extra_and_empty_request_columns(request_cols):
    with pytest.raises(InvalidInput, match="missing column\\(s\\): Contract, tenure"):
        check_request_columns(
            {k: v for k, v in request_cols.items() if k not in ("tenure", "Contract")}
        )
    with pytest.raises(InvalidInput, match="unexpected column\\(s\\): customerID"):
        check_request_columns({**request_cols, "customerID": ["a", "b", "c"]})
    with pytest.raises(InvalidInput, match="empty batch"):
        check_request_columns({k: v[:0] for k, v in request_cols.items()})


def test_request_check_agrees_with_table_validation(synthetic_frame):
    # every accepted row of the table validation passes the request check
    cols = {c: synthetic_frame[c].to_numpy() for c in FEATURE_NAMES}
    check_request_columns(cols)


def test_many_copies_of_one_id_keep_the_detail_short(raw):
    raw.loc[:7, "customerID"] = "SAME-ID"  # 8 copies
    result = validate_csv(csv_of(raw))
    dup = issues(result, DUPLICATE_ID)
    assert len(dup) == 8
    assert dup["detail"].iloc[0] == "id also on row(s) 2, 3, 4, 5, 6 and 2 more"
    assert dup["detail"].iloc[7] == "id also on row(s) 1, 2, 3, 4, 5 and 2 more"
