"""Drift detectors fitted on the training reference: a test per feature, a correction, effect gates.

A detector is fitted once on the reference rows (the contract's 19 customer
attributes) and tests whole windows of live rows against them:

- numbers (`tenure`, `MonthlyCharges`, ...): the two-sample Kolmogorov-Smirnov
  test (`ks`: the two-sided asymptotic p-value of `scipy.stats.ks_2samp`, which
  alibi-detect uses too);
- categories: the chi-square test of the 2 x k contingency table (`chi2`:
  Pearson's statistic with Yates' continuity correction when it has one degree
  of freedom, as `scipy.stats.chi2_contingency`) over the contract's declared
  categories, plus one `other` column for values outside them;
- the p-values of all features are corrected together, as alibi-detect's
  `TabularDrift` does: `bonferroni` (significant when p < p_value / n_features)
  or `fdr` (Benjamini-Hochberg: sort the p-values, find the largest rank i with
  p_(i) < p_value * i / n; the threshold is that bound and every p below it is
  significant; with none below, the threshold reported is p_value / n and
  nothing is significant);
- significance alone is not drift (at 50,000 rows KS flags a 0.03-SD shift), so
  each feature also has an effect size, `large` above its configured threshold:
  PSI (population stability index, proportions floored at 1e-4) or the
  Jensen-Shannon distance (base 2) for categories; the Wasserstein distance in
  standard deviations of the reference, or the KS distance, for numbers.
  A feature `drifted` when it is significant AND large; a window drifts when any
  feature drifted.

Values never seen in the reference (a declared category the reference lacks,
or a value outside the contract) are counted per categorical feature as
`unseen` and take part in the test; they never make it fail.

Defined for degenerate data (the `scipy` backend never returns NaN):

- a category that occurs neither in the reference nor in the window is left
  out of its table (alibi-detect raises ValueError there, its issue #224);
- a table left with one column (the same constant category on both sides):
  statistic 0, p-value 1.0;
- identical constant numeric columns: KS statistic 0, p-value 1.0; a constant
  reference column has no spread, so its Wasserstein effect is in the column's
  own units instead of standard deviations;
- a blank `TotalCharges` of a customer with tenure 0 reads as 0.0, as in the
  feature transform; a row still missing a number is left out of the test and
  counted as `dropped`; a window with no row left is refused (`InvalidInput`).

Two backends, `drift.backend` in `model_config.yaml`:

- `scipy` (the default): the tests above, computed here with SciPy.
- `alibi`: alibi-detect 0.13.0's `TabularDrift` computes the p-values and the
  correction; the effect sizes and unseen counts are computed here, the same as
  for `scipy`. alibi-detect is imported only by this backend (optional extra
  `alibi`). Its licence: from 0.11.5 on, alibi-detect is under the Business
  Source License 1.1; production use needs a commercial licence from its
  vendor, Seldon (each version turns Apache-2.0 four years after its release).
  The default backend is scipy and needs none of it.

Stored as data (`save_detector` / `load_detector`): ``drift.json`` (format and
version, backend, configuration, features and their categories) and the
encoded reference as ``.npy`` arrays, never a pickle; the `alibi` backend adds
alibi-detect's own saved detector under ``alibi/``.
"""

from __future__ import annotations

import functools
import io
import json
import logging
import math
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
import pandas as pd
from pydantic import ValidationError
from scipy import special, stats

from churn_core.config import DriftConfig
from churn_core.errors import BundleUnusable, ConfigError, InvalidInput
from churn_model.contract import BLANK_ALLOWED, FEATURE_COLUMNS, Categorical, Column, Numeric

logger = logging.getLogger(__name__)

FORMAT = "churn-drift-detector"
FORMAT_VERSION = 1
CONFIG_FILE = "drift.json"
NUMERIC_FILE = "reference_numeric.npy"
CODES_FILE = "reference_codes.npy"
ALIBI_DIR = "alibi"
PSI_FLOOR = 1e-4
MAX_UNSEEN_VALUES = 10  # distinct unseen values listed per feature (all are counted)
BACKENDS = ("scipy", "alibi")

Kind = Literal["categorical", "numeric"]


@dataclass(frozen=True)
class FeatureDrift:
    """The verdict on one feature of one window."""

    name: str
    kind: Kind
    test: Literal["ks", "chi2"]
    statistic: float
    p_value: float
    effect: float
    effect_name: Literal["psi", "js", "wasserstein", "ks"]
    effect_threshold: float
    significant: bool  # p-value below the corrected threshold
    large: bool  # effect above effect_threshold
    drifted: bool  # significant and large
    unseen: int | None = None  # categories: window rows whose value the reference never had
    unseen_values: tuple[str, ...] = ()  # up to MAX_UNSEEN_VALUES of those values


@dataclass(frozen=True)
class DriftResult:
    """The verdict on one window: every feature, the correction, the window-level flag."""

    backend: str
    n: int  # window rows tested
    n_reference: int
    dropped: int  # window rows left out (a number missing)
    correction: str
    p_value: float  # the configured level, before the correction
    threshold: float  # the corrected p-value threshold
    features: tuple[FeatureDrift, ...]
    drift: bool = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "drift", any(f.drifted for f in self.features))

    @property
    def drifted_features(self) -> list[str]:
        """Names of the features that drifted."""
        return [f.name for f in self.features if f.drifted]

    def feature(self, name: str) -> FeatureDrift:
        """One feature's verdict by name."""
        for f in self.features:
            if f.name == name:
                return f
        raise KeyError(name)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready: plain floats, ints, bools and strings; features keyed by name."""
        features: dict[str, Any] = {}
        for f in self.features:
            entry = asdict(f)
            del entry["name"]
            entry["unseen_values"] = list(f.unseen_values)
            features[f.name] = entry
        return {
            "backend": self.backend,
            "n": self.n,
            "n_reference": self.n_reference,
            "dropped": self.dropped,
            "correction": self.correction,
            "p_value": self.p_value,
            "threshold": self.threshold,
            "drift": self.drift,
            "drifted_features": self.drifted_features,
            "features": features,
        }


# -- encoding: the reference and every window become the same arrays ------------------


@dataclass(frozen=True)
class _Encoded:
    numeric: np.ndarray  # (rows, numeric features) float64
    codes: np.ndarray  # (rows, categorical features) int16; k = outside the declared categories
    other: tuple[np.ndarray, ...]  # per categorical: the raw values coded `other`, as str
    dropped: int


def _numbers(series: pd.Series, name: str, what: str) -> np.ndarray:
    """A numeric column as float64; blank or missing -> NaN; any other non-number is refused."""
    if pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series):
        return series.to_numpy(dtype=np.float64, na_value=np.nan)
    text = series.astype("string").str.strip()
    values = pd.to_numeric(text.mask(text == ""), errors="coerce")
    bad = values.isna() & text.notna() & (text != "")
    if bad.any():
        value = series[bad].iloc[0]
        raise InvalidInput(
            f"{what} column {name}: {value!r} is not a number ({int(bad.sum())} such rows)"
        )
    return values.to_numpy(dtype=np.float64, na_value=np.nan)


_NO_VALUES = np.array([], dtype=str)


@functools.lru_cache(maxsize=256)
def _category_index(categories: tuple[str, ...]) -> pd.Index:
    return pd.Index(categories, dtype=object)


def _encode(frame: pd.DataFrame, columns: Sequence[Column], what: str) -> _Encoded:
    if not isinstance(frame, pd.DataFrame):
        raise InvalidInput(f"{what} must be a pandas DataFrame, got {type(frame).__name__}")
    missing = [c.name for c in columns if c.name not in frame.columns]
    if missing:
        raise InvalidInput(f"{what} lacks the columns {missing}")
    numeric_cols = [c for c in columns if isinstance(c, Numeric)]
    categorical_cols = [c for c in columns if isinstance(c, Categorical)]
    numbers = {c.name: _numbers(frame[c.name], c.name, what) for c in numeric_cols}
    for name, (condition, value) in BLANK_ALLOWED.items():
        if name in numbers and condition in numbers:
            numbers[name] = np.where(
                np.isnan(numbers[name]) & (numbers[condition] == value), 0.0, numbers[name]
            )
    numeric = np.empty((len(frame), len(numeric_cols)), dtype=np.float64)
    for i, c in enumerate(numeric_cols):
        numeric[:, i] = numbers[c.name]
    keep = ~np.isnan(numeric).any(axis=1)
    dropped = int((~keep).sum())
    codes = np.empty((len(frame), len(categorical_cols)), dtype=np.int16)
    other: list[np.ndarray] = []
    for j, col in enumerate(categorical_cols):
        raw = frame[col.name].to_numpy()
        c = _category_index(col.categories).get_indexer(raw).astype(np.int16)
        outside = c < 0
        c[outside] = len(col.categories)
        codes[:, j] = c
        leftover = outside & keep
        other.append(raw[leftover].astype(str) if leftover.any() else _NO_VALUES)
    return _Encoded(numeric[keep], codes[keep], tuple(other), dropped)


# -- the statistics (shared by both backends where no test is involved) -----------------


def chi2_table(table: np.ndarray) -> tuple[float, float]:
    """Chi-square test of a 2 x k table: (statistic, p-value), as `scipy.stats.chi2_contingency`.

    Columns empty on both rows are left out first (chi2_contingency raises on
    them); with one column left the statistic is 0 and the p-value 1.0. Pearson's
    statistic, with Yates' continuity correction at one degree of freedom.
    Computed directly: 15 calls of chi2_contingency would cost ~5 ms a window.
    """
    observed = np.asarray(table, dtype=np.float64)
    observed = observed[:, observed.sum(axis=0) > 0]
    dof = observed.shape[1] - 1
    if dof <= 0:
        return 0.0, 1.0
    expected = np.outer(observed.sum(axis=1), observed.sum(axis=0)) / observed.sum()
    if dof == 1:
        diff = expected - observed
        observed = observed + np.minimum(0.5, np.abs(diff)) * np.sign(diff)
    statistic = float(((observed - expected) ** 2 / expected).sum())
    return statistic, float(special.chdtrc(dof, statistic))


def psi(reference: np.ndarray, window: np.ndarray) -> float:
    """Population stability index of two count vectors (proportions floored at PSI_FLOOR)."""
    p = np.maximum(reference / reference.sum(), PSI_FLOOR)
    q = np.maximum(window / window.sum(), PSI_FLOOR)
    return float(((q - p) * np.log(q / p)).sum())


def js_distance(reference: np.ndarray, window: np.ndarray) -> float:
    """Jensen-Shannon distance (base 2, in [0, 1]) of two count vectors."""
    p, q = reference / reference.sum(), window / window.sum()
    m = (p + q) / 2
    with np.errstate(divide="ignore", invalid="ignore"):
        kl_p = np.where(p > 0, p * np.log2(p / m), 0.0).sum()
        kl_q = np.where(q > 0, q * np.log2(q / m), 0.0).sum()
    return float(math.sqrt(max((kl_p + kl_q) / 2, 0.0)))


def cdf_distances(reference_sorted: np.ndarray, window: np.ndarray) -> tuple[float, float]:
    """(Wasserstein-1, KS) distances between a sorted reference sample and a window sample."""
    window_sorted = np.sort(window)
    values = np.sort(np.concatenate([reference_sorted, window_sorted]))
    ref_cdf = np.searchsorted(reference_sorted, values, side="right") / len(reference_sorted)
    win_cdf = np.searchsorted(window_sorted, values, side="right") / len(window_sorted)
    gap = np.abs(ref_cdf - win_cdf)
    return float((gap[:-1] * np.diff(values)).sum()), float(gap.max())


def ks_p_values(statistics: np.ndarray, n_reference: int, n_window: int) -> np.ndarray:
    """Two-sided asymptotic KS p-values, as `scipy.stats.ks_2samp(..., method="asymp")`.

    Its own formula, `kstwo.sf(D, round(n * m / (n + m)))`, in one vectorized call
    for all numeric features (four ks_2samp calls cost twice as much); a unit
    test checks that the two agree bit for bit.
    """
    if len(statistics) == 0:
        return np.zeros(0)
    m, n = sorted((float(n_reference), float(n_window)), reverse=True)
    p = stats.kstwo.sf(np.asarray(statistics, dtype=np.float64), np.round(m * n / (m + n)))
    return np.clip(np.atleast_1d(p), 0.0, 1.0)


def bonferroni(p_values: np.ndarray, level: float) -> tuple[np.ndarray, float]:
    """Significant features and the threshold: p < level / n_features (alibi-detect's rule)."""
    threshold = level / len(p_values)
    return p_values < threshold, threshold


def benjamini_hochberg(p_values: np.ndarray, level: float) -> tuple[np.ndarray, float]:
    """Significant features and the threshold, as alibi-detect's `fdr` computes them.

    The sorted p-values are compared with level * i / n (strictly below); the
    threshold is the bound at the largest rank below it, and every p-value under
    that threshold is significant. With none below: nothing, threshold level / n.
    """
    n = len(p_values)
    bounds = level * np.arange(1, n + 1) / n
    below = np.flatnonzero(np.sort(p_values) < bounds)
    if below.size == 0:
        return np.zeros(n, dtype=bool), float(bounds[0])
    threshold = float(bounds[below.max()])
    return p_values < threshold, threshold


CORRECTIONS = {"bonferroni": bonferroni, "fdr": benjamini_hochberg}


# -- the detectors ----------------------------------------------------------------------


class DriftDetector:
    """A fitted detector: the encoded reference, the configuration; `test(window)`.

    Use `fit_detector` to make one and `load_detector` to read a stored one.
    Subclasses supply the tests' p-values and the correction (`_tests`).
    """

    backend: ClassVar[str] = ""

    def __init__(
        self,
        columns: Sequence[Column],
        config: DriftConfig,
        reference: _Encoded,
        other_seen: Mapping[str, Sequence[str]],
    ) -> None:
        self.columns = tuple(columns)
        self.config = config
        self.numeric_columns = tuple(c for c in self.columns if isinstance(c, Numeric))
        self.categorical_columns = tuple(c for c in self.columns if isinstance(c, Categorical))
        self.reference = reference
        self.n_reference = len(reference.numeric)
        if self.n_reference == 0:
            raise InvalidInput("the drift reference has no complete row")
        self.other_seen = {c.name: frozenset(other_seen.get(c.name, ())) for c in self.columns}
        self._sorted = [np.sort(reference.numeric[:, i]) for i in range(len(self.numeric_columns))]
        stds = [float(np.std(s)) for s in self._sorted]
        self._scale = [s if s > 0 else 1.0 for s in stds]
        self._counts = [
            np.bincount(reference.codes[:, j], minlength=len(c.categories) + 1)
            for j, c in enumerate(self.categorical_columns)
        ]

    # the backend's part: statistics and p-values in column order, significance, threshold
    def _tests(
        self, window: _Encoded, tables: list[np.ndarray], ks: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
        raise NotImplementedError

    def _files(self) -> dict[str, bytes]:
        return {}

    def _window_tables(self, window: _Encoded) -> list[np.ndarray]:
        """2 x (k + 1) count tables (reference, window) per categorical feature."""
        return [
            np.vstack([ref, np.bincount(window.codes[:, j], minlength=len(ref))])
            for j, ref in enumerate(self._counts)
        ]

    def _unseen(self, window: _Encoded, j: int, col: Categorical) -> tuple[int, tuple[str, ...]]:
        codes = window.codes[:, j]
        k = len(col.categories)
        absent = np.flatnonzero(self._counts[j][:k] == 0)
        count = int(np.isin(codes, absent).sum())
        values = {col.categories[a] for a in absent if (codes == a).any()}
        seen = self.other_seen[col.name]
        others = [v for v in window.other[j] if v not in seen]
        count += len(others)
        values.update(others)
        return count, tuple(sorted(values)[:MAX_UNSEEN_VALUES])

    def test(self, window: pd.DataFrame) -> DriftResult:
        """Test a window of rows (the contract's feature columns at least) against the reference."""
        encoded = _encode(window, self.columns, "drift window")
        n = len(encoded.numeric)
        if n == 0:
            raise InvalidInput(
                f"drift window has no complete row to test ({encoded.dropped} rows dropped)"
            )
        tables = self._window_tables(encoded)
        distances = [
            cdf_distances(ref, encoded.numeric[:, i]) for i, ref in enumerate(self._sorted)
        ]
        ks_statistics = np.array([d[1] for d in distances])
        statistics, p_values, significant, threshold = self._tests(encoded, tables, ks_statistics)
        cfg = self.config
        verdicts: list[FeatureDrift] = []
        i_num = i_cat = 0
        for i, col in enumerate(self.columns):
            if isinstance(col, Numeric):
                wasserstein, ks = distances[i_num]
                if cfg.numeric_effect == "wasserstein":
                    effect, limit = wasserstein / self._scale[i_num], cfg.wasserstein
                else:
                    effect, limit = ks, cfg.ks
                effect_name: Literal["psi", "js", "wasserstein", "ks"] = cfg.numeric_effect
                test: Literal["ks", "chi2"] = "ks"
                unseen: int | None = None
                unseen_values: tuple[str, ...] = ()
                i_num += 1
            else:
                table = tables[i_cat]
                used = table[:, table.sum(axis=0) > 0].astype(np.float64)
                if cfg.categorical_effect == "psi":
                    effect, limit = psi(used[0], used[1]), cfg.psi
                else:
                    effect, limit = js_distance(used[0], used[1]), cfg.js
                effect_name, test = cfg.categorical_effect, "chi2"
                unseen, unseen_values = self._unseen(encoded, i_cat, col)
                i_cat += 1
            large = bool(effect > limit)
            sig = bool(significant[i])
            verdicts.append(
                FeatureDrift(
                    name=col.name,
                    kind="numeric" if isinstance(col, Numeric) else "categorical",
                    test=test,
                    statistic=float(statistics[i]),
                    p_value=float(p_values[i]),
                    effect=float(effect),
                    effect_name=effect_name,
                    effect_threshold=float(limit),
                    significant=sig,
                    large=large,
                    drifted=sig and large,
                    unseen=unseen,
                    unseen_values=unseen_values,
                )
            )
        return DriftResult(
            backend=self.backend,
            n=n,
            n_reference=self.n_reference,
            dropped=encoded.dropped,
            correction=cfg.correction,
            p_value=cfg.p_value,
            threshold=float(threshold),
            features=tuple(verdicts),
        )


class ScipyDriftDetector(DriftDetector):
    """KS and chi-square computed with SciPy; never raises on degenerate data (the default)."""

    backend = "scipy"

    def _tests(
        self, window: _Encoded, tables: list[np.ndarray], ks: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
        n = len(self.columns)
        statistics, p_values = np.zeros(n), np.ones(n)
        ks_p = ks_p_values(ks, self.n_reference, len(window.numeric))
        i_num = i_cat = 0
        for i, col in enumerate(self.columns):
            if isinstance(col, Numeric):
                statistics[i], p_values[i] = ks[i_num], ks_p[i_num]
                i_num += 1
            else:
                statistics[i], p_values[i] = chi2_table(tables[i_cat])
                i_cat += 1
        significant, threshold = CORRECTIONS[self.config.correction](p_values, self.config.p_value)
        return statistics, p_values, significant, threshold


def _import_alibi() -> Any:
    try:
        from alibi_detect import cd, saving
    except ImportError as err:
        raise ConfigError(
            "drift.backend alibi needs alibi-detect, which is not installed: "
            "pip install 'churn-platform[alibi]' (Business Source License 1.1: see README, "
            "Drift detection), or use drift.backend scipy"
        ) from err
    return cd, saving


class AlibiDriftDetector(DriftDetector):
    """alibi-detect's `TabularDrift` computes the p-values and the correction.

    Business Source License 1.1 (from alibi-detect 0.11.5): production use needs
    a licence from Seldon. Raises where alibi-detect does (a declared category in
    neither the reference nor the window: ValueError, alibi-detect #224).
    """

    backend = "alibi"

    def __init__(self, *args: Any, alibi: Any = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.alibi = alibi if alibi is not None else self._fit_alibi()

    def _matrix(self, encoded: _Encoded) -> np.ndarray:
        """Rows x features in column order: numbers as they are, categories as integer codes."""
        matrix = np.empty((len(encoded.numeric), len(self.columns)), dtype=np.float64)
        i_num = i_cat = 0
        for i, col in enumerate(self.columns):
            if isinstance(col, Numeric):
                matrix[:, i] = encoded.numeric[:, i_num]
                i_num += 1
            else:
                matrix[:, i] = encoded.codes[:, i_cat]
                i_cat += 1
        return matrix

    def categories_per_feature(self) -> dict[int, list[int]]:
        """alibi-detect's `categories_per_feature`: declared codes (+ `other` if seen)."""
        out: dict[int, list[int]] = {}
        i_cat = 0
        for i, col in enumerate(self.columns):
            if isinstance(col, Categorical):
                k = len(col.categories)
                out[i] = list(range(k)) + ([k] if self._counts[i_cat][k] > 0 else [])
                i_cat += 1
        return out

    def _fit_alibi(self) -> Any:
        cd, _ = _import_alibi()
        return cd.TabularDrift(
            self._matrix(self.reference),
            p_val=self.config.p_value,
            categories_per_feature=self.categories_per_feature(),
            correction=self.config.correction,
        )

    def _tests(
        self, window: _Encoded, tables: list[np.ndarray], ks: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
        try:
            prediction = self.alibi.predict(
                self._matrix(window), drift_type="batch", return_p_val=True, return_distance=True
            )
        except ValueError as err:
            absent = [
                f"{c.name}={c.categories[a]!r}"
                for c, t in zip(self.categorical_columns, tables, strict=True)
                for a in np.flatnonzero(t[:, : len(c.categories)].sum(axis=0) == 0)
            ]
            raise ValueError(
                f"alibi-detect TabularDrift cannot test this window: {err} (declared categories "
                f"in neither the reference nor the window: {absent}; alibi-detect #224). "
                "drift.backend scipy tests such windows"
            ) from err
        data = prediction["data"]
        p_values = np.asarray(data["p_val"], dtype=np.float64)
        statistics = np.asarray(data["distance"], dtype=np.float64)
        threshold = data["threshold"]
        if np.ndim(threshold) == 0:  # a float: the threshold in force
            threshold = float(threshold)
            significant = p_values < threshold
        else:  # fdr with nothing below its bounds: the array of bounds
            threshold = float(np.asarray(threshold)[0])
            significant = np.zeros(len(p_values), dtype=bool)
        return statistics, p_values, significant, threshold

    def _files(self) -> dict[str, bytes]:
        _, saving = _import_alibi()
        with tempfile.TemporaryDirectory() as tmp:
            root = Path(tmp) / ALIBI_DIR
            saving.save_detector(self.alibi, root)
            return {
                f"{ALIBI_DIR}/{p.relative_to(root).as_posix()}": p.read_bytes()
                for p in sorted(root.rglob("*"))
                if p.is_file()
            }


_DETECTORS: dict[str, type[DriftDetector]] = {
    "scipy": ScipyDriftDetector,
    "alibi": AlibiDriftDetector,
}


def fit_detector(
    reference: pd.DataFrame,
    config: DriftConfig,
    columns: Sequence[Column] = FEATURE_COLUMNS,
) -> DriftDetector:
    """Fit a detector on reference rows (the contract's feature columns), with `config.backend`."""
    if config.backend not in _DETECTORS:
        raise ConfigError(f"drift.backend {config.backend!r}: expected one of {BACKENDS}")
    encoded = _encode(reference, columns, "drift reference")
    other_seen = {
        c.name: sorted(set(encoded.other[j].tolist()))
        for j, c in enumerate(c for c in columns if isinstance(c, Categorical))
    }
    detector = _DETECTORS[config.backend](columns, config, encoded, other_seen)
    logger.info(
        "drift detector (%s, %s) fitted on %d reference rows (%d dropped)",
        config.backend,
        config.correction,
        detector.n_reference,
        encoded.dropped,
    )
    return detector


# -- stored as data ---------------------------------------------------------------------


def _npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, np.ascontiguousarray(array), allow_pickle=False)
    return buffer.getvalue()


def detector_files(detector: DriftDetector) -> dict[str, bytes]:
    """The stored detector as relative path -> bytes (what a bundle writer adds under a folder)."""
    columns: list[dict[str, Any]] = []
    for c in detector.columns:
        if isinstance(c, Categorical):
            columns.append(
                {
                    "name": c.name,
                    "kind": "categorical",
                    "categories": list(c.categories),
                    "other_seen": sorted(detector.other_seen[c.name]),
                }
            )
        else:
            columns.append(
                {
                    "name": c.name,
                    "kind": "numeric",
                    "minimum": c.minimum,
                    "maximum": c.maximum,
                    "integer": c.integer,
                }
            )
    document = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "backend": detector.backend,
        "config": detector.config.model_dump(mode="json"),
        "n_reference": detector.n_reference,
        "reference_dropped": detector.reference.dropped,
        "columns": columns,
        "arrays": {"numeric": NUMERIC_FILE, "codes": CODES_FILE},
    }
    files = {
        NUMERIC_FILE: _npy(detector.reference.numeric.astype(np.float64)),
        CODES_FILE: _npy(detector.reference.codes.astype(np.int16)),
        **detector._files(),
    }
    files[CONFIG_FILE] = (json.dumps(document, indent=2) + "\n").encode()
    return files


def save_detector(detector: DriftDetector, directory: str | Path) -> Path:
    """Write the detector into `directory` (created): drift.json, .npy arrays, alibi/ if any."""
    root = Path(directory)
    for name, data in detector_files(detector).items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return root


def _columns(entries: list[dict[str, Any]]) -> tuple[Column, ...]:
    out: list[Column] = []
    for e in entries:
        if e["kind"] == "categorical":
            out.append(Categorical(e["name"], tuple(e["categories"])))
        else:
            out.append(Numeric(e["name"], e["minimum"], e["maximum"], bool(e["integer"])))
    return tuple(out)


def load_detector(directory: str | Path) -> DriftDetector:
    """Read a stored detector; refuses another format or version with a message naming both."""
    root = Path(directory)
    path = root / CONFIG_FILE
    try:
        document = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise BundleUnusable(f"{path}: not a readable drift detector: {err}") from err
    found = (document.get("format"), document.get("format_version"))
    if found != (FORMAT, FORMAT_VERSION):
        raise BundleUnusable(
            f"{path}: drift detector format {found[0]!r} version {found[1]!r}; "
            f"this code reads {FORMAT!r} version {FORMAT_VERSION}"
        )
    backend = document.get("backend")
    if backend not in _DETECTORS:
        raise BundleUnusable(f"{path}: unknown drift backend {backend!r}; expected {BACKENDS}")
    try:
        config = DriftConfig.model_validate(document["config"])
        columns = _columns(document["columns"])
        numeric = np.load(root / document["arrays"]["numeric"], allow_pickle=False)
        codes = np.load(root / document["arrays"]["codes"], allow_pickle=False)
    except (KeyError, TypeError, OSError, ValueError, ValidationError) as err:
        raise BundleUnusable(f"{path}: drift detector is incomplete or invalid: {err}") from err
    other_seen = {e["name"]: e.get("other_seen", []) for e in document["columns"]}
    n_other = sum(isinstance(c, Categorical) for c in columns)
    no_other = tuple(_NO_VALUES for _ in range(n_other))
    reference = _Encoded(numeric, codes, no_other, int(document.get("reference_dropped", 0)))
    if backend == "alibi":
        _, saving = _import_alibi()
        alibi = saving.load_detector(root / ALIBI_DIR)
        return AlibiDriftDetector(columns, config, reference, other_seen, alibi=alibi)
    return ScipyDriftDetector(columns, config, reference, other_seen)
