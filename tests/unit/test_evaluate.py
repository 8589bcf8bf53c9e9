"""Evaluation: metrics on hand cases, thresholds, calibration, the leakage guard."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from churn_components.training.calibrate import fit_isotonic, fit_sigmoid
from churn_components.training.evaluate import (
    LeakageSuspected,
    best_f1_threshold,
    best_profit_threshold,
    choose_calibration,
    classification_metrics,
    empirical_best_f1_threshold,
    evaluate_candidate,
    expected_profit,
    leakage_guard,
)
from churn_components.training.train import labels, train_candidate
from churn_core.config import EconomicsConfig
from churn_model.calibration import expected_calibration_error
from churn_model.features import ChurnFeatures
from tests.fixtures.training import small_config

ECON = EconomicsConfig(offer_cost=50.0, customer_value=500.0, offer_acceptance=0.3)


def test_ece_hand_cases() -> None:
    y = np.array([0, 0, 1, 1])
    # two bins, each off by 0.1: ECE 0.1
    assert expected_calibration_error(y, np.array([0.1, 0.1, 0.9, 0.9]), 10) == pytest.approx(0.1)
    # one bin holding everything, mean p 0.5 vs rate 0.5: perfectly calibrated
    assert expected_calibration_error(y, np.full(4, 0.5), 10) == pytest.approx(0.0)
    # p = 1.0 falls in the last bin (not out of range); |1 - 0.5| weighted by 1/2
    assert expected_calibration_error(np.array([1, 0]), np.array([1.0, 1.0]), 10) == pytest.approx(
        0.5
    )
    # weighting by bin share: 3 rows at 0.3 (rate 1/3), 1 row at 0.95 (rate 0)
    y2 = np.array([1, 0, 0, 0])
    p2 = np.array([0.3, 0.3, 0.3, 0.95])
    expected = 0.75 * abs(0.3 - 1 / 3) + 0.25 * 0.95
    assert expected_calibration_error(y2, p2, 10) == pytest.approx(expected)


def test_classification_metrics_hand_case() -> None:
    y = np.array([1, 1, 1, 0, 0, 0, 0, 0])
    p = np.array([0.9, 0.8, 0.3, 0.7, 0.2, 0.2, 0.1, 0.1])
    m = classification_metrics(y, p, threshold=0.5, bins=10, econ=ECON)
    # predicted positive: 0.9, 0.8, 0.7 -> TP 2, FP 1, FN 1
    assert m["precision"] == pytest.approx(2 / 3)
    assert m["recall"] == pytest.approx(2 / 3)
    assert m["f1"] == pytest.approx(2 / 3)
    assert m["accuracy"] == pytest.approx(6 / 8)
    assert m["brier"] == pytest.approx(np.mean((p - y) ** 2))
    # ranking: 15 positive-negative pairs, 14 ordered right (0.3 < 0.7 is the one wrong)
    assert m["roc_auc"] == pytest.approx(14 / 15)
    # profit: 2 churners offered x 150 - 3 offers x 50, over 8 customers
    assert m["profit"] == pytest.approx((2 * 150 - 3 * 50) / 8)
    assert expected_profit(y, p >= 0.5, ECON) == pytest.approx(m["profit"])


def test_empirical_f1_threshold_hand_case() -> None:
    y = np.array([1, 1, 0, 1, 0, 0])
    p = np.array([0.9, 0.8, 0.7, 0.6, 0.2, 0.1])
    t = empirical_best_f1_threshold(y, p)
    # best cut takes the top 4 (F1 = 6/7) and lies between 0.6 and 0.2
    assert 0.2 < t < 0.6
    assert classification_metrics(y, p, t)["f1"] == pytest.approx(6 / 7)


def test_f1_threshold_is_half_the_f1_it_reaches_on_calibrated_scores() -> None:
    rng = np.random.default_rng(0)
    p = rng.beta(1.2, 3.0, 20000)
    y = (rng.random(p.size) < p).astype(int)
    t = best_f1_threshold(y, p)
    f1 = classification_metrics(y, p, t)["f1"]
    assert t == pytest.approx(f1 / 2, abs=1e-3)
    # and it is (close to) the empirical optimum on calibrated scores
    best = classification_metrics(y, p, empirical_best_f1_threshold(y, p))["f1"]
    assert f1 >= best - 0.005


def test_profit_threshold_hand_case_and_no_offer() -> None:
    # each offered churner earns 0.3 x 500 - 50 = 100, each offered stayer costs 50
    y = np.array([1, 1, 0, 0, 1, 0, 0, 0])
    p = np.array([0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2])
    t = best_profit_threshold(y, p, ECON)
    # cumulative profit by cut: 100, 200, 150, 100, 200, ... -> best at the top 2 (ties: fewer)
    assert 0.7 < t < 0.8
    offered = p >= t
    assert expected_profit(y, offered, ECON) == pytest.approx(200 / 8)
    # when an offer never pays, nobody gets one
    costly = EconomicsConfig(offer_cost=1000.0, customer_value=500.0, offer_acceptance=0.3)
    assert best_profit_threshold(y, p, costly) == 1.0


def test_sigmoid_calibrator_recovers_a_known_distortion() -> None:
    rng = np.random.default_rng(1)
    true_logit = rng.normal(0, 1.5, 20000)
    y = (rng.random(true_logit.size) < 1 / (1 + np.exp(-true_logit))).astype(int)
    # an overconfident model: logit doubled and shifted
    raw = 1 / (1 + np.exp(-(2 * true_logit + 0.5)))
    cal = fit_sigmoid(raw, y)
    assert cal.slope == pytest.approx(0.5, abs=0.05)
    assert cal.intercept == pytest.approx(-0.25, abs=0.05)
    assert expected_calibration_error(y, cal.apply(raw)) < expected_calibration_error(y, raw) / 3
    # one row works and is monotone
    assert cal.apply(np.array([0.2]))[0] < cal.apply(np.array([0.8]))[0]


def test_isotonic_calibrator_is_monotone_and_bounded() -> None:
    rng = np.random.default_rng(2)
    raw = rng.random(5000)
    y = (rng.random(raw.size) < raw**2).astype(int)
    cal = fit_isotonic(raw, y)
    grid = np.linspace(-0.1, 1.1, 101)
    out = cal.apply(grid)
    assert np.all(np.diff(out) >= 0)
    assert out.min() > 0 and out.max() < 1
    assert expected_calibration_error(y, cal.apply(raw)) < expected_calibration_error(y, raw)


def test_auto_calibration_keeps_none_unless_clearly_better() -> None:
    scores = {
        "none": {"ece": 0.030, "brier": 0.130},
        "sigmoid": {"ece": 0.029, "brier": 0.129},  # gain below the bar
        "isotonic": {"ece": 0.020, "brier": 0.131},  # worse Brier
    }
    assert choose_calibration(scores, "auto") == "none"
    scores["sigmoid"] = {"ece": 0.020, "brier": 0.129}
    assert choose_calibration(scores, "auto") == "sigmoid"
    assert choose_calibration(scores, "isotonic") == "isotonic"


def test_leakage_guard_names_the_figure() -> None:
    leakage_guard("logistic", 0.85, 0.84, 0.88)
    with pytest.raises(LeakageSuspected, match="cross-validation ROC-AUC 0.9500"):
        leakage_guard("logistic", 0.95, 0.84, 0.88)
    with pytest.raises(LeakageSuspected, match="held-out test ROC-AUC 0.9100"):
        leakage_guard("xgboost", 0.85, 0.91, 0.88)


def _split(frame: pd.DataFrame, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    test = rng.random(len(frame)) < 0.25
    return frame[~test].reset_index(drop=True), frame[test].reset_index(drop=True)


def test_leaked_label_in_a_feature_column_fails_the_run(synthetic_frame: pd.DataFrame) -> None:
    """The label copied into a customer attribute flows through the transform and is caught."""
    leaky = synthetic_frame.copy()
    leaky["PaperlessBilling"] = np.where(leaky["Churn"] == "Yes", "Yes", "No")
    train, test = _split(leaky)
    config = small_config()
    features = ChurnFeatures().fit(train)
    candidate = train_candidate(train, features, "logistic", config)
    with pytest.raises(LeakageSuspected, match="max_plausible_auc"):
        evaluate_candidate(candidate, labels(train), features.transform(test), labels(test), config)


def test_honest_data_passes_the_guard_and_thresholds_come_from_training_folds(
    synthetic_frame: pd.DataFrame,
) -> None:
    train, test = _split(synthetic_frame)
    config = small_config()
    features = ChurnFeatures().fit(train)
    candidate = train_candidate(train, features, "logistic", config)
    y_test = labels(test)
    ev = evaluate_candidate(candidate, labels(train), features.transform(test), y_test, config)
    assert 0.5 < ev.cv["roc_auc"] < config.evaluation.max_plausible_auc
    assert set(ev.thresholds) == {"f1", "profit", "served"}
    assert ev.thresholds["served"] == ev.thresholds[config.selection.threshold]
    # the served threshold is a function of the training folds only: changing the test
    # labels changes the test metrics, never the threshold
    flipped = evaluate_candidate(
        candidate, labels(train), features.transform(test), 1 - y_test, config
    )
    assert flipped.thresholds == ev.thresholds
    assert flipped.test["roc_auc"] == pytest.approx(1 - ev.test["roc_auc"])


def test_report_file_written(tmp_path: Path) -> None:
    from churn_components.training.report import model_report

    summary = {
        "cv": {"roc_auc": 0.85, "f1": 0.63},
        "cv_std": {"roc_auc": 0.01, "f1": 0.02},
        "test": {"roc_auc": 0.84, "f1": 0.62},
        "thresholds": {"f1": 0.31, "profit": 0.33, "served": 0.31},
        "calibration": "none",
    }
    text = model_report(
        {"logistic": summary}, "logistic", {"promote": True, "reason": "r"}, synthetic=True
    )
    assert "SYNTHETIC DATA" in text and "| ROC-AUC | 0.8500 +- 0.0100 |" in text
