"""A synthetic stand-in for the Telco data set: same 21 columns, realistic relations.

Used when the real CSV is not available (tests, a fresh laptop). It is never
to be mistaken for the real data:

* every customer id has the form ``SYNTH-000001`` (`SYNTHETIC_ID_PREFIX`), which
  cannot occur in the real data (ids there look like ``7590-VHVEG``). The mark
  lives inside the data itself, so it survives any copy, upload or transport
  (a sidecar file or a header comment would be lost or break the CSV);
* `is_synthetic` recognises it, and every stage (ingest -> validate ->
  preprocess -> features) records ``synthetic: true`` in its metadata and logs
  a loud warning.

Relations built in (roughly the real data's): churn is more likely on a
month-to-month contract, early in tenure, with fibre optic internet, paying by
electronic check, without tech support or online security, with paperless
billing, for seniors, and with higher monthly charges; the intercept is tuned
so the churn share is ~26.5%. Monthly charges follow the subscribed services;
``TotalCharges ~ tenure * MonthlyCharges`` with noise, blank (a single space,
like the real file) for tenure 0.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd

from churn_model.contract import ALL_COLUMNS, ID_COLUMN

logger = logging.getLogger(__name__)

SYNTHETIC_ID_PREFIX = "SYNTH-"
TARGET_CHURN_SHARE = 0.265
BANNER = (
    "*** SYNTHETIC DATA *** GENERATED, NOT THE REAL TELCO DATA SET: "
    "metrics on it say nothing about the real customers"
)


def is_synthetic(ids: Iterable[object]) -> bool:
    """True when any customer id carries the synthetic prefix."""
    return any(isinstance(i, str) and i.startswith(SYNTHETIC_ID_PREFIX) for i in ids)


def announce(what: str) -> None:
    """Log the loud warning that synthetic data is in use."""
    logger.warning("%s (%s)", BANNER, what)


def _choice(
    rng: np.random.Generator, options: tuple[str, ...], p: np.ndarray, n: int
) -> np.ndarray:
    """Per-row categorical draw; `p` has shape (n, len(options)) or (len(options),)."""
    probs = np.broadcast_to(np.asarray(p, dtype=np.float64), (n, len(options)))
    cum = np.cumsum(probs / probs.sum(axis=1, keepdims=True), axis=1)
    idx = (rng.random(n)[:, None] > cum).sum(axis=1)
    return np.asarray(options, dtype=object)[np.minimum(idx, len(options) - 1)]


def generate_frame(rows: int = 7043, seed: int = 0) -> pd.DataFrame:
    """Generate `rows` customers as the raw table (strings and numbers, like the CSV).

    Deterministic for a given (rows, seed). `TotalCharges` is a string column
    with ``" "`` for tenure-0 customers, exactly like the real file.
    """
    if rows <= 0:
        raise ValueError(f"rows must be positive, got {rows}")
    rng = np.random.default_rng(seed)
    n = rows

    def yes(p: np.ndarray | float) -> np.ndarray:
        return rng.random(n) < p

    gender = np.where(yes(0.5), "Male", "Female").astype(object)
    senior = yes(0.16).astype(np.int64)
    partner = yes(0.48)
    dependents = yes(np.where(partner, 0.5, 0.1))
    # Tenure: about 0.15% brand new (0), the rest a mix of early-life and long-standing.
    early = rng.integers(1, 13, n)
    anywhere = rng.integers(1, 73, n)
    tenure = np.where(yes(0.3), early, anywhere)
    tenure = np.where(yes(0.0016), 0, tenure).astype(np.int64)

    # Contract: longer tenure -> longer contracts.
    t = tenure / 72.0
    p_contract = np.column_stack(
        [np.exp(1.6 - 2.8 * t), np.exp(-0.6 + 0.9 * t), np.exp(-1.2 + 2.2 * t)]
    )
    contract = _choice(rng, ("Month-to-month", "One year", "Two year"), p_contract, n)
    m2m = contract == "Month-to-month"

    phone = yes(0.9)
    multiple = np.where(~phone, "No phone service", np.where(yes(0.42 + 0.2 * t), "Yes", "No"))
    internet = _choice(rng, ("DSL", "Fiber optic", "No"), np.asarray([0.34, 0.44, 0.22]), n)
    has_net = internet != "No"
    fiber = internet == "Fiber optic"

    def addon(p: np.ndarray | float) -> np.ndarray:
        return np.where(~has_net, "No internet service", np.where(yes(p), "Yes", "No")).astype(
            object
        )

    security = addon(np.where(fiber, 0.25, 0.45) + 0.2 * t)
    backup = addon(0.35 + 0.2 * t)
    protection = addon(0.35 + 0.2 * t)
    support = addon(np.where(fiber, 0.25, 0.45) + 0.2 * t)
    tv = addon(np.where(fiber, 0.55, 0.3))
    movies = addon(np.where(fiber, 0.55, 0.3))
    paperless = yes(np.where(fiber, 0.75, 0.5))
    p_pay = np.column_stack(
        [
            np.full(n, 0.22),
            np.full(n, 0.21),
            np.where(m2m, 0.48, 0.15),
            np.where(m2m, 0.2, 0.28),
        ]
    )
    payment = _choice(
        rng,
        (
            "Bank transfer (automatic)",
            "Credit card (automatic)",
            "Electronic check",
            "Mailed check",
        ),
        p_pay,
        n,
    )

    monthly = (
        np.where(phone, 20.0, 0.0)
        + np.where(multiple == "Yes", 5.0, 0.0)
        + np.where(internet == "DSL", 25.0, 0.0)
        + np.where(fiber, 50.0, 0.0)
        + 5.0 * ((security == "Yes").astype(float) + (backup == "Yes") + (protection == "Yes"))
        + 5.0 * (support == "Yes")
        + 10.0 * ((tv == "Yes").astype(float) + (movies == "Yes"))
        + rng.normal(0.0, 2.0, n)
    )
    monthly = np.round(np.clip(monthly, 18.25, 118.75), 2)
    total = np.round(np.maximum(tenure * monthly * (1.0 + rng.normal(0.0, 0.05, n)), monthly), 2)
    # Written like the real file: shortest decimal form, a single space when tenure is 0.
    total_text = np.asarray(
        [" " if t == 0 else repr(float(v)) for t, v in zip(tenure, total, strict=True)],
        dtype=object,
    )

    logit = (
        1.3 * m2m
        - 0.5 * (contract == "Two year")
        - 1.6 * np.log1p(tenure) / np.log(73.0)
        + 0.8 * fiber
        - 0.6 * ~has_net
        + 0.5 * (payment == "Electronic check")
        + 0.45 * (support == "No")
        + 0.45 * (security == "No")
        + 0.3 * paperless
        + 0.3 * senior
        + 0.012 * (monthly - 65.0)
        - 0.15 * partner
        - 0.2 * dependents
    )
    intercept = _intercept_for_share(logit, TARGET_CHURN_SHARE)
    churn = rng.random(n) < 1.0 / (1.0 + np.exp(-(intercept + logit)))

    def yn(mask: np.ndarray) -> np.ndarray:
        return np.where(mask, "Yes", "No").astype(object)

    frame = pd.DataFrame(
        {
            ID_COLUMN: [f"{SYNTHETIC_ID_PREFIX}{i:06d}" for i in range(1, n + 1)],
            "gender": gender,
            "SeniorCitizen": senior,
            "Partner": yn(partner),
            "Dependents": yn(dependents),
            "tenure": tenure,
            "PhoneService": yn(phone),
            "MultipleLines": multiple.astype(object),
            "InternetService": internet,
            "OnlineSecurity": security,
            "OnlineBackup": backup,
            "DeviceProtection": protection,
            "TechSupport": support,
            "StreamingTV": tv,
            "StreamingMovies": movies,
            "Contract": contract,
            "PaperlessBilling": yn(paperless),
            "PaymentMethod": payment,
            "MonthlyCharges": monthly,
            "TotalCharges": total_text,
            "Churn": yn(churn),
        },
        columns=list(ALL_COLUMNS),
    )
    return frame


def _intercept_for_share(logit: np.ndarray, share: float) -> float:
    """The intercept whose mean predicted probability is `share` (bisection)."""
    lo, hi = -10.0, 10.0
    for _ in range(60):
        mid = (lo + hi) / 2
        if np.mean(1.0 / (1.0 + np.exp(-(mid + logit)))) < share:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2


def generate_csv_bytes(rows: int = 7043, seed: int = 0) -> bytes:
    """The synthetic table as CSV bytes (announced loudly)."""
    announce(f"generated {rows} rows with seed {seed}")
    buf = io.StringIO()
    generate_frame(rows, seed).to_csv(buf, index=False)
    return buf.getvalue().encode()


def write_synthetic_csv(path: str | Path, rows: int = 7043, seed: int = 0) -> Path:
    """Write the synthetic table to `path` (parents created); return the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    data = generate_csv_bytes(rows, seed)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    tmp.replace(path)
    logger.warning("%s: written to %s", BANNER, path)
    return path
