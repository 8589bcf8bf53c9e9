"""The rollout gates by simulation: false rollbacks, power, and the requests a catch takes.

Each simulated rollout runs the controller's decision rule (`evaluate_gates`,
`merge_looks`, `step_verdict`) over cumulative step windows of simulated
traffic: requests arrive at `rps` (Poisson), the canary takes each step's
share, errors are Bernoulli per request, probabilities come from a Beta
distribution and latencies from a log-normal, both binned into the buckets
`churn serve` exposes. A step is judged every `step_window_seconds`; a FAIL
rolls back, all PASS moves on (promotes after the last step), and HOLD at the
deadline ends INCONCLUSIVE. The drift gate is left out (it reads an external
flag, not a sample).

    .venv/bin/python bench/rollout_sim.py [--rollouts 1000] [--seed 0]
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from churn_core.config import RolloutConfig  # noqa: E402
from churn_rollout.gates import (  # noqa: E402
    RevisionWindow,
    StepWindow,
    Verdict,
    evaluate_gates,
    merge_looks,
    step_verdict,
)

PROBABILITY_EDGES = (0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 1.0, np.inf)
# prometheus_client's default buckets, which KServe's request_*_seconds histograms use
LATENCY_EDGES = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0)
LATENCY_EDGES += (np.inf,)


@dataclass(frozen=True)
class Revision:
    """How one revision behaves."""

    error_rate: float = 0.01
    beta: tuple[float, float] = (2.0, 5.0)  # served probabilities
    threshold: float = 0.4
    latency_median: float = 0.02  # seconds
    latency_sigma: float = 0.5


class Traffic:
    """One revision's cumulative counts within a step."""

    def __init__(self) -> None:
        self.requests = 0
        self.errors = 0
        self.latency = np.zeros(len(LATENCY_EDGES))
        self.probability = np.zeros(len(PROBABILITY_EDGES))
        self.positives = 0

    def add(self, rng: np.random.Generator, n: int, rev: Revision) -> None:
        if n == 0:
            return
        errors = int(rng.binomial(n, rev.error_rate))
        self.requests += n
        self.errors += errors
        seconds = rev.latency_median * np.exp(rev.latency_sigma * rng.standard_normal(n))
        self.latency += np.array([np.count_nonzero(seconds <= e) for e in LATENCY_EDGES])
        served = n - errors  # a rejected request scores nothing
        p = rng.beta(*rev.beta, served)
        self.probability += np.array([np.count_nonzero(p <= e) for e in PROBABILITY_EDGES])
        self.positives += int(np.count_nonzero(p >= rev.threshold))

    def window(self) -> RevisionWindow:
        predictions = int(self.probability[-1])
        return RevisionWindow(
            requests=self.requests,
            errors=self.errors,
            latency_buckets=tuple(zip(LATENCY_EDGES, self.latency.tolist(), strict=True)),
            probability_buckets=tuple(
                zip(PROBABILITY_EDGES, self.probability.tolist(), strict=True)
            ),
            predictions=predictions,
            positives=self.positives,
        )


def simulate(
    rng: np.random.Generator,
    config: RolloutConfig,
    rps: float,
    stable: Revision,
    canary: Revision,
) -> tuple[str, int, int]:
    """One rollout: (outcome, canary requests, stable requests) in the deciding step."""
    elapsed = 0.0
    for share in config.steps:
        s, c = Traffic(), Traffic()
        previous: list = []
        while True:
            n = int(rng.poisson(rps * config.step_window_seconds))
            n_c = int(rng.binomial(n, share / 100))
            s.add(rng, n - n_c, stable)
            c.add(rng, n_c, canary)
            elapsed += config.step_window_seconds
            results = merge_looks(
                previous, evaluate_gates(StepWindow(s.window(), c.window()), config)
            )
            previous = results
            verdict = step_verdict(results)
            if verdict is Verdict.FAIL:
                failed = "+".join(r.gate for r in results if r.verdict is Verdict.FAIL)
                return f"rolled_back:{failed}", c.requests, s.requests
            if verdict is Verdict.PASS:
                break
            if elapsed >= config.deadline_seconds:
                return "inconclusive", c.requests, s.requests
    return "promoted", c.requests, s.requests


def scenario(
    name: str, rollouts: int, seed: int, config: RolloutConfig, rps: float, canary: Revision
) -> dict:
    """Outcome shares over `rollouts` seeded rollouts, and the canary n at the decision."""
    rng = np.random.default_rng(seed)
    outcomes: Counter[str] = Counter()
    failed_by: Counter[str] = Counter()
    caught_n: list[int] = []
    caught_stable: list[int] = []
    for _ in range(rollouts):
        outcome, n_c, n_s = simulate(rng, config, rps, Revision(), canary)
        outcome, _, gates = outcome.partition(":")
        outcomes[outcome] += 1
        if gates:
            failed_by.update(gates.split("+"))
        if outcome == "rolled_back":
            caught_n.append(n_c)
            caught_stable.append(n_s)
    out = {
        "scenario": name,
        "rollouts": rollouts,
        "rps": rps,
        "canary": canary.__dict__,
        **{k: outcomes[k] / rollouts for k in ("promoted", "rolled_back", "inconclusive")},
    }
    if failed_by:
        out["rollbacks_by_gate"] = dict(failed_by)
    if caught_n:
        out["canary_requests_at_rollback_median"] = int(np.median(caught_n))
        out["canary_requests_at_rollback_p90"] = int(np.percentile(caught_n, 90))
        out["stable_requests_at_rollback_median"] = int(np.median(caught_stable))
    return out


def scenarios(rollouts: int, seed: int, config: RolloutConfig | None = None) -> list[dict]:
    """The figures the README quotes."""
    config = config or RolloutConfig(drift=False)
    same = Revision()
    return [
        scenario("no difference, low traffic (0.5 rps)", rollouts, seed, config, 0.5, same),
        scenario("no difference, 3 rps", rollouts, seed + 3, config, 3.0, same),
        scenario("no difference, 20 rps", rollouts, seed + 1, config, 20.0, same),
        scenario(
            "errors 1% -> 3%, 20 rps", rollouts, seed + 2, config, 20.0, Revision(error_rate=0.03)
        ),  # fmt: skip
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rollouts", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    config = RolloutConfig(drift=False)
    from churn_rollout.gates import min_n_two_proportions, per_test_alpha

    alpha = per_test_alpha(config)
    equal = min_n_two_proportions(0.01, 0.02, alpha, config.power)
    at_5 = min_n_two_proportions(0.01, 0.02, alpha, config.power, ratio=19)
    print(
        f"per-test alpha {alpha:.4g}; the error-rate gate needs {equal} requests per revision "
        f"at equal shares, {at_5} canary requests beside 19x as many stable (the 5% step), "
        f"to tell 1% from 3% at power {config.power:g}"
    )
    for row in scenarios(args.rollouts, args.seed, config):
        print(json.dumps(row))
    return 0


if __name__ == "__main__":
    sys.exit(main())
