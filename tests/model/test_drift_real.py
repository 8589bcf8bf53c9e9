"""Drift detection on the real Telco customers: false alarms and detection by simulation.

The reference is the training split (the tests' own split of the real data,
`tests.fixtures.bundles.split`); windows of 500 are drawn WITHOUT replacement
from the held-out customers, the pool reshuffled for every window (windows
overlap; bootstrapping with replacement would triple the false alarms: the
duplicates and the pool's own sampling error are not the null).

Targets (scipy backend, `model_config.yaml`'s drift section): a drift-free
window raises `drift` in at most 5% of 200 windows; each shifted population
(month-to-month contracts +20 points, tenure 30% lower, the fibre-optic share
doubled, monthly charges +15%) is flagged in at least 95% of 200 windows.
Same seed, same figures; `make bench-drift` prints them beside the timings.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from churn_core.config import DriftConfig, load_config
from churn_model.drift import DriftDetector, fit_detector
from tests.ci import missing
from tests.fixtures.bundles import customers, split

pytestmark = [pytest.mark.model, pytest.mark.realdata]

ROOT = Path(__file__).resolve().parents[2]
WINDOW = 500
WINDOWS = 200
MAX_FALSE_ALARMS = 0.05
MIN_DETECTION = 0.95

Window = Callable[[pd.DataFrame, np.random.Generator, int], pd.DataFrame]


def null_window(pool: pd.DataFrame, rng: np.random.Generator, n: int = WINDOW) -> pd.DataFrame:
    """n customers of the pool drawn without replacement (a fresh shuffle each call)."""
    return pool.iloc[rng.permutation(len(pool))[:n]].reset_index(drop=True)


def mixed_window(
    pool: pd.DataFrame, mask: pd.Series, share: float, rng: np.random.Generator, n: int
) -> pd.DataFrame:
    """n customers without replacement, a `share` of them from the pool's rows in `mask`."""
    inside = np.flatnonzero(mask.to_numpy())
    outside = np.flatnonzero(~mask.to_numpy())
    k = round(n * share)
    if k > len(inside) or n - k > len(outside):
        raise ValueError(f"the pool cannot give {k} of {n} rows without replacement")
    rows = np.concatenate(
        [rng.choice(inside, size=k, replace=False), rng.choice(outside, size=n - k, replace=False)]
    )
    return pool.iloc[rng.permutation(rows)].reset_index(drop=True)


def _month_to_month(pool: pd.DataFrame, rng: np.random.Generator, n: int) -> pd.DataFrame:
    mask = pool.Contract == "Month-to-month"
    return mixed_window(pool, mask, float(mask.mean()) + 0.20, rng, n)


def _fibre_doubled(pool: pd.DataFrame, rng: np.random.Generator, n: int) -> pd.DataFrame:
    mask = pool.InternetService == "Fiber optic"
    return mixed_window(pool, mask, 2 * float(mask.mean()), rng, n)


def _tenure_lower(pool: pd.DataFrame, rng: np.random.Generator, n: int) -> pd.DataFrame:
    w = null_window(pool, rng, n)
    return w.assign(tenure=(w.tenure * 0.7).round().astype(int))


def _charges_higher(pool: pd.DataFrame, rng: np.random.Generator, n: int) -> pd.DataFrame:
    w = null_window(pool, rng, n)
    return w.assign(MonthlyCharges=(w.MonthlyCharges * 1.15).round(2))


SHIFTS: dict[str, Window] = {
    "month-to-month +20 points": _month_to_month,
    "tenure 30% lower": _tenure_lower,
    "fibre-optic share doubled": _fibre_doubled,
    "monthly charges +15%": _charges_higher,
}


def flag_rate(
    detector: DriftDetector, pool: pd.DataFrame, make: Window, windows: int, seed: int
) -> float:
    """Share of `windows` simulated windows whose `drift` is raised."""
    rng = np.random.default_rng(seed)
    return float(np.mean([detector.test(make(pool, rng, WINDOW)).drift for _ in range(windows)]))


def real_split() -> tuple[pd.DataFrame, pd.DataFrame]:
    """(training split, held-out customers) of the real data."""
    from tests.fixtures.data import real_csv_path

    if real_csv_path() is None:
        missing("real Telco CSV absent: set CHURN_DATA_URI to its path")
    return split(customers(real=True))


@pytest.fixture(scope="module")
def real() -> tuple[pd.DataFrame, pd.DataFrame]:
    return real_split()


@pytest.fixture(scope="module")
def drift_config() -> DriftConfig:
    return load_config(ROOT / "model_config.yaml").drift


@pytest.fixture(scope="module")
def detector(real: tuple[pd.DataFrame, pd.DataFrame], drift_config: DriftConfig) -> DriftDetector:
    assert drift_config.backend == "scipy"
    return fit_detector(real[0], drift_config)


def test_the_held_out_pool_is_big_enough(real: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    train, held_out = real
    assert len(train) > 5000 and len(held_out) >= 2 * WINDOW


def test_drift_free_windows_rarely_raise_drift(
    detector: DriftDetector, real: tuple[pd.DataFrame, pd.DataFrame]
) -> None:
    rate = flag_rate(detector, real[1], null_window, WINDOWS, seed=101)
    assert rate <= MAX_FALSE_ALARMS, f"false alarms in {rate:.1%} of {WINDOWS} windows"


@pytest.mark.parametrize("shift", sorted(SHIFTS))
def test_shifted_windows_are_flagged(
    detector: DriftDetector, real: tuple[pd.DataFrame, pd.DataFrame], shift: str
) -> None:
    rate = flag_rate(detector, real[1], SHIFTS[shift], WINDOWS, seed=202)
    assert rate >= MIN_DETECTION, f"{shift}: flagged in {rate:.1%} of {WINDOWS} windows"


@pytest.mark.parametrize("correction", ["bonferroni", "fdr"])
def test_the_backends_agree_on_real_windows(
    real: tuple[pd.DataFrame, pd.DataFrame], drift_config: DriftConfig, correction: str
) -> None:
    try:
        import alibi_detect  # noqa: F401
    except ImportError:
        missing("alibi-detect not installed (pip install -e '.[alibi]')")
    train, held_out = real
    config = {
        b: drift_config.model_copy(update={"backend": b, "correction": correction})
        for b in ("scipy", "alibi")
    }
    scipy, alibi = (fit_detector(train, c) for c in config.values())
    rng = np.random.default_rng(303)
    makers = [null_window, *SHIFTS.values()]
    for i in range(20):
        window = makers[i % len(makers)](held_out, rng, WINDOW)
        ours, theirs = scipy.test(window), alibi.test(window)
        for a, b in zip(ours.features, theirs.features, strict=True):
            assert abs(a.p_value - b.p_value) <= 1e-6, (i, a.name, a.p_value, b.p_value)
            assert a.significant == b.significant, (i, a.name)
        assert ours.drift == theirs.drift, i
