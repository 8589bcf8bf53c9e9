"""The gates by simulation, reduced (bench/rollout_sim.py runs 1,000 rollouts per scenario).

With no real difference, rollbacks stay under 5% (the rollout's alpha) at
low and at ample traffic; an error-rate regression from 1% to 3% is caught.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np

from churn_core.config import RolloutConfig

SIM = Path(__file__).resolve().parents[2] / "bench" / "rollout_sim.py"


def _sim():
    spec = importlib.util.spec_from_file_location("rollout_sim", SIM)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules["rollout_sim"] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


CONFIG = RolloutConfig(drift=False)


def test_no_difference_rarely_rolls_back() -> None:
    sim = _sim()
    low = sim.scenario("low", 40, 10, CONFIG, 0.5, sim.Revision())
    assert low["rolled_back"] <= 0.05 and low["inconclusive"] > 0.9  # too little traffic: holds
    ample = sim.scenario("ample", 100, 11, CONFIG, 20.0, sim.Revision())
    assert ample["rolled_back"] <= 0.05
    assert ample["promoted"] >= 0.95


def test_an_error_regression_is_caught() -> None:
    sim = _sim()
    worse = sim.scenario("worse", 40, 12, CONFIG, 20.0, sim.Revision(error_rate=0.03))
    assert worse["rolled_back"] >= 0.9
    assert worse["canary_requests_at_rollback_median"] > 0
    assert worse["rollbacks_by_gate"]["error_rate"] >= 0.9 * 40


def test_a_shifted_model_is_caught() -> None:
    sim = _sim()
    shifted = sim.scenario("shifted", 20, 13, CONFIG, 20.0, sim.Revision(beta=(3.0, 4.0)))
    assert shifted["rolled_back"] == 1.0
    rng = np.random.default_rng(0)
    outcome = sim.simulate(rng, CONFIG, 20.0, sim.Revision(), sim.Revision(beta=(3.0, 4.0)))[0]
    assert outcome.startswith("rolled_back:") and "probability_ks" in outcome
