"""Delayed labels: the label file, realized performance per cohort, and confirmed decay.

Churn labels mature weeks after the prediction. `read_labels` reads a label
file (CSV or Parquet: `customerID`, `churned`, `date`) and refuses a bad file
whole, listing every problem. `realized_performance` joins the stored labels
to the logged predictions (`MonitorStore.labelled_predictions`) and scores each
prediction cohort of each model version once enough of its labels are in,
beside the label-free estimate its windows carried. `decay_confirmed` says
whether a realized figure stayed below its floor in the newest k scored
cohorts.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import numpy as np
import pandas as pd
from sklearn.metrics import f1_score, roc_auc_score

from churn_core.config import ChurnConfig, FloorsConfig
from churn_core.errors import InvalidInput
from churn_model.calibration import expected_calibration_error
from churn_monitoring.records import Label

if TYPE_CHECKING:
    from churn_monitoring.store import MonitorStore

ID = "customerID"
CHURNED = "churned"
DATE = "date"
COLUMNS = (ID, CHURNED, DATE)
ID_MAX_LENGTH = 64  # as the server accepts a customerID input
TRUE = ("yes", "1", "true")
FALSE = ("no", "0", "false")
# cohorts are counted from a Monday, so 7-day cohorts are calendar weeks (Monday to Sunday)
COHORT_ANCHOR = date(1970, 1, 5)
FIGURES = ("roc_auc", "f1")


# -- the label file -------------------------------------------------------------------
@dataclass(frozen=True)
class LabelProblem:
    """One thing wrong in a label file; `row` is the 1-based data row (None: the whole file)."""

    row: int | None
    column: str | None
    value: str | None
    reason: str

    def __str__(self) -> str:
        """`row 3, column 'date', value '2026-13-01': not an ISO date (YYYY-MM-DD)`."""
        where = [f"row {self.row}" if self.row is not None else "file"]
        if self.column is not None:
            where.append(f"column {self.column!r}")
        if self.value is not None:
            where.append(f"value {self.value!r}")
        return f"{', '.join(where)}: {self.reason}"


class LabelFileError(InvalidInput):
    """A label file with problems; nothing of it is stored. `problems` lists them all."""

    def __init__(self, path: str, problems: Sequence[LabelProblem]) -> None:
        """Build the message from every problem (the first 50 spelled out)."""
        self.path = path
        self.problems = list(problems)
        shown = "\n  ".join(str(p) for p in self.problems[:50])
        more = len(self.problems) - 50
        tail = f"\n  ... and {more} more" if more > 0 else ""
        super().__init__(f"label file {path}: {len(self.problems)} problem(s)\n  {shown}{tail}")


def read_labels(path: str, received_at: datetime | None = None) -> list[Label]:
    """The labels of a CSV or Parquet file (`customerID`, `churned`, `date`), all or nothing.

    `churned` is Yes/No, 1/0 or true/false (any case); `date` an ISO date
    (YYYY-MM-DD). Other columns are ignored. Rows repeating a (customer, date)
    with the same answer count once; with different answers they are a problem.

    Raises:
        LabelFileError: listing every problem (row, column, value, reason).
        InvalidInput: the file cannot be read at all.
    """
    frame = _read_frame(path)
    received = received_at or datetime.now(UTC)
    problems: list[LabelProblem] = []
    absent = [c for c in COLUMNS if c not in frame.columns]
    for c in absent:
        problems.append(
            LabelProblem(None, c, None, f"missing column (found {list(frame.columns)})")
        )
    if absent:
        raise LabelFileError(path, problems)
    if frame.empty:
        raise LabelFileError(path, [LabelProblem(None, None, None, "no label rows")])
    seen: dict[tuple[str, date], tuple[int, bool]] = {}
    out: list[Label] = []
    for i, (cid, churned, day) in enumerate(
        zip(frame[ID].tolist(), frame[CHURNED].tolist(), frame[DATE].tolist(), strict=True),
        start=1,
    ):
        row_problems = len(problems)
        customer = _customer(cid, i, problems)
        answer = _churned(churned, i, problems)
        label_date = _date(day, i, problems)
        if len(problems) > row_problems or customer is None or answer is None:
            continue
        if label_date is None:
            continue
        key = (customer, label_date)
        if key in seen:
            first_row, first_answer = seen[key]
            if first_answer != answer:
                problems.append(
                    LabelProblem(
                        i,
                        CHURNED,
                        _text(churned),
                        f"contradicts row {first_row} for the same customer and date",
                    )
                )
            continue
        seen[key] = (i, answer)
        out.append(Label(customer, answer, label_date, received))
    if problems:
        raise LabelFileError(path, problems)
    return out


def _read_frame(path: str) -> pd.DataFrame:
    suffix = Path(path).suffix.lower()
    try:
        if suffix in (".parquet", ".pq"):
            return pd.read_parquet(path)
        if suffix == ".csv":
            return pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8-sig")
    except FileNotFoundError as err:
        raise InvalidInput(f"label file {path}: not found") from err
    except (OSError, ValueError, pd.errors.ParserError) as err:
        raise InvalidInput(f"label file {path}: cannot be read ({err})") from err
    raise InvalidInput(f"label file {path}: expected a .csv or .parquet file, not {suffix!r}")


def _text(value: Any) -> str:
    return "" if value is None else str(value)


def _missing(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, float) and math.isnan(value):
        return True
    if value is pd.NaT or value is pd.NA:
        return True
    return isinstance(value, str) and value.strip() == ""


def _customer(value: Any, row: int, problems: list[LabelProblem]) -> str | None:
    if _missing(value):
        problems.append(LabelProblem(row, ID, _text(value), "empty customer id"))
        return None
    if not isinstance(value, str):
        problems.append(LabelProblem(row, ID, _text(value), "a customer id must be text"))
        return None
    if not value.isprintable() or value != value.strip():
        problems.append(
            LabelProblem(row, ID, value, "not an id (printable, no surrounding spaces)")
        )
        return None
    if len(value) > ID_MAX_LENGTH:
        problems.append(
            LabelProblem(row, ID, value[:80], f"longer than {ID_MAX_LENGTH} characters")
        )
        return None
    return value


def _churned(value: Any, row: int, problems: list[LabelProblem]) -> bool | None:
    if isinstance(value, bool | np.bool_):
        return bool(value)
    if isinstance(value, int | float | np.integer | np.floating) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        word = value.strip().lower()
        if word in TRUE:
            return True
        if word in FALSE:
            return False
    reason = "empty" if _missing(value) else "not Yes/No, 1/0 or true/false"
    problems.append(LabelProblem(row, CHURNED, _text(value), reason))
    return None


def _date(value: Any, row: int, problems: list[LabelProblem]) -> date | None:
    if isinstance(value, datetime | pd.Timestamp) and not pd.isna(value):
        return value.date()
    if isinstance(value, date):
        return value
    if isinstance(value, str) and len(value.strip()) == 10:
        try:
            return date.fromisoformat(value.strip())
        except ValueError:
            pass
    reason = "empty" if _missing(value) else "not an ISO date (YYYY-MM-DD)"
    problems.append(LabelProblem(row, DATE, _text(value), reason))
    return None


# -- realized performance ---------------------------------------------------------------
@dataclass(frozen=True)
class CohortPerformance:
    """The realized figures of one prediction cohort of one model version.

    A cohort is the predictions received in `cohort_days` UTC days from
    `start` (inclusive) to `end` (exclusive). The figures are None until
    `labelled >= min_labels` (`scored`); `roc_auc` stays None when the labels
    hold one class only, `f1` when they hold no churner. `estimated_roc_auc`
    is the mean label-free estimate of the windows the cohort's predictions
    were tested in; `gap = estimated - realized`.
    """

    model_version: str
    start: date
    end: date
    predictions: int
    labelled: int
    churned: int
    scored: bool
    roc_auc: float | None
    f1: float | None
    ece: float | None
    mean_probability: float | None
    observed_rate: float | None
    estimated_roc_auc: float | None
    estimate_windows: int
    gap: float | None
    diverged: bool

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready (dates as ISO strings)."""
        out = asdict(self)
        out["start"] = self.start.isoformat()
        out["end"] = self.end.isoformat()
        return out


def cohort_start(day: date, cohort_days: int) -> date:
    """The first day of the cohort `day` falls in (cohorts counted from a Monday)."""
    offset = (day - COHORT_ANCHOR).days // cohort_days
    return COHORT_ANCHOR + timedelta(days=offset * cohort_days)


def realized_performance(
    store: MonitorStore, model: str, config: ChurnConfig
) -> list[CohortPerformance]:
    """Realized ROC-AUC, F1 and calibration per model version and cohort, oldest first.

    Each prediction counts with the first label of its customer dated on or
    after its day. Windows' `estimate["roc_auc"]["value"]` gives the estimate
    compared with the realized ROC-AUC (`diverged` when the gap exceeds
    `monitor.labels.max_estimate_gap`).
    """
    frame = store.labelled_predictions(model)
    estimates: dict[int | None, float] = {}
    for w in store.windows(model):
        value = _estimated_auc(w.estimate)
        if value is not None:
            estimates[w.id] = value
    return score_cohorts(frame, estimates, config)


def _estimated_auc(estimate: dict[str, Any] | None) -> float | None:
    """`estimate["roc_auc"]["value"]` when present and finite (a window may carry none)."""
    entry = (estimate or {}).get("roc_auc")
    value = entry.get("value") if isinstance(entry, dict) else None
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return None


def score_cohorts(
    frame: pd.DataFrame, estimates: dict[int | None, float], config: ChurnConfig
) -> list[CohortPerformance]:
    """`realized_performance` on a `labelled_predictions` frame and the windows' estimates."""
    if frame.empty:
        return []
    days = config.monitor.labels.cohort_days
    frame = frame.assign(
        cohort=[cohort_start(t.date(), days) for t in frame["received_at"].dt.tz_convert(UTC)]
    )
    out = []
    for key, group in frame.groupby(["cohort", "model_version"], sort=True):
        start, version = cast(tuple[date, str], key)
        out.append(_score_one(str(version), start, days, group, estimates, config))
    return out


def _score_one(
    version: str,
    start: date,
    days: int,
    group: pd.DataFrame,
    estimates: dict[int | None, float],
    config: ChurnConfig,
) -> CohortPerformance:
    labels_cfg = config.monitor.labels
    known = group[group["churned"].notna()]
    y = known["churned"].astype(bool).to_numpy().astype(np.int64)
    p = known["probability"].to_numpy(dtype=np.float64)
    d = known["decision"].to_numpy(dtype=np.int64)
    window_ids = {int(w) for w in group["window_id"].dropna().tolist()}
    values = [estimates[w] for w in sorted(window_ids) if w in estimates]
    estimated = float(np.mean(values)) if values else None
    scored = len(y) >= labels_cfg.min_labels
    roc = f1 = ece = mean_p = rate = gap = None
    if scored:
        if 0 < y.sum() < len(y):
            roc = float(roc_auc_score(y, p))
        if y.sum() > 0:
            f1 = float(f1_score(y, d, zero_division=0.0))
        ece = expected_calibration_error(y, p, config.evaluation.ece_bins)
        mean_p = float(p.mean())
        rate = float(y.mean())
        if roc is not None and estimated is not None:
            gap = estimated - roc
    return CohortPerformance(
        model_version=version,
        start=start,
        end=start + timedelta(days=days),
        predictions=len(group),
        labelled=len(y),
        churned=int(y.sum()),
        scored=scored,
        roc_auc=roc,
        f1=f1,
        ece=ece,
        mean_probability=mean_p,
        observed_rate=rate,
        estimated_roc_auc=estimated,
        estimate_windows=len(values),
        gap=gap,
        diverged=gap is not None and abs(gap) > labels_cfg.max_estimate_gap,
    )


# -- decay --------------------------------------------------------------------------------
@dataclass(frozen=True)
class Decay:
    """Whether realized decay is confirmed, and the cohorts that show it."""

    confirmed: bool
    model_version: str | None
    figures: tuple[str, ...]  # the figures below their floor in each of the k cohorts
    k: int
    floors: dict[str, float]
    cohorts: tuple[CohortPerformance, ...] = field(default=())  # the newest k scored ones
    reason: str = ""

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready evidence for a trigger record."""
        return {
            "confirmed": self.confirmed,
            "model_version": self.model_version,
            "figures": list(self.figures),
            "k": self.k,
            "floors": dict(self.floors),
            "cohorts": [c.as_dict() for c in self.cohorts],
            "reason": self.reason,
        }


def decay_confirmed(
    cohorts: Sequence[CohortPerformance],
    floors: FloorsConfig,
    k: int,
    model_version: str | None = None,
) -> Decay:
    """Decay: a realized ROC-AUC or F1 below its floor in each of the newest k scored cohorts.

    `cohorts` is oldest first (as `realized_performance` returns them). Only
    one model version is judged: `model_version`, or that of the newest
    cohort. A figure that is undefined in a cohort (one class) breaks the run.
    """
    if k < 1:
        raise InvalidInput(f"decay_confirmed: k must be >= 1, got {k}")
    limits = {"roc_auc": floors.roc_auc, "f1": floors.f1}
    version = (
        model_version
        if model_version is not None
        else (cohorts[-1].model_version if cohorts else None)
    )
    scored = [c for c in cohorts if c.scored and c.model_version == version]
    newest = tuple(scored[-k:])
    if len(newest) < k:
        return Decay(
            False,
            version,
            (),
            k,
            limits,
            newest,
            f"{len(newest)} scored cohort(s) of version {version}, {k} needed",
        )
    below = tuple(
        name
        for name in FIGURES
        if all((v := getattr(c, name)) is not None and v < limits[name] for c in newest)
    )
    if not below:
        return Decay(
            False,
            version,
            (),
            k,
            limits,
            newest,
            f"no figure below its floor in each of the last {k} scored cohorts",
        )
    detail = "; ".join(
        f"{name} " + ", ".join(f"{getattr(c, name):.3f}" for c in newest) + f" < {limits[name]}"
        for name in below
    )
    return Decay(
        True,
        version,
        below,
        k,
        limits,
        newest,
        f"version {version}: {detail} in the last {k} scored cohorts "
        f"({newest[0].start.isoformat()} to {newest[-1].end.isoformat()})",
    )
