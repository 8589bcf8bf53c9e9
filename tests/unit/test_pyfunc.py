"""The MLflow pyfunc model checks the data contract like the server: bad rows are InvalidInput.

The pyfunc is saved and loaded by MLflow itself, as registration logs it
(`register_bundle`: the models-from-code file, the bundle as its artifact, the
same signature), so the input arrives as MLflow's schema enforcement passes it.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from churn_core.errors import InvalidInput
from churn_model.bundle import load_model
from churn_model.contract import ID_COLUMN, LABEL_COLUMN


@pytest.fixture(scope="module")
def bundle(bundle_dir: Callable[[str], Path]) -> Path:
    return bundle_dir("logistic")


@pytest.fixture(scope="module")
def pyfunc(bundle: Path, tmp_path_factory: pytest.TempPathFactory) -> Any:
    """The bundle saved as registration logs it, loaded back by MLflow."""
    from importlib.util import find_spec

    import mlflow

    from churn_components.registry.register import _signature, pip_requirements
    from churn_model.registry import BUNDLE_ARTIFACT

    spec = find_spec("churn_model.mlflow_model")
    assert spec is not None and spec.origin is not None
    path = tmp_path_factory.mktemp("pyfunc") / "model"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mlflow.pyfunc.save_model(
            path=str(path),
            python_model=spec.origin,
            artifacts={BUNDLE_ARTIFACT: str(bundle)},
            signature=_signature(),
            pip_requirements=pip_requirements(),
        )
    return mlflow.pyfunc.load_model(str(path))


@pytest.fixture(scope="module")
def customers(customer_split: tuple[pd.DataFrame, pd.DataFrame]) -> pd.DataFrame:
    """Held-out customers as a caller has them: the id column and the attributes."""
    held_out = customer_split[1].drop(columns=[LABEL_COLUMN]).head(40).reset_index(drop=True)
    assert held_out["tenure"].dtype == np.int64 and held_out[ID_COLUMN].dtype == object
    return held_out


def predict(pyfunc: Any, frame: pd.DataFrame) -> pd.DataFrame:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # MLflow warns that it drops customerID
        out: pd.DataFrame = pyfunc.predict(frame)
    return out


def test_good_rows_predict_what_the_bundle_predicts(
    pyfunc: Any, bundle: Path, customers: pd.DataFrame
) -> None:
    model, _ = load_model(bundle)
    out = predict(pyfunc, customers)
    expected = model.predict_proba(customers)
    assert list(out.columns) == ["churn_probability", "churn"] and len(out) == len(customers)
    np.testing.assert_array_equal(out["churn_probability"].to_numpy(), expected)
    np.testing.assert_array_equal(out["churn"].to_numpy(), expected >= model.threshold)


def test_a_first_month_customer_with_blank_total_charges_is_scored(
    pyfunc: Any, customers: pd.DataFrame
) -> None:
    frame = customers.copy()
    frame.loc[0, ["tenure", "TotalCharges"]] = [0, np.nan]
    p = predict(pyfunc, frame)["churn_probability"].to_numpy()
    assert np.isfinite(p).all()


BAD_ROWS = [
    ("tenure", -3, "column 'tenure': value -3 out of range [0, 120]"),
    ("tenure", 121, "column 'tenure': value 121 out of range [0, 120]"),
    ("SeniorCitizen", 2, "column 'SeniorCitizen': value 2 out of range [0, 1]"),
    (
        "TotalCharges",
        np.nan,
        "column 'TotalCharges': value nan is not a finite number "
        "(NaN is allowed only when tenure == 0)",
    ),
    ("MonthlyCharges", np.inf, "column 'MonthlyCharges': value inf is not a finite number"),
    ("MonthlyCharges", -1.0, "column 'MonthlyCharges': value -1.0 out of range [0, 500]"),
    ("Contract", "Weekly", "column 'Contract': unknown category 'Weekly'"),
]


@pytest.mark.parametrize(("column", "value", "says"), BAD_ROWS, ids=[b[0] for b in BAD_ROWS])
def test_a_row_breaking_the_contract_is_invalid_input_naming_column_and_value(
    pyfunc: Any, customers: pd.DataFrame, column: str, value: Any, says: str
) -> None:
    frame = customers.copy()
    frame.loc[5, "tenure"] = 12  # past the first month: a NaN TotalCharges is no quirk here
    frame.loc[5, column] = value
    with pytest.raises(InvalidInput) as caught:
        predict(pyfunc, frame)
    assert says in str(caught.value)


def test_the_python_model_takes_other_pandas_dtypes_and_records(
    pyfunc: Any, customers: pd.DataFrame
) -> None:
    """Called without MLflow's enforcement (unwrapped), as batch code may call it."""
    model = pyfunc.unwrap_python_model()
    expected = model.predict(None, customers)["churn_probability"].to_numpy()
    typed = customers.astype(
        {
            "gender": "category",
            "Contract": "string",
            "tenure": "Int64",
            "SeniorCitizen": "int32",
            "TotalCharges": "Float64",
        }
    )
    np.testing.assert_array_equal(model.predict(None, typed)["churn_probability"], expected)
    records = customers.to_dict(orient="records")
    np.testing.assert_array_equal(model.predict(None, records)["churn_probability"], expected)

    missing = typed.copy()
    missing.loc[2, "tenure"] = pd.NA
    with pytest.raises(InvalidInput, match=r"column 'tenure': value nan is not a finite number"):
        model.predict(None, missing)
    blank = typed.copy()
    blank.loc[3, "Contract"] = pd.NA
    with pytest.raises(InvalidInput, match=r"column 'Contract': expected a string, got NAType"):
        model.predict(None, blank)
    with pytest.raises(InvalidInput, match=r"missing column\(s\): tenure"):
        model.predict(None, customers.drop(columns=["tenure"]))
    with pytest.raises(InvalidInput, match=r"unexpected column\(s\): Churn"):
        model.predict(None, customers.assign(Churn="No"))
    with pytest.raises(InvalidInput, match="model input must be a table of customers"):
        model.predict(None, 42)
