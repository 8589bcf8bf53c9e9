"""The canary's gates: pure statistics over one step's window, per revision.

Each gate compares the canary revision with the stable one and answers PASS,
FAIL or HOLD, with its evidence (n per revision, statistic, p-value or bound,
threshold, and the minimum n it waited for):

- **error rate**: one-sided two-proportion test, canary worse than stable
  (the exact conditional binomial test; the statistic quoted is the z).
  Holds until the canary has the requests needed to catch a regression of
  `error_rate_difference` with probability `power` (the two-proportion sample
  size formula, for the window's actual stable/canary allocation, from the
  stable rate's 95% Wilson upper bound: 0 errors in 100 requests still
  allows 3.7%).
- **latency**: the `latency_quantile` of KServe's predict histogram (bucket
  interpolation, as Prometheus's `histogram_quantile`); the canary/stable
  ratio fails above `latency_ratio`. Holds until each revision has
  `latency_tail` observations expected above the quantile.
- **probability shift**: two-sample Kolmogorov-Smirnov on the probability
  histograms (the distance at the bucket edges, a lower bound of the exact
  distance, so the test is conservative). Holds until the effective sample
  `n_s n_c / (n_s + n_c)` can detect a distance of `ks_distance`.
- **positive rate**: two-sided two-proportion z-test of the share predicted
  to churn at the bundle threshold; holds like the error rate.
- **drift**: the drift service's `churn_drift_window_drift` for the canary's
  model; an absent metric holds (no news is not good news), 1 fails.

A shift test fails only when it is significant and the observed shift is at
least half its configured size, so a trivial shift in a large window never
rolls back a retrained model. Each test with a p-value runs at
`alpha / (3 * steps)`, so over a rollout a canary no worse than the stable
model is rolled back with probability at most `alpha` (Bonferroni), provided
a decided test is not repeated within a step (`merge_looks`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any

from scipy import stats

from churn_core.config import RolloutConfig
from churn_core.errors import InvalidInput

# the gates whose verdicts are p-values, counted in the Bonferroni split
TESTED_GATES = ("error_rate", "probability_ks", "positive_rate")


class Verdict(StrEnum):
    """One gate's answer, or a step's, or (with INCONCLUSIVE) a rollout's."""

    PASS = "PASS"
    FAIL = "FAIL"
    HOLD = "HOLD"
    INCONCLUSIVE = "INCONCLUSIVE"


@dataclass(frozen=True)
class RevisionWindow:
    """What one revision served during the window (counts, not rates).

    Buckets are Prometheus-style cumulative `(upper edge, count)` pairs in
    increasing order, the last edge `inf`.
    """

    requests: int = 0
    errors: int = 0
    latency_buckets: tuple[tuple[float, float], ...] = ()
    probability_buckets: tuple[tuple[float, float], ...] = ()
    predictions: int = 0  # rows scored
    positives: int = 0  # rows predicted to churn at the bundle threshold

    def __post_init__(self) -> None:
        if min(self.requests, self.errors, self.predictions, self.positives) < 0:
            raise InvalidInput(f"negative count in a revision window: {self}")
        if self.errors > self.requests:
            raise InvalidInput(f"errors ({self.errors}) above requests ({self.requests})")
        if self.positives > self.predictions:
            raise InvalidInput(
                f"positives ({self.positives}) above predictions ({self.predictions})"
            )


@dataclass(frozen=True)
class StepWindow:
    """Both revisions over one window, and the drift flag (None: no drift metric)."""

    stable: RevisionWindow
    canary: RevisionWindow
    drift: float | None = None
    seconds: float = 0.0


@dataclass(frozen=True)
class GateResult:
    """One gate's verdict with its evidence."""

    gate: str
    verdict: Verdict
    n_stable: int
    n_canary: int
    statistic: float | None
    threshold: float
    p_value: float | None = None
    bound: float | None = None  # the value the statistic is compared with, when not a p-value
    min_n: int | None = None  # per revision (canary for the proportions, effective for KS)
    reason: str = ""
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready evidence (floats rounded for the annotations)."""
        out = asdict(self)
        out["verdict"] = str(self.verdict)
        for key in ("statistic", "p_value", "bound", "threshold"):
            if isinstance(out[key], float):
                out[key] = _round(out[key])
        out["details"] = {k: _round(v) for k, v in self.details.items()}
        return out


def _round(value: Any) -> Any:
    if isinstance(value, float) and math.isfinite(value):
        return float(f"{value:.6g}")
    return value


def per_test_alpha(config: RolloutConfig) -> float:
    """The significance level of each test: alpha split over the tests of every step."""
    return config.alpha / (len(TESTED_GATES) * len(config.steps))


# -- sample sizes (power calculations) ---------------------------------------------------


def min_n_two_proportions(
    p1: float,
    difference: float,
    alpha: float,
    power: float,
    *,
    ratio: float = 1.0,
    one_sided: bool = True,
) -> int:
    """Canary n to tell `p1 + difference` from `p1` (the stable rate) at `alpha`, `power`.

    The two-proportion z-test's sample size with unequal allocation (Fleiss):
    `ratio` is stable n / canary n; `ratio=1` is the usual n per revision
    (1% vs 2% errors, alpha 0.05 one-sided, power 0.8: 1,826).
    """
    p1 = min(max(p1, 0.0), 1.0 - difference)
    p2 = p1 + difference
    k = max(ratio, 1e-9)
    z_a = stats.norm.ppf(1 - (alpha if one_sided else alpha / 2))
    z_b = stats.norm.ppf(power)
    pbar = (p2 + k * p1) / (1 + k)
    root = z_a * math.sqrt(pbar * (1 - pbar) * (1 + 1 / k)) + z_b * math.sqrt(
        p1 * (1 - p1) / k + p2 * (1 - p2)
    )
    return max(1, math.ceil((root / difference) ** 2))


def min_n_ks(distance: float, alpha: float, power: float) -> int:
    """Effective n (`n_s n_c / (n_s + n_c)`) for a KS test to detect `distance`.

    Normal approximation at the point of largest difference (the empirical CDF
    difference has standard deviation at most `0.5 / sqrt(n_eff)` there):
    `sqrt(n_eff) * distance >= K(alpha) + 0.5 z(power)`, where `K(alpha)` is
    the Kolmogorov distribution's critical value.
    """
    k_alpha = stats.kstwobign.isf(alpha)
    z_b = stats.norm.ppf(power)
    return max(1, math.ceil(((k_alpha + 0.5 * z_b) / distance) ** 2))


def min_n_quantile(quantile: float, tail: int) -> int:
    """Observations per revision so that `tail` of them are expected above `quantile`."""
    return math.ceil(tail / (1 - quantile) - 1e-9)


# -- histograms ---------------------------------------------------------------------------


def histogram_count(buckets: Sequence[tuple[float, float]]) -> float:
    """The total count of a cumulative histogram (its `+Inf` bucket)."""
    return float(buckets[-1][1]) if buckets else 0.0


def histogram_quantile(q: float, buckets: Sequence[tuple[float, float]]) -> float:
    """The q-quantile of a cumulative histogram, interpolated as Prometheus does.

    Linear within the bucket holding the rank; a rank in the `+Inf` bucket
    answers the highest finite edge; NaN for an empty histogram.
    """
    _check_buckets(buckets)
    total = histogram_count(buckets)
    if total <= 0:
        return math.nan
    rank = q * total
    lower_edge, lower_count = 0.0, 0.0
    for edge, count in buckets:
        if count >= rank:
            if math.isinf(edge):
                return lower_edge
            if count == lower_count:
                return edge
            return lower_edge + (edge - lower_edge) * (rank - lower_count) / (count - lower_count)
        lower_edge, lower_count = edge, count
    return lower_edge


def _check_buckets(buckets: Sequence[tuple[float, float]]) -> None:
    edges = [e for e, _ in buckets]
    counts = [c for _, c in buckets]
    if buckets and not math.isinf(edges[-1]):
        raise InvalidInput(f"a histogram's last bucket must be +Inf, got le={edges[-1]}")
    if edges != sorted(edges) or counts != sorted(counts):
        raise InvalidInput(f"histogram buckets are not cumulative in increasing order: {buckets}")


def ks_binned(
    a: Sequence[tuple[float, float]], b: Sequence[tuple[float, float]]
) -> tuple[float, float, float]:
    """(distance, p-value, effective n) of two cumulative histograms with the same edges."""
    _check_buckets(a)
    _check_buckets(b)
    if [e for e, _ in a] != [e for e, _ in b]:
        raise InvalidInput("the two probability histograms have different bucket edges")
    na, nb = histogram_count(a), histogram_count(b)
    if na <= 0 or nb <= 0:
        return 0.0, 1.0, 0.0
    distance = max(abs(ca / na - cb / nb) for (_, ca), (_, cb) in zip(a, b, strict=True))
    n_eff = na * nb / (na + nb)
    p_value = float(stats.kstwobign.sf(math.sqrt(n_eff) * distance)) if distance > 0 else 1.0
    return distance, min(p_value, 1.0), n_eff


def wilson_upper(x: int, n: int, confidence: float = 0.95) -> float:
    """The upper end of the two-sided Wilson interval of `x / n` (0 in 100: 3.7% at 95%)."""
    if n <= 0:
        return 1.0
    z = stats.norm.ppf(1 - (1 - confidence) / 2)
    p = x / n
    centre = p + z * z / (2 * n)
    spread = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return min(1.0, (centre + spread) / (1 + z * z / n))


def conditional_p_value(x_s: int, n_s: int, x_c: int, n_c: int) -> float:
    """One-sided exact p-value that the canary's rate is above the stable one's.

    Conditional on the errors of both revisions together, the canary's share of
    them is binomial with its share of the requests under equal rates (the
    conditional binomial test; errors are rare, where the z-test's normal
    approximation rejects too often).
    """
    total = x_s + x_c
    if total == 0:
        return 1.0
    return float(stats.binom.sf(x_c - 1, total, n_c / (n_s + n_c)))


def two_proportion_z(x1: int, n1: int, x2: int, n2: int) -> float:
    """Pooled z statistic of `x2/n2 - x1/n1` (0 when both rates are 0 or 1)."""
    pooled = (x1 + x2) / (n1 + n2)
    var = pooled * (1 - pooled) * (1 / n1 + 1 / n2)
    return 0.0 if var <= 0 else (x2 / n2 - x1 / n1) / math.sqrt(var)


# -- the gates -----------------------------------------------------------------------------


def error_rate_gate(window: StepWindow, config: RolloutConfig) -> GateResult:
    """FAIL when the canary's error rate is significantly above the stable one's."""
    s, c = window.stable, window.canary
    alpha = per_test_alpha(config)
    threshold = config.error_rate_difference
    if s.requests == 0 or c.requests == 0:
        return GateResult(
            "error_rate",
            Verdict.HOLD,
            s.requests,
            c.requests,
            None,
            threshold,
            reason="no requests on a revision",
        )
    p_s, p_c = s.errors / s.requests, c.errors / c.requests
    baseline = wilson_upper(s.errors, s.requests)  # the stable rate may be this high
    need = min_n_two_proportions(
        baseline, threshold, alpha, config.power, ratio=s.requests / c.requests
    )
    z = two_proportion_z(s.errors, s.requests, c.errors, c.requests)
    p_value = conditional_p_value(s.errors, s.requests, c.errors, c.requests)
    details = {"rate_stable": p_s, "rate_canary": p_c, "alpha": alpha, "power": config.power}
    details["baseline"] = baseline
    if c.requests < need or s.requests < need:
        verdict, reason = Verdict.HOLD, f"needs {need} requests per revision to tell +{threshold}"
    elif p_value < alpha:
        verdict, reason = Verdict.FAIL, "canary error rate significantly above stable"
    else:
        verdict, reason = Verdict.PASS, f"no regression of {threshold} at power {config.power}"
    return GateResult(
        "error_rate",
        verdict,
        s.requests,
        c.requests,
        z,
        threshold,
        p_value=p_value,
        min_n=need,
        reason=reason,
        details=details,
    )


def latency_gate(window: StepWindow, config: RolloutConfig) -> GateResult:
    """FAIL when the canary's latency quantile is above `latency_ratio` times the stable one."""
    s, c = window.stable.latency_buckets, window.canary.latency_buckets
    n_s, n_c = int(histogram_count(s)), int(histogram_count(c))
    need = min_n_quantile(config.latency_quantile, config.latency_tail)
    bound = config.latency_ratio
    if n_s < need or n_c < need:
        return GateResult(
            "latency",
            Verdict.HOLD,
            n_s,
            n_c,
            None,
            bound,
            bound=bound,
            min_n=need,
            reason=f"needs {need} timed requests per revision for p{config.latency_quantile:g}",
        )
    q_s = histogram_quantile(config.latency_quantile, s)
    q_c = histogram_quantile(config.latency_quantile, c)
    ratio = q_c / q_s if q_s > 0 else (1.0 if q_c == 0 else math.inf)
    verdict = Verdict.FAIL if ratio > bound else Verdict.PASS
    return GateResult(
        "latency",
        verdict,
        n_s,
        n_c,
        ratio,
        bound,
        bound=bound,
        min_n=need,
        reason=f"canary/stable p{config.latency_quantile:g} = {ratio:.3g} (bound {bound:g})",
        details={"seconds_stable": q_s, "seconds_canary": q_c},
    )


def probability_ks_gate(window: StepWindow, config: RolloutConfig) -> GateResult:
    """FAIL when the served probability distributions differ (KS), by half the bound or more."""
    s, c = window.stable.probability_buckets, window.canary.probability_buckets
    n_s, n_c = int(histogram_count(s)), int(histogram_count(c))
    alpha = per_test_alpha(config)
    need = min_n_ks(config.ks_distance, alpha, config.power)
    threshold = config.ks_distance
    if n_s == 0 or n_c == 0:
        return GateResult(
            "probability_ks",
            Verdict.HOLD,
            n_s,
            n_c,
            None,
            threshold,
            min_n=need,
            reason="no predictions on a revision",
        )
    distance, p_value, n_eff = ks_binned(s, c)
    details = {"n_effective": n_eff, "alpha": alpha}
    if n_eff < need:
        verdict, reason = Verdict.HOLD, f"needs effective n {need} to tell a distance {threshold}"
    elif p_value < alpha and distance >= threshold / 2:
        verdict, reason = Verdict.FAIL, "served probabilities shifted"
    else:
        verdict, reason = Verdict.PASS, f"no shift of {threshold} at power {config.power}"
    return GateResult(
        "probability_ks",
        verdict,
        n_s,
        n_c,
        distance,
        threshold,
        p_value=p_value,
        min_n=need,
        reason=reason,
        details=details,
    )


def positive_rate_gate(window: StepWindow, config: RolloutConfig) -> GateResult:
    """FAIL when the share predicted to churn differs, by half the bound or more."""
    s, c = window.stable, window.canary
    alpha = per_test_alpha(config)
    threshold = config.positive_rate_difference
    if s.predictions == 0 or c.predictions == 0:
        return GateResult(
            "positive_rate",
            Verdict.HOLD,
            s.predictions,
            c.predictions,
            None,
            threshold,
            reason="no predictions on a revision",
        )
    r_s, r_c = s.positives / s.predictions, c.positives / c.predictions
    # the rarer side of the stable rate: the sample size is largest near 0.5
    base = min(r_s, 1 - r_s)
    need = min_n_two_proportions(
        min(base, 0.5 - threshold / 2),
        threshold,
        alpha,
        config.power,
        ratio=s.predictions / c.predictions,
        one_sided=False,
    )
    z = two_proportion_z(s.positives, s.predictions, c.positives, c.predictions)
    p_value = float(2 * stats.norm.sf(abs(z)))
    details = {"rate_stable": r_s, "rate_canary": r_c, "alpha": alpha}
    if c.predictions < need or s.predictions < need:
        verdict, reason = Verdict.HOLD, f"needs {need} predictions per revision to tell {threshold}"
    elif p_value < alpha and abs(r_c - r_s) >= threshold / 2:
        verdict, reason = Verdict.FAIL, "share predicted to churn shifted"
    else:
        verdict, reason = Verdict.PASS, f"no shift of {threshold} at power {config.power}"
    return GateResult(
        "positive_rate",
        verdict,
        s.predictions,
        c.predictions,
        z,
        threshold,
        p_value=p_value,
        min_n=need,
        reason=reason,
        details=details,
    )


def drift_gate(window: StepWindow, config: RolloutConfig) -> GateResult:
    """FAIL when the drift service flags the canary model's window; HOLD without the metric."""
    n_s, n_c = window.stable.predictions, window.canary.predictions
    if window.drift is None:
        return GateResult(
            "drift",
            Verdict.HOLD,
            n_s,
            n_c,
            None,
            1.0,
            bound=1.0,
            reason="no churn_drift_window_drift for the canary's model in the window",
        )
    verdict = Verdict.FAIL if window.drift >= 1 else Verdict.PASS
    return GateResult(
        "drift",
        verdict,
        n_s,
        n_c,
        float(window.drift),
        1.0,
        bound=1.0,
        reason="drifted window" if verdict is Verdict.FAIL else "no drifted window",
    )


def evaluate_gates(window: StepWindow, config: RolloutConfig) -> list[GateResult]:
    """Every configured gate over one window."""
    gates = [error_rate_gate, latency_gate, probability_ks_gate, positive_rate_gate]
    if config.drift:
        gates.append(drift_gate)
    return [gate(window, config) for gate in gates]


def merge_looks(previous: Sequence[GateResult], current: Sequence[GateResult]) -> list[GateResult]:
    """A step's verdicts after another look; a test that passed in this step stays passed.

    Testing it again would spend its alpha twice; latency and drift are read anew.
    """
    kept = {r.gate: r for r in previous if r.gate in TESTED_GATES and r.verdict is Verdict.PASS}
    return [kept.get(r.gate, r) for r in current]


def step_verdict(results: Sequence[GateResult]) -> Verdict:
    """FAIL if any gate fails, PASS if all pass, else HOLD."""
    verdicts = {r.verdict for r in results}
    if Verdict.FAIL in verdicts:
        return Verdict.FAIL
    if verdicts <= {Verdict.PASS}:
        return Verdict.PASS
    return Verdict.HOLD
