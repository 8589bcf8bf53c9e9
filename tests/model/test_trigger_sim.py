"""The retraining trigger on the real Telco customers: false triggers and detection by simulation.

The detector is the bundle's (`fit_detector`, `model_config.yaml`'s drift
section) fitted on the training split of the real data; windows of 500 are
drawn without replacement from the held-out customers, the pool reshuffled for
every window, exactly as tests/model/test_drift_real.py does. Each window's
verdict is computed once: runs of the trigger are then drawn, window by window
and with replacement, from a pool of the verdicts of independently drawn
windows (re-testing 180,000 windows would take minutes; the windows of a run
are independent draws either way).

Targets: a drift-free window is bad in at most 5% of >= 200 windows; the
trigger (`monitor.trigger` of `model_config.yaml`) fires falsely in at most 5%
of 1,000 drift-free runs of 180 windows; for each shift of SHIFTS it fires
within 3 windows of the shift's onset in >= 95% of runs. `make bench-trigger`
prints the same figures on larger pools, beside what a per-window rule alone
would do.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from churn_core.config import FloorsConfig, TriggerConfig, load_config
from churn_model.drift import DriftDetector
from churn_monitoring.trigger import TriggerMachine, WindowEvidence
from tests.model.test_drift_real import SHIFTS, WINDOW, Window, null_window

pytestmark = [pytest.mark.model, pytest.mark.realdata]

ROOT = Path(__file__).resolve().parents[2]
T0 = datetime(2026, 1, 1, tzinfo=UTC)
RUN_WINDOWS = 180  # half a year of daily windows
WITHIN = 3  # windows after the onset of a shift
PREFIX = 10  # drift-free windows before the shift starts
MAX_WINDOW_ALARMS = 0.05
MAX_FALSE_TRIGGERS = 0.05
MIN_DETECTION = 0.95


@dataclass(frozen=True)
class Verdict:
    """What the detector said about one window (the evidence the drift service sends)."""

    samples: int
    drifted: tuple[str, ...]  # significant and large
    significant: tuple[str, ...]  # significant alone (no effect-size gate)
    effects: dict[str, float]


def verdict_pool(
    detector: DriftDetector, pool: pd.DataFrame, make: Window, windows: int, seed: int
) -> list[Verdict]:
    """The verdicts on `windows` independently drawn windows of `make`."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(windows):
        result = detector.test(make(pool, rng, WINDOW))
        out.append(
            Verdict(
                samples=result.n,
                drifted=tuple(result.drifted_features),
                significant=tuple(f.name for f in result.features if f.significant),
                effects={f.name: float(f.effect) for f in result.features},
            )
        )
    return out


def evidence(verdict: Verdict, window_id: int, significance_only: bool = False) -> WindowEvidence:
    """The window's evidence record; `significance_only` counts every significant feature."""
    return WindowEvidence(
        window_id=window_id,
        model="churn",
        model_version="1",
        samples=verdict.samples,
        closed_at=T0 + timedelta(days=window_id),
        drifted_features=verdict.significant if significance_only else verdict.drifted,
        effects=verdict.effects,
    )


def bad_rate(verdicts: Sequence[Verdict], config: TriggerConfig, sig: bool = False) -> float:
    """Share of windows the trigger counts as bad."""
    from churn_monitoring.trigger import causes

    floors = FloorsConfig()
    return float(
        np.mean([bool(causes(evidence(v, i, sig), config, floors)) for i, v in enumerate(verdicts)])
    )


def false_trigger_share(
    verdicts: Sequence[Verdict],
    config: TriggerConfig,
    runs: int,
    seed: int,
    significance_only: bool = False,
    length: int = RUN_WINDOWS,
) -> float:
    """Share of `runs` drift-free runs of `length` windows (drawn from the pool) that fire."""
    rng = np.random.default_rng(seed)
    fired = 0
    for _ in range(runs):
        machine = TriggerMachine(config, FloorsConfig())
        picks = rng.integers(0, len(verdicts), size=length)
        fired += any(
            machine.observe(evidence(verdicts[j], i, significance_only)).fired
            for i, j in enumerate(picks)
        )
    return fired / runs


def detection_delays(
    null: Sequence[Verdict],
    shifted: Sequence[Verdict],
    config: TriggerConfig,
    runs: int,
    seed: int,
    prefix: int = PREFIX,
    horizon: int = 20,
) -> list[int | None]:
    """Per run: windows from the shift's onset to the trigger (1 = the first shifted window).

    `prefix` drift-free windows, then shifted ones; None when the trigger did
    not fire within `horizon` shifted windows or had fired (falsely) before the onset.
    """
    rng = np.random.default_rng(seed)
    delays: list[int | None] = []
    for _ in range(runs):
        machine = TriggerMachine(config, FloorsConfig())
        early = any(
            machine.observe(evidence(null[j], i)).fired
            for i, j in enumerate(rng.integers(0, len(null), size=prefix))
        )
        delay = None
        for step, j in enumerate(rng.integers(0, len(shifted), size=horizon), 1):
            if machine.observe(evidence(shifted[j], prefix + step)).fired and not early:
                delay = step
                break
        delays.append(delay)
    return delays


def within_share(delays: Sequence[int | None], within: int = WITHIN) -> float:
    """Share of runs whose trigger fired within `within` windows of the onset."""
    return float(np.mean([d is not None and d <= within for d in delays]))


# -- the reduced simulation ---------------------------------------------------------------


@pytest.fixture(scope="module")
def detector(real: tuple[pd.DataFrame, pd.DataFrame]) -> DriftDetector:
    from churn_model.drift import fit_detector

    return fit_detector(real[0], load_config(ROOT / "model_config.yaml").drift)


@pytest.fixture(scope="module")
def real() -> tuple[pd.DataFrame, pd.DataFrame]:
    from tests.model.test_drift_real import real_split

    return real_split()


@pytest.fixture(scope="module")
def trigger() -> TriggerConfig:
    return load_config(ROOT / "model_config.yaml").monitor.trigger


@pytest.fixture(scope="module")
def null(detector: DriftDetector, real: tuple[pd.DataFrame, pd.DataFrame]) -> list[Verdict]:
    return verdict_pool(detector, real[1], null_window, 200, seed=404)


def test_drift_free_windows_are_rarely_bad(null: list[Verdict], trigger: TriggerConfig) -> None:
    rate = bad_rate(null, trigger)
    assert rate <= MAX_WINDOW_ALARMS, f"bad in {rate:.1%} of {len(null)} drift-free windows"


def test_drift_free_runs_rarely_trigger(null: list[Verdict], trigger: TriggerConfig) -> None:
    share = false_trigger_share(null, trigger, runs=1000, seed=505)
    assert share <= MAX_FALSE_TRIGGERS, f"false trigger in {share:.1%} of 1000 runs"


def test_a_per_window_rule_alone_triggers_in_nearly_every_run(
    null: list[Verdict], trigger: TriggerConfig
) -> None:
    """Significance alone (no effect-size gate) flags a few % of windows: fired on every
    bad window, nearly every half-year run triggers; k of n cuts that many times over."""
    per_window = TriggerConfig(k=1, n=1, cooldown_windows=trigger.cooldown_windows)
    alone = false_trigger_share(null, per_window, runs=300, seed=606, significance_only=True)
    persistent = false_trigger_share(null, trigger, runs=300, seed=606, significance_only=True)
    assert 0 < bad_rate(null, trigger, sig=True) <= MAX_WINDOW_ALARMS
    assert alone >= 0.9, f"a per-window rule alone triggered in only {alone:.1%} of runs"
    assert persistent <= alone / 5, (persistent, alone)


@pytest.mark.parametrize("shift", sorted(SHIFTS))
def test_a_shift_fires_the_trigger_within_3_windows(
    detector: DriftDetector,
    real: tuple[pd.DataFrame, pd.DataFrame],
    null: list[Verdict],
    trigger: TriggerConfig,
    shift: str,
) -> None:
    shifted = verdict_pool(detector, real[1], SHIFTS[shift], 60, seed=707)
    delays = detection_delays(null, shifted, trigger, runs=200, seed=808)
    share = within_share(delays)
    assert share >= MIN_DETECTION, f"{shift}: fired within {WITHIN} windows in {share:.1%}"
    # and exactly once: the cooldown holds it for the rest of the episode
    machine = TriggerMachine(trigger, FloorsConfig())
    fired = [machine.observe(evidence(shifted[i % len(shifted)], i)).fired for i in range(30)]
    assert sum(fired) == 1
