"""What the drift service keeps: predictions, windows, labels, triggers (plain frozen records).

The store (`churn_monitoring.store`) writes and reads these; the service and
the trigger build them. Times are timezone-aware UTC datetimes.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any


@dataclass(frozen=True)
class Prediction:
    """One served row: what the model said, to whom, when, and the row's attributes.

    `(event_id, row)` identifies it: the payload logger's `ce-id` and the row's
    position in the request, so a redelivered event stores nothing twice.
    `features` holds the contract's customer attributes of that row.
    `id` and `window_id` are set by the store.
    """

    event_id: str
    row: int
    request_id: str
    customer_id: str | None
    model: str
    model_version: str
    probability: float
    decision: int
    received_at: datetime
    features: dict[str, Any]
    id: int | None = None
    window_id: int | None = None


@dataclass(frozen=True)
class WindowRecord:
    """A tested window: its span, size, drift verdict and label-free estimate.

    `result` is `DriftResult.as_dict()`; `estimate` maps a figure name (for
    example `roc_auc`) to `{"value": .., "low": .., "high": ..}` or is None.
    """

    model: str
    model_version: str
    opened_at: datetime
    closed_at: datetime
    samples: int
    drift: bool
    result: dict[str, Any]
    estimate: dict[str, Any] | None
    id: int | None = None


@dataclass(frozen=True)
class Label:
    """A delayed label: whether the customer churned, as known on `label_date`."""

    customer_id: str
    churned: bool
    label_date: date
    received_at: datetime


@dataclass(frozen=True)
class TriggerRecord:
    """One decision of the retraining trigger with its evidence, and the run it started."""

    model: str
    fired_at: datetime
    state: str
    reason: str
    evidence: dict[str, Any]
    run_id: str | None = None
    run_status: str | None = None
    id: int | None = None
