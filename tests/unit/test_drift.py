"""Drift detectors (`churn_model.drift`): both backends, corrections, effect gates, edge cases.

Customers come from the synthetic generator (validated and typed as the
pipeline types them). The alibi-detect backend is optional: without it these
tests skip locally and fail in CI, where the `dev` extra installs it.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from scipy.spatial.distance import jensenshannon

from churn_core.config import ChurnConfig, DriftConfig, load_config
from churn_core.errors import BundleUnusable, ConfigError, InvalidInput
from churn_model.contract import CATEGORICAL_NAMES, FEATURE_NAMES, NUMERIC_NAMES
from churn_model.drift import (
    CONFIG_FILE,
    FORMAT_VERSION,
    benjamini_hochberg,
    bonferroni,
    cdf_distances,
    chi2_table,
    detector_files,
    fit_detector,
    js_distance,
    ks_p_values,
    load_detector,
    save_detector,
)
from tests.ci import missing
from tests.fixtures.bundles import customers

ROOT = Path(__file__).resolve().parents[2]
BACKENDS = ("scipy", "alibi")
CORRECTIONS = ("bonferroni", "fdr")


def need_alibi() -> Any:
    try:
        import alibi_detect
    except ImportError:
        missing("alibi-detect not installed (pip install -e '.[alibi]')")
    return alibi_detect


@pytest.fixture(scope="module")
def reference() -> pd.DataFrame:
    return customers(rows=3000, seed=21)


@pytest.fixture(scope="module")
def pool() -> pd.DataFrame:
    return customers(rows=3000, seed=22)


def _window(pool: pd.DataFrame, n: int = 500, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pool.iloc[rng.choice(len(pool), size=n, replace=False)].reset_index(drop=True)


def _windows(pool: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """Windows from drift-free to drifted on numbers, categories, both, and in-between."""
    base = _window(pool, seed=1)
    month = base.copy()
    month.loc[: len(month) // 3, "Contract"] = "Month-to-month"
    small = base.assign(tenure=(base.tenure * 0.9).round().astype(int))
    return {
        "null": base,
        "numbers": base.assign(MonthlyCharges=base.MonthlyCharges * 1.15),
        "categories": month,
        "both": month.assign(tenure=(month.tenure * 0.7).round().astype(int)),
        "slight": small.assign(MonthlyCharges=small.MonthlyCharges + 2.0),
    }


def _assert_finite(result: Any) -> None:
    text = json.dumps(result.as_dict(), allow_nan=False)  # raises on NaN or inf
    assert text
    for f in result.features:
        assert math.isfinite(f.statistic) and math.isfinite(f.effect), f
        assert 0.0 <= f.p_value <= 1.0, f


# -- configuration --------------------------------------------------------------------


def test_the_project_config_carries_the_drift_section() -> None:
    config = load_config(ROOT / "model_config.yaml")
    assert config.drift.backend == "scipy"
    assert config.drift.correction == "bonferroni"
    assert config.drift.min_window_size <= config.drift.window_size
    assert ChurnConfig().drift == DriftConfig()


@pytest.mark.parametrize(
    "section, named",
    [
        ("backend: sklearn", "drift.backend"),
        ("correction: holm", "drift.correction"),
        ("p_value: 1.5", "drift.p_value"),
        ("psi: -0.1", "drift.psi"),
        ("window_size: 100\n  min_window_size: 200", "min_window_size (200)"),
        ("thresholds: 1", "drift.thresholds"),
    ],
)
def test_a_bad_drift_section_is_refused_naming_the_field(
    tmp_path: Path, section: str, named: str
) -> None:
    path = tmp_path / "model_config.yaml"
    path.write_text(f"drift:\n  {section}\n")
    with pytest.raises(ConfigError, match=re.escape(str(path)) + ".*" + re.escape(named)):
        load_config(path)


# -- the result -------------------------------------------------------------------------


def test_a_result_names_every_feature_its_test_and_effect(
    reference: pd.DataFrame, pool: pd.DataFrame
) -> None:
    detector = fit_detector(reference, DriftConfig())
    window = _windows(pool)["numbers"]
    result = detector.test(window)
    assert [f.name for f in result.features] == list(FEATURE_NAMES)
    assert result.n == len(window) and result.n_reference == len(reference)
    assert result.correction == "bonferroni" and result.threshold == 0.05 / len(FEATURE_NAMES)
    for f in result.features:
        if f.name in NUMERIC_NAMES:
            assert (f.test, f.effect_name, f.unseen) == ("ks", "wasserstein", None)
        else:
            assert (f.test, f.effect_name, f.unseen) == ("chi2", "psi", 0)
        assert f.drifted == (f.significant and f.large)
        assert f.large == (f.effect > f.effect_threshold)
    assert result.drift and result.drifted_features == ["MonthlyCharges"]
    as_dict = json.loads(json.dumps(result.as_dict(), allow_nan=False))
    assert as_dict["drift"] is True and as_dict["n"] == len(window)
    assert as_dict["features"]["MonthlyCharges"]["drifted"] is True
    assert as_dict["features"]["Contract"]["test"] == "chi2"


@pytest.mark.parametrize(
    "numeric_effect, categorical_effect", [("ks", "js"), ("wasserstein", "psi")]
)
def test_the_effect_sizes_are_the_configured_kind(
    reference: pd.DataFrame, pool: pd.DataFrame, numeric_effect: str, categorical_effect: str
) -> None:
    config = DriftConfig.model_validate(
        {"numeric_effect": numeric_effect, "categorical_effect": categorical_effect}
    )
    result = fit_detector(reference, config).test(_windows(pool)["both"])
    tenure, contract = result.feature("tenure"), result.feature("Contract")
    assert tenure.effect_name == numeric_effect and contract.effect_name == categorical_effect
    if numeric_effect == "ks":
        assert tenure.effect == pytest.approx(tenure.statistic, abs=1e-12)
        assert tenure.effect_threshold == config.ks
    else:
        assert tenure.effect_threshold == config.wasserstein
    assert contract.effect_threshold == getattr(config, categorical_effect)
    assert contract.drifted and tenure.drifted


# -- the statistics agree with SciPy's own functions ------------------------------------


def test_ks_p_values_equal_scipy_ks_2samp(reference: pd.DataFrame, pool: pd.DataFrame) -> None:
    window = _windows(pool)["slight"]
    for name in NUMERIC_NAMES:
        ref = np.sort(reference[name].fillna(0.0).to_numpy(dtype=float))
        win = window[name].fillna(0.0).to_numpy(dtype=float)
        wasserstein, ks = cdf_distances(ref, win)
        expected = stats.ks_2samp(ref, win, method="asymp")
        assert ks == expected.statistic
        assert ks_p_values(np.array([ks]), len(ref), len(win))[0] == expected.pvalue
        assert wasserstein == pytest.approx(stats.wasserstein_distance(ref, win), rel=1e-12)


def test_chi2_equals_chi2_contingency_and_js_equals_scipy() -> None:
    rng = np.random.default_rng(3)
    for k in (2, 3, 4):  # k = 2: Yates' correction
        for _ in range(20):
            table = np.vstack([rng.integers(1, 400, size=k), rng.integers(0, 60, size=k)])
            table[1, rng.integers(k)] += 1
            statistic, p = chi2_table(table)
            expected = stats.chi2_contingency(table)
            assert statistic == pytest.approx(expected.statistic, rel=1e-12)
            assert p == pytest.approx(expected.pvalue, rel=1e-9, abs=1e-300)
            assert js_distance(table[0], table[1]) == pytest.approx(
                jensenshannon(table[0], table[1], base=2), rel=1e-9
            )


def test_benjamini_hochberg_by_hand() -> None:
    p = np.array([0.035, 0.2, 0.025, 0.005, 0.031])  # sorted: .005 .025 .031 .035 .2
    significant, threshold = benjamini_hochberg(p, 0.05)  # bounds: .01 .02 .03 .04 .05
    # ranks 2 and 3 are above their bounds, rank 4 is below its own: step-up, 4 rejected
    assert threshold == pytest.approx(0.04)
    assert significant.tolist() == [True, False, True, True, True]
    assert bonferroni(p, 0.05)[0].tolist() == [False, False, False, True, False]
    nothing, bound = benjamini_hochberg(np.array([0.5, 0.9]), 0.05)
    assert not nothing.any() and bound == pytest.approx(0.025)
    # strictly below, as alibi-detect: a p-value equal to its bound is not significant
    assert not benjamini_hochberg(np.array([0.03, 0.05]), 0.05)[0].any()
    assert not bonferroni(np.array([0.025, 0.9]), 0.05)[0].any()


def test_the_corrections_are_alibi_detects() -> None:
    need_alibi()
    from alibi_detect.utils.statstest import fdr

    rng = np.random.default_rng(5)
    for _ in range(200):
        p = rng.uniform(0, 0.02, size=19) ** rng.uniform(0.2, 1.5)
        significant, threshold = benjamini_hochberg(p, 0.05)
        any_drift, their_threshold = fdr(p, q_val=0.05)
        assert bool(any_drift) == bool(significant.any())
        theirs = float(np.asarray(their_threshold).ravel()[0] if not any_drift else their_threshold)
        assert threshold == pytest.approx(theirs)


# -- the two backends agree -------------------------------------------------------------


@pytest.mark.parametrize("correction", CORRECTIONS)
def test_both_backends_give_the_same_p_values_and_verdicts(
    reference: pd.DataFrame, pool: pd.DataFrame, correction: str
) -> None:
    need_alibi()
    detectors = {
        b: fit_detector(reference, DriftConfig(backend=b, correction=correction))  # type: ignore[arg-type]
        for b in BACKENDS
    }
    thresholds = set()
    for kind, window in _windows(pool).items():
        ours, theirs = (detectors[b].test(window) for b in BACKENDS)
        assert (ours.backend, theirs.backend) == BACKENDS
        for a, b in zip(ours.features, theirs.features, strict=True):
            assert abs(a.p_value - b.p_value) <= 1e-6, (kind, a.name, a.p_value, b.p_value)
            assert a.statistic == pytest.approx(b.statistic, rel=1e-5, abs=1e-6), (kind, a.name)
            assert a.significant == b.significant, (kind, a.name)
            assert (a.effect, a.large, a.drifted, a.unseen) == (
                b.effect,
                b.large,
                b.drifted,
                b.unseen,
            )
        assert ours.threshold == pytest.approx(theirs.threshold), kind
        assert ours.drift == theirs.drift, kind
        thresholds.add(round(ours.threshold, 9))
    if correction == "fdr":  # the windows exercise more than one FDR threshold
        assert len(thresholds) > 1


# -- degenerate data: the scipy backend answers, alibi-detect raises --------------------


def test_a_declared_category_absent_from_both_sides_is_tested_by_scipy_only(
    reference: pd.DataFrame, pool: pd.DataFrame
) -> None:
    ref = reference[reference.Contract != "Two year"].reset_index(drop=True)
    window = _window(pool[pool.Contract != "Two year"], seed=4)
    result = fit_detector(ref, DriftConfig()).test(window)
    _assert_finite(result)
    contract = result.feature("Contract")
    assert contract.p_value > 0.001 and not contract.drifted and contract.unseen == 0

    need_alibi()
    from alibi_detect.cd import TabularDrift

    # alibi-detect itself, on the same encoding: the declared category 2 ("Two year") never
    # occurs, its expected frequency is zero and scipy's chi2_contingency raises (#224)
    codes = {"Month-to-month": 0, "One year": 1, "Two year": 2}
    x_ref = ref["Contract"].map(codes).to_numpy(dtype=float).reshape(-1, 1)
    x = window["Contract"].map(codes).to_numpy(dtype=float).reshape(-1, 1)
    raw = TabularDrift(x_ref, p_val=0.05, categories_per_feature={0: [0, 1, 2]})
    with pytest.raises(ValueError, match="expected frequencies has a zero element"):
        raw.predict(x)
    alibi = fit_detector(ref, DriftConfig(backend="alibi"))
    with pytest.raises(ValueError, match=r"Contract='Two year'.*#224"):
        alibi.test(window)


def test_constant_columns_give_defined_answers(reference: pd.DataFrame, pool: pd.DataFrame) -> None:
    ref = reference.assign(gender="Female", SeniorCitizen=0)
    window = _window(pool, seed=5).assign(gender="Female", SeniorCitizen=0)
    detector = fit_detector(ref, DriftConfig())
    same = detector.test(window)
    _assert_finite(same)
    for name in ("gender", "SeniorCitizen"):
        f = same.feature(name)
        assert (f.statistic, f.p_value, f.effect, f.drifted) == (0.0, 1.0, 0.0, False), f
    other = detector.test(window.assign(gender="Male", SeniorCitizen=1))
    _assert_finite(other)
    for name in ("gender", "SeniorCitizen"):
        f = other.feature(name)
        assert f.p_value < 1e-12 and f.drifted, f
    # no spread in the reference: the Wasserstein effect is in the column's own units
    assert other.feature("SeniorCitizen").effect == pytest.approx(1.0)


def test_unseen_categories_are_counted_not_fatal(
    reference: pd.DataFrame, pool: pd.DataFrame
) -> None:
    ref = reference[reference.PaymentMethod != "Mailed check"].reset_index(drop=True)
    ref.loc[:9, "InternetService"] = "Satellite"  # off the contract, but in the reference
    window = _window(pool, seed=6)
    window.loc[:4, "InternetService"] = "Fiber"  # off the contract, never seen
    window.loc[5:6, "InternetService"] = "Satellite"  # off the contract, seen
    mailed = int((window.PaymentMethod == "Mailed check").sum())
    assert mailed > 0
    for backend in ("scipy", "alibi"):
        if backend == "alibi":
            need_alibi()
        result = fit_detector(ref, DriftConfig(backend=backend)).test(window)  # type: ignore[arg-type]
        _assert_finite(result)
        internet, payment = result.feature("InternetService"), result.feature("PaymentMethod")
        assert (internet.unseen, internet.unseen_values) == (5, ("Fiber",))
        assert (payment.unseen, payment.unseen_values) == (mailed, ("Mailed check",))
        assert all(
            result.feature(n).unseen == 0
            for n in CATEGORICAL_NAMES
            if n not in ("InternetService", "PaymentMethod")
        )


def test_missing_numbers_and_bad_windows(reference: pd.DataFrame, pool: pd.DataFrame) -> None:
    detector = fit_detector(reference, DriftConfig())
    window = _window(pool, seed=7)
    window.loc[0, ["tenure", "TotalCharges"]] = [0, np.nan]  # the known quirk: reads as 0.0
    window.loc[1, "MonthlyCharges"] = np.nan
    result = detector.test(window)
    assert (result.n, result.dropped) == (len(window) - 1, 1)
    _assert_finite(result)
    as_text = window.astype(str).replace("nan", " ")  # numbers as the CSV spells them
    assert detector.test(as_text).as_dict() == result.as_dict()
    with pytest.raises(InvalidInput, match=r"MonthlyCharges: 'lots' is not a number"):
        detector.test(as_text.assign(MonthlyCharges="lots"))
    with pytest.raises(InvalidInput, match=r"lacks the columns \['tenure'\]"):
        detector.test(window.drop(columns="tenure"))
    with pytest.raises(InvalidInput, match="no complete row"):
        detector.test(window.iloc[:0])


# -- significance is not drift: the effect-size gate ------------------------------------


@pytest.fixture(scope="module")
def fifty_thousand() -> tuple[pd.DataFrame, pd.DataFrame]:
    return customers(rows=50_000, seed=31), customers(rows=50_000, seed=32)


@pytest.mark.parametrize("backend", BACKENDS)
def test_at_50000_rows_a_tiny_shift_is_significant_but_not_drift(
    fifty_thousand: tuple[pd.DataFrame, pd.DataFrame], backend: str
) -> None:
    if backend == "alibi":
        need_alibi()
    ref, window = fifty_thousand
    detector = fit_detector(ref, DriftConfig(backend=backend))  # type: ignore[arg-type]
    assert not detector.test(window).drift  # two samples of the same population
    sd = float(ref.MonthlyCharges.std())
    tiny = detector.test(window.assign(MonthlyCharges=window.MonthlyCharges + 0.03 * sd))
    charges = tiny.feature("MonthlyCharges")
    assert charges.significant and charges.p_value < 1e-10
    assert not charges.large and not charges.drifted and not tiny.drift
    big = detector.test(window.assign(MonthlyCharges=window.MonthlyCharges * 1.15))
    charges = big.feature("MonthlyCharges")
    assert charges.significant and charges.large and charges.drifted and big.drift
    assert big.drifted_features == ["MonthlyCharges"]


# -- stored as data ---------------------------------------------------------------------


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_saved_detector_gives_the_same_results(
    tmp_path: Path, reference: pd.DataFrame, pool: pd.DataFrame, backend: str
) -> None:
    if backend == "alibi":
        need_alibi()
    config = DriftConfig(backend=backend, correction="fdr", psi=0.07)  # type: ignore[arg-type]
    detector = fit_detector(reference, config)
    root = save_detector(detector, tmp_path / "drift")
    loaded = load_detector(root)
    assert type(loaded) is type(detector) and loaded.config == config
    for window in _windows(pool).values():
        assert loaded.test(window).as_dict() == detector.test(window).as_dict()
    names = {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()}
    assert set(detector_files(detector)) == names
    assert {CONFIG_FILE, "reference_numeric.npy", "reference_codes.npy"} <= names
    assert not any(n.endswith((".pkl", ".pickle", ".dill")) for n in names)
    for name in names:
        if name.endswith(".npy"):
            np.load(root / name, allow_pickle=False)
    document = json.loads((root / CONFIG_FILE).read_text())
    assert document["backend"] == backend and document["format_version"] == FORMAT_VERSION
    if backend == "alibi":
        assert "alibi/config.toml" in names


def test_a_detector_of_another_format_is_refused(tmp_path: Path, reference: pd.DataFrame) -> None:
    root = save_detector(fit_detector(reference, DriftConfig()), tmp_path / "drift")
    document = json.loads((root / CONFIG_FILE).read_text())
    (root / CONFIG_FILE).write_text(json.dumps({**document, "format_version": 99}))
    with pytest.raises(
        BundleUnusable, match=rf"version 99.*this code reads .* version {FORMAT_VERSION}"
    ):
        load_detector(root)
    (root / CONFIG_FILE).write_text(json.dumps({**document, "format": "alibi-detect"}))
    with pytest.raises(
        BundleUnusable, match="'alibi-detect' version 1; this code reads 'churn-drift"
    ):
        load_detector(root)
    (root / CONFIG_FILE).unlink()
    with pytest.raises(BundleUnusable, match="not a readable drift detector"):
        load_detector(root)
