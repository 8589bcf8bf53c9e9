"""Behaviour of the selected model over every real customer (the served ChurnModel).

A retention team relies on these: a longer commitment, an added protective
service, or a longer tenure at the same monthly price must not raise the
churn risk. Tolerance: no customer's probability may rise by more than
TOLERANCE (one percentage point), and the average must fall.

The XGBoost candidate holds them by construction (monotone constraints on the
contract, service, tenure and charge columns; no splits on the one-hot tenure
bands or the tenure x contract interactions): for it the tolerance is zero.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
import pytest

from tests.fixtures.training import RealTraining

pytestmark = [pytest.mark.model, pytest.mark.realdata]

TOLERANCE = 0.01


def _change(
    real_training: RealTraining,
    mask: pd.Series,
    edit: Callable[[pd.DataFrame], None],
    model: Any = None,
) -> np.ndarray:
    model = model or real_training.model
    customers = real_training.customers[mask].reset_index(drop=True)
    assert len(customers) > 500, "too few customers to say anything"
    before = model.predict_proba(customers)
    edited = customers.copy()
    edit(edited)
    return model.predict_proba(edited) - before


def _check(diff: np.ndarray, what: str) -> None:
    worst = float(diff.max())
    assert worst <= TOLERANCE, f"{what}: risk rose by {worst:.4f} for some customer"
    assert float(diff.mean()) < 0, f"{what}: average change {diff.mean():+.4f} is not a fall"


def test_two_year_contract_does_not_raise_risk(real_training: RealTraining) -> None:
    c = real_training.customers
    diff = _change(
        real_training,
        c["Contract"] == "Month-to-month",
        lambda d: d.__setitem__("Contract", "Two year"),
    )
    _check(diff, "month-to-month -> two year")


@pytest.mark.parametrize("service", ["TechSupport", "OnlineSecurity"])
def test_adding_a_protective_service_does_not_raise_risk(
    real_training: RealTraining, service: str
) -> None:
    c = real_training.customers
    diff = _change(real_training, c[service] == "No", lambda d: d.__setitem__(service, "Yes"))
    _check(diff, f"{service} No -> Yes")


def _longer(d: pd.DataFrame, months: int = 12) -> None:
    tenure = d["tenure"].astype(float)
    new = np.minimum(tenure + months, 72)
    d["TotalCharges"] = d["TotalCharges"].astype(float) * new / tenure
    d["tenure"] = new.astype(np.int64)


def test_longer_tenure_at_the_same_monthly_charge_does_not_raise_risk(
    real_training: RealTraining,
) -> None:
    c = real_training.customers
    diff = _change(real_training, (c["tenure"] > 0) & (c["tenure"] <= 60), _longer)
    _check(diff, "tenure + 12 months, TotalCharges scaled")


def test_xgboost_candidate_is_monotone_by_construction(real_training: RealTraining) -> None:
    model = real_training.models.get("xgboost")
    if model is None:
        pytest.skip("xgboost is not among models.enabled")
    c = real_training.customers
    edits: list[tuple[str, pd.Series, Callable[[pd.DataFrame], None]]] = [
        (
            "two year",
            c["Contract"] == "Month-to-month",
            lambda d: d.__setitem__("Contract", "Two year"),
        ),
        (
            "one year",
            c["Contract"] == "Month-to-month",
            lambda d: d.__setitem__("Contract", "One year"),
        ),
        ("tech support", c["TechSupport"] == "No", lambda d: d.__setitem__("TechSupport", "Yes")),
        ("security", c["OnlineSecurity"] == "No", lambda d: d.__setitem__("OnlineSecurity", "Yes")),
        ("tenure +1", (c["tenure"] > 0) & (c["tenure"] < 72), lambda d: _longer(d, 1)),
        ("tenure +12", (c["tenure"] > 0) & (c["tenure"] <= 60), _longer),
    ]
    for name, mask, edit in edits:
        diff = _change(real_training, mask, edit, model)
        assert diff.max() <= 1e-9, f"xgboost: {name} raised the risk by {diff.max():.2e}"
