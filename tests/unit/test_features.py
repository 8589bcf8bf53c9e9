"""The one feature transform: same numbers for frames and single rows, hand-checked features."""

from __future__ import annotations

import math
import pickle

import numpy as np
import pandas as pd
import pytest
from sklearn.exceptions import NotFittedError

from churn_core.errors import InvalidInput
from churn_model.contract import FEATURE_NAMES
from churn_model.features import ChurnFeatures

BASE = {
    "gender": "Female",
    "SeniorCitizen": 0,
    "Partner": "Yes",
    "Dependents": "No",
    "tenure": 10,
    "PhoneService": "Yes",
    "MultipleLines": "No",
    "InternetService": "DSL",
    "OnlineSecurity": "Yes",
    "OnlineBackup": "No",
    "DeviceProtection": "No",
    "TechSupport": "Yes",
    "StreamingTV": "No",
    "StreamingMovies": "Yes",
    "Contract": "One year",
    "PaperlessBilling": "No",
    "PaymentMethod": "Mailed check",
    "MonthlyCharges": 50.0,
    "TotalCharges": 480.0,
}


def frame(*rows: dict) -> pd.DataFrame:
    return pd.DataFrame([{**BASE, **r} for r in rows], columns=list(FEATURE_NAMES))


def unscaled(rows: pd.DataFrame, **kwargs) -> pd.DataFrame:
    f = ChurnFeatures(scale=False, **kwargs).fit(rows)
    return pd.DataFrame(f.transform(rows), columns=f.get_feature_names_out())


@pytest.fixture(scope="module")
def fitted(synthetic_frame: pd.DataFrame) -> ChurnFeatures:
    return ChurnFeatures().fit(synthetic_frame)


def test_frame_and_single_rows_give_identical_numbers(fitted, synthetic_frame):
    whole = fitted.transform(synthetic_frame)
    for i in range(len(synthetic_frame)):
        row = {c: synthetic_frame[c].to_numpy()[i : i + 1] for c in FEATURE_NAMES}
        assert np.array_equal(fitted.transform_columns(row), whole[i : i + 1]), f"row {i}"


def test_python_lists_and_column_vectors_give_identical_numbers(fitted, synthetic_frame):
    head = synthetic_frame.head(25)
    whole = fitted.transform(head)
    as_lists = {c: head[c].tolist() for c in FEATURE_NAMES}
    as_vectors = {c: head[c].to_numpy().reshape(-1, 1) for c in FEATURE_NAMES}
    assert np.array_equal(fitted.transform_columns(as_lists), whole)
    assert np.array_equal(fitted.transform_columns(as_vectors), whole)


def test_fitted_transform_survives_pickle(fitted, synthetic_frame):
    again = pickle.loads(pickle.dumps(fitted))
    assert np.array_equal(again.transform(synthetic_frame), fitted.transform(synthetic_frame))


def test_scaled_training_columns_are_standardised(fitted, synthetic_frame):
    out = fitted.transform(synthetic_frame)
    std = out.std(axis=0)
    varying = std > 0
    assert np.allclose(out.mean(axis=0), 0.0, atol=1e-9)
    assert np.allclose(std[varying], 1.0)
    assert out.shape[1] == len(fitted.get_feature_names_out()) == len(fitted.output_features)


def test_unknown_category_names_column_and_value(fitted, synthetic_frame):
    row = {c: synthetic_frame[c].to_numpy()[:2].copy() for c in FEATURE_NAMES}
    row["Contract"] = np.asarray(["Two year", "Three year"], dtype=object)
    with pytest.raises(InvalidInput, match=r"column 'Contract': unknown category 'Three year'"):
        fitted.transform_columns(row)


def test_missing_column_and_ragged_columns_are_invalid_input(fitted, synthetic_frame):
    cols = {c: synthetic_frame[c].to_numpy()[:3] for c in FEATURE_NAMES}
    missing = {k: v for k, v in cols.items() if k != "tenure"}
    with pytest.raises(InvalidInput, match="missing column 'tenure'"):
        fitted.transform_columns(missing)
    with pytest.raises(InvalidInput, match="column 'tenure' has 2 values, expected 3"):
        fitted.transform_columns({**cols, "tenure": cols["tenure"][:2]})


def test_engineered_features_on_hand_examples():
    out = unscaled(
        frame(
            {},  # DSL, phone, security, support, movies: 5 services; 480 over 10 months
            {
                "tenure": 30,
                "InternetService": "No",
                "OnlineSecurity": "No internet service",
                "OnlineBackup": "No internet service",
                "DeviceProtection": "No internet service",
                "TechSupport": "No internet service",
                "StreamingTV": "No internet service",
                "StreamingMovies": "No internet service",
                "MultipleLines": "Yes",
                "MonthlyCharges": 25.0,
                "TotalCharges": 600.0,
            },
            {"tenure": 72, "TotalCharges": 3600.0},
        )
    )
    assert out["n_services"].tolist() == [5.0, 2.0, 5.0]
    assert out["charges_per_tenure_month"].tolist() == [48.0, 20.0, 50.0]
    assert out["monthly_minus_average"].tolist() == [2.0, 5.0, 0.0]
    assert out["log_total_charges"].tolist() == pytest.approx(
        [math.log1p(480.0), math.log1p(600.0), math.log1p(3600.0)]
    )
    # tenure 10 -> first band (<= 12), 30 -> (24, 48], 72 -> above the last edge (60)
    bands = out.filter(like="tenure_band_")
    assert bands.columns.tolist() == [
        "tenure_band_0_12",
        "tenure_band_12_24",
        "tenure_band_24_48",
        "tenure_band_48_60",
        "tenure_band_60_inf",
    ]
    assert bands.to_numpy().tolist() == [
        [1, 0, 0, 0, 0],
        [0, 0, 1, 0, 0],
        [0, 0, 0, 0, 1],
    ]
    assert out["Contract=One year"].tolist() == [1.0, 1.0, 1.0]
    assert out["InternetService=No"].tolist() == [0.0, 1.0, 0.0]
    assert out["MultipleLines=Yes"].tolist() == [0.0, 1.0, 0.0]


def test_band_edges_are_inclusive_upper_bounds_and_configurable():
    out = unscaled(frame({"tenure": 6}, {"tenure": 7}, {"tenure": 0}), tenure_bands=(6,))
    assert out.filter(like="tenure_band_").to_numpy().tolist() == [[1, 0], [0, 1], [1, 0]]


def test_blank_total_charges_for_new_customer_is_nothing_billed():
    out = unscaled(frame({}, {"tenure": 0, "TotalCharges": np.nan, "MonthlyCharges": 70.0}))
    new = out.iloc[1]
    assert new["TotalCharges"] == 0.0
    assert new["charges_per_tenure_month"] == 0.0
    assert new["log_total_charges"] == 0.0
    assert new["monthly_minus_average"] == 70.0
    assert np.isfinite(out.to_numpy()).all()


def test_fit_refuses_missing_total_charges_outside_the_quirk():
    with pytest.raises(InvalidInput, match="non-finite"):
        ChurnFeatures().fit(frame({}, {"tenure": 5, "TotalCharges": np.nan}))


def test_transform_before_fit_is_a_clear_error():
    with pytest.raises(NotFittedError, match="not fitted yet"):
        ChurnFeatures().transform(frame({}))
