"""Delayed labels: the label file, realized performance per cohort, confirmed decay."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import f1_score, roc_auc_score

from churn_core.config import ChurnConfig, FloorsConfig, LabelsConfig, MonitorConfig
from churn_core.errors import InvalidInput
from churn_monitoring.labels import (
    CohortPerformance,
    LabelFileError,
    cohort_start,
    decay_confirmed,
    read_labels,
    realized_performance,
)
from churn_monitoring.records import Label, Prediction, WindowRecord
from churn_monitoring.store import MonitorStore

MONDAY = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)  # a Monday


def config(min_labels: int = 50, cohort_days: int = 7, gap: float = 0.05) -> ChurnConfig:
    labels = LabelsConfig(cohort_days=cohort_days, min_labels=min_labels, max_estimate_gap=gap)
    return ChurnConfig(monitor=MonitorConfig(labels=labels))


# -- the label file -------------------------------------------------------------------
def test_a_csv_label_file_in_every_spelling(tmp_path: Path) -> None:
    path = tmp_path / "labels.csv"
    path.write_text(
        "customerID,churned,date,note\n"
        "7590-VHVEG,Yes,2026-04-01,x\n"
        "5575-GNVDE,no,2026-04-02,\n"
        "3668-QPYBK,1,2026-04-03,\n"
        "7795-CFOCW,0,2026-04-04,\n"
        "9237-HQITU,TRUE,2026-04-05,\n"
        "9305-CDSKC,false,2026-04-06,\n"
        "9305-CDSKC,false,2026-04-06,\n"  # an exact repeat counts once
    )
    received = datetime(2026, 5, 1, tzinfo=UTC)
    labels = read_labels(str(path), received_at=received)
    assert [(lab.customer_id, lab.churned, lab.label_date.day) for lab in labels] == [
        ("7590-VHVEG", True, 1),
        ("5575-GNVDE", False, 2),
        ("3668-QPYBK", True, 3),
        ("7795-CFOCW", False, 4),
        ("9237-HQITU", True, 5),
        ("9305-CDSKC", False, 6),
    ]
    assert all(lab.received_at == received for lab in labels)


def test_a_parquet_label_file_with_native_types(tmp_path: Path) -> None:
    path = tmp_path / "labels.parquet"
    pd.DataFrame(
        {
            "customerID": ["a-1", "b-2", "c-3"],
            "churned": [True, False, True],
            "date": [date(2026, 4, 1), date(2026, 4, 2), date(2026, 4, 3)],
        }
    ).to_parquet(path)
    labels = read_labels(str(path))
    assert [(lab.customer_id, lab.churned, lab.label_date) for lab in labels] == [
        ("a-1", True, date(2026, 4, 1)),
        ("b-2", False, date(2026, 4, 2)),
        ("c-3", True, date(2026, 4, 3)),
    ]
    assert labels[0].received_at.tzinfo is not None
    stamps = tmp_path / "stamps.parquet"
    pd.DataFrame(
        {"customerID": ["a-1"], "churned": [0], "date": [pd.Timestamp("2026-04-09")]}
    ).to_parquet(stamps)
    assert read_labels(str(stamps))[0].label_date == date(2026, 4, 9)


def test_a_bad_label_file_is_refused_whole_with_every_problem(
    tmp_path: Path, monitor_store: MonitorStore
) -> None:
    path = tmp_path / "labels.csv"
    path.write_text(
        "customerID,churned,date\n"
        "ok-1,Yes,2026-04-01\n"
        "ok-2,maybe,2026-04-01\n"
        "ok-3,No,2026-13-01\n"
        ",No,2026-04-01\n"
        "ok-1,No,2026-04-01\n"
        "ok-5,,04/01/2026\n"
    )
    with pytest.raises(LabelFileError) as caught:
        monitor_store.add_labels(read_labels(str(path)))
    found = [(p.row, p.column, p.value) for p in caught.value.problems]
    assert found == [
        (2, "churned", "maybe"),
        (3, "date", "2026-13-01"),
        (4, "customerID", ""),
        (5, "churned", "No"),
        (6, "churned", ""),
        (6, "date", "04/01/2026"),
    ]
    message = str(caught.value)
    assert "6 problem(s)" in message and "contradicts row 1" in message
    assert "not an ISO date" in message and isinstance(caught.value, InvalidInput)
    assert monitor_store.counts()["labels"] == 0


def test_a_label_file_without_its_columns_or_of_another_kind(tmp_path: Path) -> None:
    path = tmp_path / "labels.csv"
    path.write_text("customer,churned\nx,Yes\n")
    with pytest.raises(LabelFileError) as caught:
        read_labels(str(path))
    assert [(p.column, p.row) for p in caught.value.problems] == [
        ("customerID", None),
        ("date", None),
    ]
    empty = tmp_path / "empty.csv"
    empty.write_text("customerID,churned,date\n")
    with pytest.raises(LabelFileError, match="no label rows"):
        read_labels(str(empty))
    with pytest.raises(InvalidInput, match=r"\.csv or \.parquet"):
        read_labels(str(tmp_path / "labels.json"))
    with pytest.raises(InvalidInput, match="not found"):
        read_labels(str(tmp_path / "absent.csv"))


# -- realized performance ---------------------------------------------------------------
def populate(
    store: MonitorStore,
    n: int,
    start: datetime,
    version: str = "1",
    seed: int = 0,
    prefix: str = "c",
    label_share: float = 1.0,
    churn_shift: float = 0.0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """n predictions over the rest of the week of `start` (a Monday, 10:00), labels for a share.

    Returns (probability, decision, churned) of the labelled ones.
    """
    rng = np.random.default_rng(seed)
    p = rng.uniform(0.02, 0.98, n)
    y = (rng.uniform(size=n) < np.clip(p + churn_shift, 0, 1)).astype(int)
    decision = (p >= 0.4).astype(int)
    times = [start + timedelta(hours=float(h)) for h in rng.uniform(0, 6 * 24 + 13, n)]
    preds = [
        Prediction(
            event_id=f"{prefix}-{version}-{i}",
            row=0,
            request_id=f"r{i}",
            customer_id=f"{prefix}{i}",
            model="churn",
            model_version=version,
            probability=float(p[i]),
            decision=int(decision[i]),
            received_at=times[i],
            features={},
        )
        for i in range(n)
    ]
    store.add_predictions(preds)
    labelled = rng.uniform(size=n) < label_share
    store.add_labels(
        [
            Label(f"{prefix}{i}", bool(y[i]), times[i].date() + timedelta(days=40), start)
            for i in range(n)
            if labelled[i]
        ]
    )
    return p[labelled], decision[labelled], y[labelled]


def by_hand_ece(y: np.ndarray, p: np.ndarray, bins: int) -> float:
    total = 0.0
    for b in range(bins):
        lo, hi = b / bins, (b + 1) / bins
        inside = (p >= lo) & ((p < hi) if b < bins - 1 else (p <= hi))
        if inside.any():
            total += abs(p[inside].mean() - y[inside].mean()) * inside.sum()
    return total / len(p)


def test_realized_figures_equal_sklearns(monitor_store: MonitorStore) -> None:
    p, d, y = populate(monitor_store, 300, MONDAY)
    (cohort,) = realized_performance(monitor_store, "churn", config())
    assert (cohort.start, cohort.end) == (date(2026, 3, 2), date(2026, 3, 9))
    assert (cohort.predictions, cohort.labelled, cohort.churned) == (300, 300, int(y.sum()))
    assert cohort.scored
    assert cohort.roc_auc == pytest.approx(roc_auc_score(y, p), abs=1e-12)
    assert cohort.f1 == pytest.approx(f1_score(y, d), abs=1e-12)
    assert cohort.ece == pytest.approx(by_hand_ece(y, p, 10), abs=1e-12)
    assert cohort.mean_probability == pytest.approx(p.mean())
    assert cohort.observed_rate == pytest.approx(y.mean())
    assert cohort.estimated_roc_auc is None and cohort.gap is None and not cohort.diverged


def test_cohorts_per_week_and_per_model_version(monitor_store: MonitorStore) -> None:
    populate(monitor_store, 80, MONDAY, version="1", seed=1, prefix="a")
    populate(monitor_store, 80, MONDAY + timedelta(days=7), version="1", seed=2, prefix="b")
    populate(monitor_store, 60, MONDAY + timedelta(days=7), version="2", seed=3, prefix="c")
    cohorts = realized_performance(monitor_store, "churn", config())
    assert [(c.start, c.model_version, c.predictions) for c in cohorts] == [
        (date(2026, 3, 2), "1", 80),
        (date(2026, 3, 9), "1", 80),
        (date(2026, 3, 9), "2", 60),
    ]
    assert cohort_start(date(2026, 3, 8), 7) == date(2026, 3, 2)  # Sunday: the week's end
    assert cohort_start(date(2026, 3, 9), 1) == date(2026, 3, 9)
    assert cohort_start(date(2026, 3, 9), 14) in (date(2026, 3, 2), date(2026, 3, 9))


def test_a_cohort_is_scored_only_once_min_labels_are_in(monitor_store: MonitorStore) -> None:
    populate(monitor_store, 100, MONDAY, seed=4, label_share=0.3)
    (early,) = realized_performance(monitor_store, "churn", config(min_labels=60))
    assert early.labelled < 60 and early.predictions == 100
    assert not early.scored
    assert (early.roc_auc, early.f1, early.ece, early.observed_rate) == (None, None, None, None)
    # the rest of the labels arrive
    populate(monitor_store, 100, MONDAY, seed=4, label_share=1.0)
    (late,) = realized_performance(monitor_store, "churn", config(min_labels=60))
    assert late.labelled == 100 and late.scored and late.roc_auc is not None


def test_a_one_class_cohort_has_no_auc_and_no_nan(monitor_store: MonitorStore) -> None:
    populate(monitor_store, 60, MONDAY, seed=5, churn_shift=-1.0)  # nobody churned
    (cohort,) = realized_performance(monitor_store, "churn", config(min_labels=50))
    assert cohort.scored and cohort.churned == 0
    assert cohort.roc_auc is None and cohort.f1 is None
    assert cohort.ece is not None and cohort.observed_rate == 0.0
    assert not any(isinstance(v, float) and np.isnan(v) for v in cohort.as_dict().values())


def test_the_gap_between_the_estimate_and_the_realized_figure(monitor_store: MonitorStore) -> None:
    p, _, y = populate(monitor_store, 200, MONDAY, seed=6)
    realized = roc_auc_score(y, p)
    ids = [r.id for r in monitor_store.open_rows("churn") if r.id is not None]
    for part, value in ((ids[:100], realized + 0.10), (ids[100:], realized + 0.04)):
        monitor_store.close_window(
            WindowRecord(
                model="churn",
                model_version="1",
                opened_at=MONDAY,
                closed_at=MONDAY + timedelta(days=7),
                samples=len(part),
                drift=False,
                result={},
                estimate={"roc_auc": {"value": value, "low": value - 0.05, "high": value + 0.05}},
            ),
            part,
        )
    (cohort,) = realized_performance(monitor_store, "churn", config())
    assert cohort.estimate_windows == 2
    assert cohort.estimated_roc_auc == pytest.approx(realized + 0.07)
    assert cohort.gap == pytest.approx(0.07)
    assert cohort.diverged
    (tolerant,) = realized_performance(monitor_store, "churn", config(gap=0.08))
    assert not tolerant.diverged


def test_the_label_relation_changed_shows_as_a_divergence(monitor_store: MonitorStore) -> None:
    # concept drift: churn no longer follows the served probability
    n = 300
    rng = np.random.default_rng(1007)  # not the seed of the predictions
    populate(monitor_store, n, MONDAY, seed=7, churn_shift=0.0)
    flipped = [
        Label(f"c{i}", bool(rng.uniform() < 0.3), (MONDAY + timedelta(days=30)).date(), MONDAY)
        for i in range(n)
    ]
    ids = [r.id for r in monitor_store.open_rows("churn") if r.id is not None]
    monitor_store.close_window(
        WindowRecord(
            "churn",
            "1",
            MONDAY,
            MONDAY + timedelta(days=7),
            n,
            False,
            {},
            {"roc_auc": {"value": 0.83, "low": 0.8, "high": 0.86}},
        ),
        ids,
    )
    (before,) = realized_performance(monitor_store, "churn", config())
    assert before.roc_auc is not None and not before.diverged
    # labels dated before the first ones (day + 40), drawn without regard to the model
    monitor_store.add_labels(flipped)
    (after,) = realized_performance(monitor_store, "churn", config())
    assert after.roc_auc is not None and abs(after.roc_auc - 0.5) < 0.1
    assert after.diverged and after.gap is not None and after.gap > 0.2


# -- decay --------------------------------------------------------------------------------
def cohort(
    week: int, roc: float | None, f1: float | None, version: str = "1", scored: bool = True
) -> CohortPerformance:
    start = date(2026, 3, 2) + timedelta(days=7 * week)
    return CohortPerformance(
        model_version=version,
        start=start,
        end=start + timedelta(days=7),
        predictions=300,
        labelled=300 if scored else 10,
        churned=80,
        scored=scored,
        roc_auc=roc if scored else None,
        f1=f1 if scored else None,
        ece=0.02,
        mean_probability=0.26,
        observed_rate=0.27,
        estimated_roc_auc=None,
        estimate_windows=0,
        gap=None,
        diverged=False,
    )


FLOORS = FloorsConfig(roc_auc=0.75, f1=0.5)
GOOD, LOW = 0.82, 0.70


@pytest.mark.parametrize(
    ("history", "k", "confirmed", "figures"),
    [
        ([(GOOD, 0.6), (LOW, 0.6), (LOW, 0.6)], 2, True, ("roc_auc",)),
        ([(LOW, 0.4), (LOW, 0.4)], 2, True, ("roc_auc", "f1")),
        ([(GOOD, 0.4), (GOOD, 0.45), (GOOD, 0.3)], 3, True, ("f1",)),
        ([(LOW, 0.6), (GOOD, 0.6), (LOW, 0.6)], 2, False, ()),  # not in a row
        ([(LOW, 0.6), (LOW, 0.6), (GOOD, 0.6)], 2, False, ()),  # recovered: newest is good
        ([(LOW, 0.6)], 2, False, ()),  # too few scored cohorts
        ([(LOW, 0.6), (None, 0.6), (LOW, 0.6)], 2, False, ()),  # undefined AUC breaks the run
        ([(LOW, 0.4), (GOOD, 0.45)], 2, True, ("f1",)),  # one figure suffices
        ([(0.75, 0.5), (0.75, 0.5)], 2, False, ()),  # at the floor is not below it
    ],
)
def test_decay_needs_k_scored_cohorts_in_a_row_below_a_floor(
    history: list[tuple[float | None, float]], k: int, confirmed: bool, figures: tuple[str, ...]
) -> None:
    cohorts = [cohort(i, roc, f1) for i, (roc, f1) in enumerate(history)]
    decay = decay_confirmed(cohorts, FLOORS, k)
    assert decay.confirmed is confirmed
    assert decay.figures == figures
    if confirmed:
        assert decay.cohorts == tuple(cohorts[-k:])
        assert decay.model_version == "1"
        assert all(f"< {decay.floors[f]}" in decay.reason for f in figures)
        assert decay.as_dict()["cohorts"][0]["start"] == cohorts[-k].start.isoformat()


def test_decay_skips_unscored_cohorts_and_judges_one_version() -> None:
    cohorts = [
        cohort(0, LOW, 0.6),
        cohort(1, None, None, scored=False),  # labels still maturing: not evidence either way
        cohort(1, GOOD, 0.6, version="2"),
        cohort(2, LOW, 0.6),
    ]
    assert decay_confirmed(cohorts, FLOORS, 2).confirmed  # the newest cohort's version: 1
    judged_v2 = decay_confirmed(cohorts, FLOORS, 1, model_version="2")
    assert not judged_v2.confirmed and judged_v2.model_version == "2"
    assert not decay_confirmed([], FLOORS, 1).confirmed
    with pytest.raises(InvalidInput):
        decay_confirmed(cohorts, FLOORS, 0)


def test_a_csv_with_a_byte_order_mark_and_float_answers(tmp_path: Path) -> None:
    path = tmp_path / "labels.csv"
    path.write_bytes("customerID,churned,date\nx-1,Yes,2026-04-01\n".encode("utf-8-sig"))
    assert read_labels(str(path))[0].customer_id == "x-1"
    floats = tmp_path / "floats.parquet"
    pd.DataFrame(
        {"customerID": ["a", "b", "c"], "churned": [1.0, 0.0, 0.5], "date": ["2026-04-01"] * 3}
    ).to_parquet(floats)
    with pytest.raises(LabelFileError) as caught:
        read_labels(str(floats))
    assert [(p.row, p.column, p.value) for p in caught.value.problems] == [(3, "churned", "0.5")]
