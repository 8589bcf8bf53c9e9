"""The gates' statistics: sample sizes, histogram quantiles, verdicts with their evidence."""

from __future__ import annotations

import math

import numpy as np
import pytest

from churn_core.config import RolloutConfig
from churn_core.errors import InvalidInput
from churn_rollout.gates import (
    GateResult,
    RevisionWindow,
    StepWindow,
    Verdict,
    drift_gate,
    error_rate_gate,
    evaluate_gates,
    histogram_quantile,
    ks_binned,
    latency_gate,
    merge_looks,
    min_n_ks,
    min_n_quantile,
    min_n_two_proportions,
    per_test_alpha,
    positive_rate_gate,
    probability_ks_gate,
    step_verdict,
)

CONFIG = RolloutConfig()
INF = float("inf")
EDGES = (0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 1.0, INF)


def histogram(values: np.ndarray, edges=EDGES) -> tuple[tuple[float, float], ...]:
    return tuple((e, float(np.count_nonzero(values <= e))) for e in edges)


def window(stable: RevisionWindow, canary: RevisionWindow, drift=0.0) -> StepWindow:
    return StepWindow(stable, canary, drift)


def test_the_sample_size_quoted_in_the_design() -> None:
    # 1% vs 2% errors at alpha 0.05 one-sided and power 0.8: ~1,800 per revision
    assert min_n_two_proportions(0.01, 0.01, 0.05, 0.8) == 1826
    # a 5% canary beside 95% needs fewer canary requests than equal allocation
    equal = min_n_two_proportions(0.01, 0.02, 0.01, 0.8)
    assert min_n_two_proportions(0.01, 0.02, 0.01, 0.8, ratio=19) < equal
    # smaller differences, lower alpha or higher power need more
    assert min_n_two_proportions(0.01, 0.01, 0.01, 0.8) > 1826
    assert min_n_two_proportions(0.01, 0.01, 0.05, 0.9) > 1826
    assert min_n_ks(0.05, 0.05, 0.8) > min_n_ks(0.1, 0.05, 0.8)
    assert min_n_quantile(0.99, 10) == 1000


def test_the_alpha_is_split_over_every_test_of_every_step() -> None:
    assert per_test_alpha(CONFIG) == pytest.approx(0.05 / 6)
    assert per_test_alpha(RolloutConfig(steps=(5, 25, 50))) == pytest.approx(0.05 / 9)


def test_histogram_quantile_interpolates_like_prometheus() -> None:
    buckets = ((0.1, 50.0), (0.2, 90.0), (0.5, 100.0), (INF, 100.0))
    assert histogram_quantile(0.5, buckets) == pytest.approx(0.1)
    assert histogram_quantile(0.7, buckets) == pytest.approx(0.15)
    assert histogram_quantile(0.99, buckets) == pytest.approx(0.2 + 0.3 * 9 / 10)
    assert histogram_quantile(0.99, ((0.1, 1.0), (INF, 100.0))) == 0.1  # rank in +Inf
    assert math.isnan(histogram_quantile(0.5, ((0.1, 0.0), (INF, 0.0))))
    with pytest.raises(InvalidInput, match=r"\+Inf"):
        histogram_quantile(0.5, ((0.1, 1.0),))
    with pytest.raises(InvalidInput, match="cumulative"):
        histogram_quantile(0.5, ((0.1, 5.0), (INF, 1.0)))


def test_binned_ks_matches_the_distance_at_the_edges() -> None:
    rng = np.random.default_rng(0)
    a = histogram(rng.beta(2, 5, 5000))
    b = histogram(rng.beta(2, 3, 5000))
    distance, p_value, n_eff = ks_binned(a, b)
    assert n_eff == 2500
    assert 0.1 < distance < 0.3 and p_value < 1e-10
    same = ks_binned(a, histogram(rng.beta(2, 5, 5000)))
    assert same[0] < 0.05 and same[1] > 0.01
    with pytest.raises(InvalidInput, match="different bucket edges"):
        ks_binned(a, ((0.5, 1.0), (INF, 2.0)))


def test_error_rate_holds_below_its_minimum_then_fails_a_real_regression() -> None:
    # 0 errors in 100 requests still allows a few percent: HOLD, never PASS
    few = error_rate_gate(
        window(RevisionWindow(requests=2000), RevisionWindow(requests=100)), CONFIG
    )
    assert few.verdict is Verdict.HOLD and few.min_n > 100
    assert few.n_stable == 2000 and few.n_canary == 100
    worse = error_rate_gate(
        window(
            RevisionWindow(requests=20_000, errors=200), RevisionWindow(requests=2000, errors=60)
        ),
        CONFIG,
    )
    assert worse.verdict is Verdict.FAIL and worse.p_value < per_test_alpha(CONFIG)
    assert worse.statistic > 0 and worse.threshold == 0.02
    same = error_rate_gate(
        window(
            RevisionWindow(requests=20_000, errors=200), RevisionWindow(requests=2000, errors=20)
        ),
        CONFIG,
    )
    assert same.verdict is Verdict.PASS and same.p_value > 0.1
    # a canary with fewer errors is never failed (one-sided)
    better = error_rate_gate(
        window(
            RevisionWindow(requests=20_000, errors=600), RevisionWindow(requests=2000, errors=0)
        ),
        CONFIG,
    )
    assert better.verdict is Verdict.PASS


def test_latency_fails_a_slower_canary_and_holds_without_enough_timings() -> None:
    fast = ((0.01, 900.0), (0.025, 990.0), (0.05, 1000.0), (0.1, 1000.0), (INF, 1000.0))
    slow = ((0.01, 100.0), (0.025, 500.0), (0.05, 900.0), (0.1, 1000.0), (INF, 1000.0))
    same = window(RevisionWindow(latency_buckets=fast), RevisionWindow(latency_buckets=fast))
    assert latency_gate(same, CONFIG).verdict is Verdict.PASS
    failed = latency_gate(
        window(RevisionWindow(latency_buckets=fast), RevisionWindow(latency_buckets=slow)), CONFIG
    )
    assert failed.verdict is Verdict.FAIL and failed.statistic > CONFIG.latency_ratio
    assert failed.details["seconds_canary"] > failed.details["seconds_stable"]
    small = tuple((e, c / 10) for e, c in fast)
    held = latency_gate(
        window(RevisionWindow(latency_buckets=fast), RevisionWindow(latency_buckets=small)), CONFIG
    )
    assert held.verdict is Verdict.HOLD and held.min_n == 1000


def _predictions(rng, n, a, b, threshold=0.4) -> RevisionWindow:
    p = rng.beta(a, b, n)
    return RevisionWindow(
        probability_buckets=histogram(p), predictions=n, positives=int((p >= threshold).sum())
    )


def test_prediction_shift_fails_and_no_shift_passes() -> None:
    rng = np.random.default_rng(1)
    stable = _predictions(rng, 20_000, 2, 5)
    shifted = _predictions(rng, 3000, 3, 4)
    same = _predictions(rng, 3000, 2, 5)
    ks = probability_ks_gate(window(stable, shifted), CONFIG)
    assert ks.verdict is Verdict.FAIL and ks.statistic > 0.1
    assert probability_ks_gate(window(stable, same), CONFIG).verdict is Verdict.PASS
    rate = positive_rate_gate(window(stable, shifted), CONFIG)
    assert rate.verdict is Verdict.FAIL
    assert rate.details["rate_canary"] > rate.details["rate_stable"]
    assert positive_rate_gate(window(stable, same), CONFIG).verdict is Verdict.PASS
    tiny = _predictions(rng, 30, 3, 4)
    assert probability_ks_gate(window(stable, tiny), CONFIG).verdict is Verdict.HOLD
    assert positive_rate_gate(window(stable, tiny), CONFIG).verdict is Verdict.HOLD


def test_a_significant_but_trivial_shift_does_not_fail() -> None:
    stable = RevisionWindow(predictions=2_000_000, positives=600_000)  # 30%
    canary = RevisionWindow(predictions=1_000_000, positives=310_000)  # 31%: significant
    result = positive_rate_gate(window(stable, canary), CONFIG)
    assert result.p_value < 1e-6 and result.verdict is Verdict.PASS


def test_drift_absent_holds_flagged_fails() -> None:
    empty = RevisionWindow()
    assert drift_gate(window(empty, empty, None), CONFIG).verdict is Verdict.HOLD
    assert drift_gate(window(empty, empty, 0.0), CONFIG).verdict is Verdict.PASS
    assert drift_gate(window(empty, empty, 1.0), CONFIG).verdict is Verdict.FAIL
    names = [r.gate for r in evaluate_gates(window(empty, empty, None), CONFIG)]
    assert names[-1] == "drift"
    off = RolloutConfig(drift=False)
    assert "drift" not in [r.gate for r in evaluate_gates(window(empty, empty), off)]


@pytest.mark.parametrize(
    ("verdicts", "expected"),
    [
        ([Verdict.PASS, Verdict.PASS], Verdict.PASS),
        ([Verdict.PASS, Verdict.HOLD], Verdict.HOLD),
        ([Verdict.HOLD, Verdict.FAIL], Verdict.FAIL),
        ([Verdict.PASS, Verdict.FAIL], Verdict.FAIL),
        ([Verdict.HOLD, Verdict.HOLD], Verdict.HOLD),
    ],
)
def test_step_verdict_table(verdicts, expected) -> None:
    results = [GateResult(f"g{i}", v, 1, 1, None, 0.0) for i, v in enumerate(verdicts)]
    assert step_verdict(results) is expected


def test_a_passed_test_is_not_tested_again_within_the_step() -> None:
    first = [GateResult("error_rate", Verdict.PASS, 1, 1, 0.0, 0.02),
             GateResult("latency", Verdict.PASS, 1, 1, 1.0, 1.5)]  # fmt: skip
    second = [GateResult("error_rate", Verdict.FAIL, 2, 2, 3.0, 0.02),
              GateResult("latency", Verdict.FAIL, 2, 2, 2.0, 1.5)]  # fmt: skip
    merged = merge_looks(first, second)
    assert [r.verdict for r in merged] == [Verdict.PASS, Verdict.FAIL]  # latency is read anew


def test_bad_counts_are_refused() -> None:
    with pytest.raises(InvalidInput, match="errors"):
        RevisionWindow(requests=1, errors=2)
    with pytest.raises(InvalidInput, match="positives"):
        RevisionWindow(predictions=1, positives=2)


def test_evidence_serialises_to_json() -> None:
    import json

    result = error_rate_gate(
        window(RevisionWindow(requests=5000, errors=50), RevisionWindow(requests=5000, errors=49)),
        CONFIG,
    )
    data = json.loads(json.dumps(result.to_dict()))
    assert data["verdict"] == "PASS" and data["n_stable"] == 5000 and data["min_n"] > 0
