"""The data contract of the Telco customer table: written once, used everywhere.

Validation (pipeline), the serving schema (v2 inputs, metadata) and the
synthetic generator all read these definitions.
"""

from __future__ import annotations

from dataclasses import dataclass

ID_COLUMN = "customerID"
LABEL_COLUMN = "Churn"
LABEL_VALUES = ("No", "Yes")

YES_NO = ("No", "Yes")
INTERNET_DEPENDENT = ("No", "No internet service", "Yes")


@dataclass(frozen=True)
class Categorical:
    """A string column with a closed set of allowed values."""

    name: str
    categories: tuple[str, ...]


@dataclass(frozen=True)
class Numeric:
    """A numeric column with an inclusive allowed range."""

    name: str
    minimum: float
    maximum: float
    integer: bool = False


Column = Categorical | Numeric

FEATURE_COLUMNS: tuple[Column, ...] = (
    Categorical("gender", ("Female", "Male")),
    Numeric("SeniorCitizen", 0, 1, integer=True),
    Categorical("Partner", YES_NO),
    Categorical("Dependents", YES_NO),
    Numeric("tenure", 0, 120, integer=True),
    Categorical("PhoneService", YES_NO),
    Categorical("MultipleLines", ("No", "No phone service", "Yes")),
    Categorical("InternetService", ("DSL", "Fiber optic", "No")),
    Categorical("OnlineSecurity", INTERNET_DEPENDENT),
    Categorical("OnlineBackup", INTERNET_DEPENDENT),
    Categorical("DeviceProtection", INTERNET_DEPENDENT),
    Categorical("TechSupport", INTERNET_DEPENDENT),
    Categorical("StreamingTV", INTERNET_DEPENDENT),
    Categorical("StreamingMovies", INTERNET_DEPENDENT),
    Categorical("Contract", ("Month-to-month", "One year", "Two year")),
    Categorical("PaperlessBilling", YES_NO),
    Categorical(
        "PaymentMethod",
        (
            "Bank transfer (automatic)",
            "Credit card (automatic)",
            "Electronic check",
            "Mailed check",
        ),
    ),
    Numeric("MonthlyCharges", 0.0, 500.0),
    # Blank for customers in their first month (tenure 0): the one known quirk.
    # Validation turns the blank into NaN and records it; the feature transform
    # fills it with 0.0 (nothing billed yet), never a column median.
    Numeric("TotalCharges", 0.0, 100_000.0),
)

FEATURES_BY_NAME: dict[str, Column] = {c.name: c for c in FEATURE_COLUMNS}
FEATURE_NAMES: tuple[str, ...] = tuple(c.name for c in FEATURE_COLUMNS)
CATEGORICAL_NAMES: tuple[str, ...] = tuple(
    c.name for c in FEATURE_COLUMNS if isinstance(c, Categorical)
)
NUMERIC_NAMES: tuple[str, ...] = tuple(c.name for c in FEATURE_COLUMNS if isinstance(c, Numeric))
ALL_COLUMNS: tuple[str, ...] = (ID_COLUMN, *FEATURE_NAMES, LABEL_COLUMN)

# Columns that may be blank, and only under this condition: TotalCharges when tenure == 0.
BLANK_ALLOWED = {"TotalCharges": ("tenure", 0)}
