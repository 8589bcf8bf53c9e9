"""The synthetic stand-in: the contract's schema, realistic relations, seeded, never mistaken."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import pytest

from churn_components.data.validate import validate_csv
from churn_model.contract import ALL_COLUMNS
from churn_model.synthetic import (
    SYNTHETIC_ID_PREFIX,
    generate_csv_bytes,
    generate_frame,
    is_synthetic,
    write_synthetic_csv,
)


@pytest.fixture(scope="module")
def big() -> pd.DataFrame:
    """7,043 synthetic customers, validated and typed."""
    return validate_csv(generate_frame(7043, 11).to_csv(index=False).encode()).accepted


def churn_rate(frame: pd.DataFrame, mask: pd.Series) -> float:
    return float((frame.loc[mask, "Churn"] == "Yes").mean())


def test_same_schema_and_the_whole_table_passes_the_contract():
    raw = generate_frame(1000, 3)
    assert list(raw.columns) == list(ALL_COLUMNS)
    result = validate_csv(raw.to_csv(index=False).encode())
    assert result.report["rejected_rows"] == 0
    assert result.report["accepted_rows"] == 1000


def test_seeded_and_deterministic():
    assert generate_frame(300, 5).equals(generate_frame(300, 5))
    assert not generate_frame(300, 5).equals(generate_frame(300, 6))


def test_ids_are_unique_and_recognisably_synthetic(big):
    assert big["customerID"].is_unique
    assert big["customerID"].str.fullmatch(rf"{SYNTHETIC_ID_PREFIX}\d{{6}}").all()
    assert is_synthetic(big["customerID"])
    assert not is_synthetic(["7590-VHVEG", "5575-GNVDE"])  # the real data's id form


def test_churn_share_near_the_real_one(big):
    assert 0.24 <= (big["Churn"] == "Yes").mean() <= 0.29


def test_blank_total_charges_only_for_tenure_zero_like_the_real_file():
    raw = generate_frame(20000, 1)
    blank = raw["TotalCharges"] == " "
    assert blank.sum() > 0
    assert (raw.loc[blank, "tenure"] == 0).all()
    assert (raw.loc[raw["tenure"] == 0, "TotalCharges"] == " ").all()


def test_total_charges_follow_tenure_times_monthly(big):
    billed = big[big["tenure"] > 0]
    ratio = billed["TotalCharges"] / (billed["tenure"] * billed["MonthlyCharges"])
    assert 0.97 < ratio.median() < 1.03
    assert ratio.std() < 0.1


def test_monthly_charges_follow_the_services(big):
    fibre = big["InternetService"] == "Fiber optic"
    none = big["InternetService"] == "No"
    assert big.loc[fibre, "MonthlyCharges"].mean() > big.loc[none, "MonthlyCharges"].mean() + 40


def test_services_respect_their_dependencies(big):
    no_net = big["InternetService"] == "No"
    assert (big.loc[no_net, "TechSupport"] == "No internet service").all()
    assert (big.loc[~no_net, "TechSupport"] != "No internet service").all()
    no_phone = big["PhoneService"] == "No"
    assert (big.loc[no_phone, "MultipleLines"] == "No phone service").all()


@pytest.mark.parametrize(
    ("column", "riskier", "safer"),
    [
        ("Contract", "Month-to-month", "Two year"),
        ("InternetService", "Fiber optic", "DSL"),
        ("PaymentMethod", "Electronic check", "Credit card (automatic)"),
        ("TechSupport", "No", "Yes"),
        ("OnlineSecurity", "No", "Yes"),
    ],
)
def test_churn_depends_on_the_known_drivers(big, column, riskier, safer):
    assert churn_rate(big, big[column] == riskier) > churn_rate(big, big[column] == safer) + 0.05


def test_churn_falls_with_tenure_and_rises_with_charges(big):
    assert churn_rate(big, big["tenure"] <= 12) > churn_rate(big, big["tenure"] > 48) + 0.15
    high = big["MonthlyCharges"] > big["MonthlyCharges"].median()
    assert churn_rate(big, high) > churn_rate(big, ~high)


def test_generation_is_announced_loudly(tmp_path, caplog):
    with caplog.at_level(logging.WARNING, logger="churn_model.synthetic"):
        path = write_synthetic_csv(tmp_path / "s" / "t.csv", rows=50, seed=2)
    assert path.is_file()
    loud = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert loud and all("SYNTHETIC DATA" in r.getMessage() for r in loud)
    assert "NOT THE REAL TELCO DATA SET" in loud[0].getMessage()
    assert path.read_bytes() == generate_csv_bytes(50, 2)


def test_rows_must_be_positive():
    with pytest.raises(ValueError, match="rows must be positive"):
        generate_frame(0)


def test_small_tables_still_hold_every_category():
    raw = generate_frame(400, 9)
    assert set(raw["Contract"]) == {"Month-to-month", "One year", "Two year"}
    assert len(set(raw["PaymentMethod"])) == 4
    assert np.isin(raw["Churn"], ["Yes", "No"]).all()
