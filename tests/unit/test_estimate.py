"""The label-free performance estimator: its formulas, intervals, region, storage and bundle."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import f1_score, roc_auc_score

from churn_core.config import EstimateConfig, load_config
from churn_core.errors import BundleUnusable, InvalidInput, NotFound
from churn_model.estimate import (
    ESTIMATOR_FILE,
    FORMAT,
    FORMAT_VERSION,
    Interval,
    PerformanceEstimator,
    Recalibration,
    Region,
    _interval,
    diverged,
    estimator_document,
    expected_confusion,
    expected_f1,
    expected_roc_auc,
    fit_estimator,
    label_draws,
    load_estimator,
    save_estimator,
)
from tests.fixtures.bundles import customers

ROOT = Path(__file__).resolve().parents[2]


def brute_force_auc(scores: np.ndarray, q: np.ndarray) -> float:
    """E[correct pairs] / E[pos-neg pairs] over all 2^n label vectors, each with its probability."""
    n = len(q)
    correct = pairs = 0.0
    for labels in itertools.product((0, 1), repeat=n):
        y = np.array(labels)
        weight = float(np.prod(np.where(y == 1, q, 1 - q)))
        pos, neg = scores[y == 1], scores[y == 0]
        if len(pos) and len(neg):
            diff = pos[:, None] - neg[None, :]
            correct += weight * float((diff > 0).sum() + 0.5 * (diff == 0).sum())
            pairs += weight * len(pos) * len(neg)
    return correct / pairs


def pairwise_auc(scores: np.ndarray, q: np.ndarray) -> float:
    """The same ratio by its O(n^2) definition over pairs i != j."""
    weight = q[:, None] * (1 - q)[None, :]
    np.fill_diagonal(weight, 0.0)
    k = (scores[:, None] > scores[None, :]) + 0.5 * (scores[:, None] == scores[None, :])
    return float((weight * k).sum() / weight.sum())


@pytest.mark.parametrize("seed", range(4))
def test_the_expected_auc_is_exact_against_brute_force(seed: int) -> None:
    rng = np.random.default_rng(seed)
    scores = rng.choice([0.1, 0.2, 0.35, 0.5, 0.8], size=9)  # ties on purpose
    q = rng.uniform(0.05, 0.95, size=9)
    assert expected_roc_auc(scores, q) == pytest.approx(brute_force_auc(scores, q), abs=1e-12)


def test_the_expected_auc_matches_its_pairwise_definition_with_ties() -> None:
    rng = np.random.default_rng(1)
    scores = np.round(rng.random(300), 2)
    q = rng.random(300)
    assert expected_roc_auc(scores, q) == pytest.approx(pairwise_auc(scores, q), abs=1e-12)


def test_the_expected_auc_is_close_to_the_mean_realized_auc() -> None:
    # the ratio of expectations differs from E[AUC] by O(1/n): tiny at n = 500
    # (label_draws computes each draw's AUC as sklearn does: the test below)
    rng = np.random.default_rng(2)
    p = rng.beta(1.2, 3, size=500)
    draws = label_draws(p, p, p >= 0.4, 20000, np.random.default_rng(0))
    assert expected_roc_auc(p, p) == pytest.approx(draws["roc_auc"].mean(), abs=0.001)


def test_expected_f1_agrees_with_a_monte_carlo_of_the_labels() -> None:
    rng = np.random.default_rng(3)
    q = rng.beta(1.5, 3, size=500)
    d = q >= 0.35
    labels = rng.random((20000, 500)) < q
    cm = expected_confusion(q, d)
    assert cm["tp"] == pytest.approx((labels & d).sum(axis=1).mean(), rel=0.005)
    assert cm["fp"] == pytest.approx((~labels & d).sum(axis=1).mean(), rel=0.005)
    assert cm["fn"] == pytest.approx((labels & ~d).sum(axis=1).mean(), rel=0.005)
    f1 = label_draws(q, q, d, 20000, np.random.default_rng(1))["f1"]
    assert expected_f1(q, d) == pytest.approx(f1.mean(), abs=0.002)


def test_label_draws_give_sklearns_figures_for_each_draw() -> None:
    rng = np.random.default_rng(4)
    scores = np.round(rng.random(200), 1)  # many ties
    q = rng.random(200)
    d = scores >= 0.5
    draws = label_draws(scores, q, d, 30, np.random.default_rng(9))
    labels = np.random.default_rng(9).random((30, 200)) < q  # the same draws
    for b, y in enumerate(labels):
        assert draws["roc_auc"][b] == pytest.approx(roc_auc_score(y, scores), abs=1e-12)
        assert draws["f1"][b] == pytest.approx(f1_score(y, d), abs=1e-12)
        assert draws["churn_rate"][b] == pytest.approx(y.mean())


def test_an_interval_holds_a_new_draw_as_often_as_its_confidence() -> None:
    # B exchangeable draws: a new one falls between the k-th smallest and the k-th
    # largest with probability (B + 1 - 2k) / (B + 1), k = floor((B + 1)(1 - c) / 2)
    draws = np.random.default_rng(0).permutation(200).astype(float)
    interval = _interval(100.0, draws, 0.9)
    assert (interval.low, interval.high) == (9.0, 190.0)  # k = 10: 181 / 201 = 90.05%
    rng = np.random.default_rng(1)
    trials = 20000
    sample = rng.standard_normal((trials, 201))
    hits = 0
    for row in sample:
        i = _interval(0.0, row[:200], 0.9)
        hits += i.low <= row[200] <= i.high
    # interpolated 5% / 95% quantiles of 200 draws hold it only ~89.1% of the time
    assert hits / trials == pytest.approx(181 / 201, abs=0.006)
    assert _interval(0.5, np.array([0.4, np.nan, 0.6]), 0.9) == Interval(0.5, 0.4, 0.6)
    assert _interval(0.5, np.array([np.nan]), 0.9) == Interval(0.5, 0.5, 0.5)


# -- a fitted estimator on synthetic customers -----------------------------------------


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    return customers(rows=1200, seed=5)


@pytest.fixture(scope="module")
def calibration(frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(6)
    p = rng.beta(1.2, 3, size=len(frame))
    return p, (rng.random(len(frame)) < p).astype(int)


@pytest.fixture(scope="module", params=["sigmoid", "isotonic"])
def estimator(request, frame, calibration) -> PerformanceEstimator:  # type: ignore[no-untyped-def]
    p, y = calibration
    return fit_estimator(p, y, frame, 0.4, EstimateConfig(), method=request.param)


def test_an_estimate_is_json_with_the_figures_the_services_read(
    estimator: PerformanceEstimator, frame: pd.DataFrame, calibration: tuple
) -> None:
    p = calibration[0][:500]
    out = estimator.estimate(p, frame.iloc[:500]).as_dict()
    json.dumps(out, allow_nan=False)
    assert out["n"] == 500 and out["reliable"] is True and out["outside_share"] == 0.0
    for figure in ("roc_auc", "f1", "churn_rate"):
        v = out[figure]
        assert 0 <= v["low"] <= v["value"] <= v["high"] <= 1, (figure, v)
    assert out["churn_rate"]["value"] == pytest.approx(p.mean(), abs=0.03)
    # the same window gives the same figures (seeded)
    assert estimator.estimate(p, frame.iloc[:500]).as_dict() == out


def test_the_intervals_cover_realized_figures_when_the_probabilities_are_right(
    estimator: PerformanceEstimator, frame: pd.DataFrame
) -> None:
    rng = np.random.default_rng(7)
    window = frame.iloc[:500]
    hits = {"roc_auc": 0, "f1": 0, "churn_rate": 0}
    trials = 60
    for _ in range(trials):
        p = rng.beta(1.2, 3, size=500)
        y = rng.random(500) < p
        e = estimator.estimate(p, window)
        realized = {
            "roc_auc": roc_auc_score(y, p),
            "f1": f1_score(y, p >= 0.4),
            "churn_rate": y.mean(),
        }
        for figure, interval in (
            ("roc_auc", e.roc_auc),
            ("f1", e.f1),
            ("churn_rate", e.churn_rate),
        ):
            hits[figure] += interval.low <= realized[figure] <= interval.high
    assert all(h / trials >= 0.8 for h in hits.values()), hits


def test_windows_outside_the_reference_region_are_unreliable(
    estimator: PerformanceEstimator, frame: pd.DataFrame, calibration: tuple
) -> None:
    window = frame.iloc[:100].copy()
    p = calibration[0][:100]
    limit = estimator.config.max_outside_share
    inside = estimator.estimate(p, window)
    assert inside.reliable and inside.outside_share == 0
    few = window.copy()
    few.loc[few.index[:5], "MonthlyCharges"] = frame.MonthlyCharges.max() + 1  # 5% <= 5%
    assert estimator.estimate(p, few).reliable
    many = window.copy()
    many.loc[many.index[:6], "tenure"] = 200
    many.loc[many.index[6], "PaymentMethod"] = "Bitcoin"
    many.loc[many.index[7], "TotalCharges"] = np.nan  # blank outside tenure 0
    e = estimator.estimate(p, many)
    assert e.outside_share == pytest.approx(0.08) and e.outside_share > limit
    assert not e.reliable
    assert e.as_dict()["outside"] == {"tenure": 6, "PaymentMethod": 1, "TotalCharges": 1}


def test_a_blank_total_charge_at_tenure_zero_reads_as_zero() -> None:
    ref = customers(rows=300, seed=8).copy()
    window = ref.iloc[:3].assign(tenure=0, TotalCharges=np.nan)
    # a reference without a first-month customer: tenure 0 and charges 0.0 lie outside
    assert Region.of(ref.assign(tenure=ref.tenure + 1)).outside(window)[0].all()
    ref.loc[0, ["tenure", "TotalCharges"]] = [0, np.nan]
    region = Region.of(ref)
    assert region.numeric["TotalCharges"][0] == 0.0
    blank = window.assign(TotalCharges=[""] * 3)
    assert not region.outside(blank)[0].any()


@pytest.mark.parametrize(
    "p",
    [
        np.full(50, 0.3),  # constant probabilities: every pair tied
        np.full(50, 0.0),
        np.full(50, 1.0),
        np.linspace(0.0, 0.2, 50),  # every decision negative
        np.linspace(0.9, 1.0, 50),  # every decision positive
        np.array([0.7]),  # one row
    ],
)
def test_no_nan_on_one_class_or_constant_windows(
    estimator: PerformanceEstimator, frame: pd.DataFrame, p: np.ndarray
) -> None:
    out = estimator.estimate(p, frame.iloc[: len(p)]).as_dict()
    json.dumps(out, allow_nan=False)
    for figure in ("roc_auc", "f1", "churn_rate"):
        assert all(np.isfinite(v) for v in out[figure].values()), (figure, out[figure])
    if np.ptp(p) == 0:
        assert out["roc_auc"]["value"] == pytest.approx(0.5, abs=1e-12)


def test_bad_windows_are_refused_with_a_clear_message(
    estimator: PerformanceEstimator, frame: pd.DataFrame
) -> None:
    with pytest.raises(InvalidInput, match="no row"):
        estimator.estimate(np.array([]), frame.iloc[:0])
    with pytest.raises(InvalidInput, match="not probabilities"):
        estimator.estimate(np.array([0.2, 1.5]), frame.iloc[:2])
    with pytest.raises(InvalidInput, match="3 rows but 2"):
        estimator.estimate(np.array([0.2, 0.5]), frame.iloc[:3])
    with pytest.raises(InvalidInput, match="lacks the columns"):
        estimator.estimate(np.array([0.2]), frame.iloc[:1].drop(columns=["tenure"]))


def test_fitting_refuses_bad_calibration_rows(frame: pd.DataFrame) -> None:
    config = EstimateConfig()
    with pytest.raises(InvalidInput, match="both classes"):
        fit_estimator(np.full(10, 0.2), np.zeros(10), frame, 0.4, config)
    with pytest.raises(InvalidInput, match="labels of shape"):
        fit_estimator(np.full(10, 0.2), np.zeros(9), frame, 0.4, config)
    with pytest.raises(InvalidInput, match="0/1"):
        fit_estimator(np.full(3, 0.2), np.array([0, 2, 1]), frame, 0.4, config)
    with pytest.raises(InvalidInput, match="recalibration method"):
        fit_estimator(np.array([0.1, 0.9]), np.array([0, 1]), frame, 0.4, config, method="beta")


# -- stored as data ---------------------------------------------------------------------


def test_save_and_load_give_the_same_estimates(
    estimator: PerformanceEstimator, frame: pd.DataFrame, calibration: tuple, tmp_path: Path
) -> None:
    path = save_estimator(estimator, tmp_path / "monitor")
    assert path.name == ESTIMATOR_FILE
    assert "pickle" not in path.read_text() and json.loads(path.read_text())["format"] == FORMAT
    loaded = load_estimator(tmp_path / "monitor")
    p = calibration[0][:400]
    window = frame.iloc[:400]
    assert loaded.estimate(p, window).as_dict() == estimator.estimate(p, window).as_dict()
    assert estimator_document(loaded) == estimator_document(estimator)
    # the drift service's own settings replace the stored ones
    faster = load_estimator(tmp_path / "monitor", EstimateConfig(bootstrap=50, confidence=0.8))
    assert faster.config.bootstrap == 50
    assert faster.estimate(p, window).roc_auc.value == estimator.estimate(p, window).roc_auc.value


def test_another_format_is_refused_naming_both(
    estimator: PerformanceEstimator, tmp_path: Path
) -> None:
    path = save_estimator(estimator, tmp_path)
    document = json.loads(path.read_text())
    path.write_text(json.dumps({**document, "format_version": FORMAT_VERSION + 1}))
    with pytest.raises(
        BundleUnusable, match=f"version {FORMAT_VERSION + 1}.*version {FORMAT_VERSION}"
    ):
        load_estimator(tmp_path)
    path.write_text(json.dumps({**document, "format": "nannyml-cbpe"}))
    with pytest.raises(BundleUnusable, match="'nannyml-cbpe'"):
        load_estimator(tmp_path)
    path.write_text(json.dumps({**document, "calibration": {"map": {"method": "beta"}}}))
    with pytest.raises(BundleUnusable, match="incomplete or invalid"):
        load_estimator(tmp_path)
    path.write_text("not json")
    with pytest.raises(BundleUnusable, match="not a readable"):
        load_estimator(tmp_path)
    with pytest.raises(BundleUnusable, match="no readable"):
        load_estimator(tmp_path / "elsewhere")


def test_a_recalibration_is_checked_when_rebuilt() -> None:
    with pytest.raises(ValueError, match="non-decreasing"):
        Recalibration("isotonic", x=(0.1, 0.5), y=(0.6, 0.2))
    with pytest.raises(ValueError, match="not finite"):
        Recalibration("sigmoid", slope=float("nan"))


def test_divergence_is_a_gap_beyond_the_configured_one() -> None:
    max_gap = load_config(ROOT / "model_config.yaml").monitor.labels.max_estimate_gap
    assert diverged(0.84, 0.84 - max_gap - 0.001, max_gap)
    assert diverged(0.70, 0.70 + max_gap + 0.001, max_gap)
    assert not diverged(0.84, 0.84 - max_gap + 0.001, max_gap)
    with pytest.raises(InvalidInput):
        diverged(float("nan"), 0.8, max_gap)


# -- in the bundle ----------------------------------------------------------------------


def test_the_bundle_carries_an_estimator_calibrated_on_held_out_rows(tmp_path: Path) -> None:
    from churn_components.registry.package import bundle_contents, write_model_bundle
    from churn_model.bundle import ESTIMATOR, load_bundle_estimator, load_model
    from tests.fixtures.bundles import fit_model, split
    from tests.fixtures.training import small_config

    train, held_out = split(customers(rows=1500, seed=9))
    model = fit_model("logistic", train)
    p = model.predict_proba(held_out)
    y = (held_out.Churn == "Yes").to_numpy().astype(int)
    summary = {"thresholds": {"served": model.threshold}, "calibration": "none"}
    summary |= {"cv": {}, "cv_std": {}, "test": {}}
    common = dict(summary=summary, training_data={"rows": len(train)}, synthetic=True)
    config = small_config()
    files, meta = bundle_contents(model, train, config, held_out=(p, y), **common)  # type: ignore[arg-type]
    bundle = write_model_bundle(tmp_path / "with", files, meta)
    assert meta["monitor"] == {
        "estimator": ESTIMATOR,
        "format": FORMAT_VERSION,
        "calibration_rows": len(y),
    }
    _, verified = load_model(bundle)
    assert ESTIMATOR in verified["files"]  # sha256 recorded and checked
    estimator = load_bundle_estimator(bundle)
    assert estimator.threshold == model.threshold and estimator.calibration_rows == len(y)
    assert load_bundle_estimator(bundle, metadata=verified).threshold == model.threshold
    e = estimator.estimate(p, held_out)
    assert e.reliable and abs(e.roc_auc.value - roc_auc_score(y, p)) < 0.05

    files, meta = bundle_contents(model, train, config, **common)  # type: ignore[arg-type]
    without = write_model_bundle(tmp_path / "without", files, meta)
    with pytest.raises(NotFound, match="no performance estimator"):
        load_bundle_estimator(without)
