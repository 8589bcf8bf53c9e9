"""Windows of live predictions: filled in arrival order, closed when full or old.

A window belongs to one model version (its rows are tested against the
detector of the served bundle). It closes when it holds `window_size` rows
(exactly that many: the rest open the next one) or when its first row is
`window_max_age_seconds` old; an old window with fewer than
`min_window_size` rows closes untested (too little evidence, recorded so
its rows are never held forever).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from churn_core.config import DriftConfig
from churn_monitoring.records import Prediction


@dataclass
class OpenWindow:
    """The rows of one model version's window so far."""

    model: str
    model_version: str
    rows: list[Prediction] = field(default_factory=list)

    @property
    def opened_at(self) -> datetime | None:
        """When its first row arrived."""
        return self.rows[0].received_at if self.rows else None


@dataclass(frozen=True)
class ClosedWindow:
    """A window to record: its rows, and whether it has enough of them to be tested."""

    model: str
    model_version: str
    rows: list[Prediction]
    tested: bool
    why: str  # "full", "age" or "too_small"


def take_windows(window: OpenWindow, config: DriftConfig, now: datetime) -> list[ClosedWindow]:
    """Close what is due in `window` (full windows first, then one by age), keep the rest open."""
    out: list[ClosedWindow] = []
    size = config.window_size
    while len(window.rows) >= size:
        rows, window.rows = window.rows[:size], window.rows[size:]
        out.append(ClosedWindow(window.model, window.model_version, rows, True, "full"))
    opened = window.opened_at
    if opened is not None and (now - opened).total_seconds() >= config.window_max_age_seconds:
        rows, window.rows = window.rows, []
        big_enough = len(rows) >= config.min_window_size
        out.append(
            ClosedWindow(
                window.model,
                window.model_version,
                rows,
                big_enough,
                "age" if big_enough else "too_small",
            )
        )
    return out
