"""Training: fit the three candidates, and cross-validate each honestly.

Everything here is a plain function over numpy arrays and data frames; the KFP
components in `churn_components.training.component` are thin wrappers.

Honesty rules, enforced by construction:

* Hyperparameter search (the logistic C grid, XGBoost's number of trees by
  early stopping) happens inside whatever rows a fitter is given, on an inner
  stratified split of them. Cross-validation calls the fitter on the training
  part of each fold, so the outer held-out fold never informs a choice.
* Inside cross-validation the feature transform is re-fitted on the training
  part of each fold (a clone of the features stage's transform).
* Seeded and single-threaded where threads would change the numbers, so two
  runs with the same seed give identical predictions.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import clone
from sklearn.model_selection import RepeatedStratifiedKFold

from churn_core.config import ChurnConfig, LogisticConfig, MLPConfig, XGBoostConfig
from churn_core.errors import ConfigError, InvalidInput
from churn_model.contract import LABEL_COLUMN
from churn_model.features import ChurnFeatures
from churn_model.scorers import LogisticScorer, MLPScorer, XGBoostScorer, mlp_module

logger = logging.getLogger(__name__)

KINDS = ("logistic", "xgboost", "mlp")


def labels(frame: pd.DataFrame) -> np.ndarray:
    """The churn label as 0/1 integers."""
    if LABEL_COLUMN not in frame:
        raise InvalidInput(f"training data has no label column {LABEL_COLUMN!r}")
    values = frame[LABEL_COLUMN].to_numpy()
    if values.dtype.kind in "iub":
        y = values.astype(np.int64)
    else:
        y = (values == "Yes").astype(np.int64)
        unknown = set(np.unique(values[(values != "Yes") & (values != "No")]).tolist())
        if unknown:
            raise InvalidInput(
                f"column {LABEL_COLUMN!r}: unknown label value {sorted(unknown)[0]!r}"
            )
    if len(np.unique(y)) < 2:
        raise InvalidInput(f"column {LABEL_COLUMN!r}: needs both classes to train, got one")
    return y


def inner_split(y: np.ndarray, share: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A seeded stratified split of row indices into (fit, validation)."""
    rng = np.random.default_rng(seed)
    fit_parts, val_parts = [], []
    for cls in np.unique(y):
        idx = np.flatnonzero(y == cls)
        idx = idx[rng.permutation(len(idx))]
        n_val = max(1, int(round(share * len(idx))))
        val_parts.append(idx[:n_val])
        fit_parts.append(idx[n_val:])
    return np.sort(np.concatenate(fit_parts)), np.sort(np.concatenate(val_parts))


def _log_loss(y: np.ndarray, margin: np.ndarray) -> float:
    # mean of log(1 + exp(-s * margin)) with s = +-1, stable
    s = np.where(y == 1, 1.0, -1.0)
    return float(np.mean(np.logaddexp(0.0, -s * margin)))


# -- logistic regression -------------------------------------------------------
def fit_logistic_newton(
    X: np.ndarray,  # noqa: N803
    y: np.ndarray,
    C: float,  # noqa: N803
    max_iter: int = 100,
    tol: float = 1e-10,
    start: np.ndarray | None = None,
) -> np.ndarray:
    """L2-penalised logistic regression by damped Newton steps (sklearn's objective).

    Minimises ``C * sum(log-loss) + 0.5 * ||coef||^2`` with an unpenalised
    intercept, like ``sklearn.linear_model.LogisticRegression(C=C)``, to
    machine precision. A dense Newton step on ~50 columns costs a few
    milliseconds, which keeps 25-fold cross-validation with a C grid fast.

    Returns:
        The weights with the intercept last, shape (n_features + 1,).
    """
    n, d = X.shape
    A = np.empty((n, d + 1))
    A[:, :d] = X
    A[:, d] = 1.0
    reg = np.full(d + 1, 1.0 / C)
    reg[d] = 0.0
    w = np.zeros(d + 1) if start is None else start.astype(np.float64).copy()
    s = np.where(y == 1, 1.0, -1.0)

    def objective(w: np.ndarray) -> float:
        return float(np.sum(np.logaddexp(0.0, -s * (A @ w))) + 0.5 * np.sum(reg * w * w))

    f = objective(w)
    for _ in range(max_iter):
        z = A @ w
        p = 0.5 * (1.0 + np.tanh(0.5 * z))  # sigmoid without overflow
        grad = A.T @ (p - y) + reg * w
        h = p * (1.0 - p)
        H = (A * h[:, None]).T @ A
        H[np.diag_indices_from(H)] += reg + 1e-12
        step = np.linalg.solve(H, grad)
        t = 1.0
        while True:
            w_new = w - t * step
            f_new = objective(w_new)
            if f_new <= f - 1e-4 * t * float(grad @ step) or t < 1e-8:
                break
            t *= 0.5
        w, f_old, f = w_new, f, f_new
        if float(np.max(np.abs(t * step))) < 1e-9 or abs(f_old - f) <= tol * max(1.0, abs(f)):
            break
    return w


def fit_logistic(
    X: np.ndarray,  # noqa: N803
    y: np.ndarray,
    cfg: LogisticConfig,
    seed: int,
) -> LogisticScorer:
    """Pick C from the grid on an inner split of these rows (log-loss), refit on all of them."""
    fit_idx, val_idx = inner_split(y, cfg.validation_share, seed)
    losses: dict[float, float] = {}
    w = None
    for C in sorted(cfg.c_grid):  # noqa: N806 - warm start from the stronger penalty
        w = fit_logistic_newton(X[fit_idx], y[fit_idx], C, cfg.max_iter, start=w)
        losses[C] = _log_loss(y[val_idx], X[val_idx] @ w[:-1] + w[-1])
    best_c = min(losses, key=lambda c: (losses[c], c))
    w = fit_logistic_newton(X, y, best_c, cfg.max_iter, start=w)
    return LogisticScorer(
        coef=w[:-1],
        intercept=float(w[-1]),
        params={"C": best_c, "validation_log_loss": losses},
    )


# -- XGBoost -------------------------------------------------------------------
def xgboost_params(cfg: XGBoostConfig, seed: int, constraints: str | None) -> dict[str, Any]:
    """The booster parameters from config (single thread: deterministic and no CPU contention)."""
    params: dict[str, Any] = {
        "objective": "binary:logistic",
        "eval_metric": "logloss",
        "tree_method": "hist",
        "max_depth": cfg.max_depth,
        "eta": cfg.learning_rate,
        "subsample": cfg.subsample,
        "colsample_bytree": cfg.colsample_bytree,
        "min_child_weight": cfg.min_child_weight,
        "lambda": cfg.reg_lambda,
        "max_bin": cfg.max_bin,
        "nthread": 1,
        "seed": seed,
    }
    if constraints is not None:
        params["monotone_constraints"] = constraints
    return params


def monotone_vector(feature_names: list[str], cfg: XGBoostConfig) -> str | None:
    """XGBoost's `monotone_constraints` string for these output columns, or None."""
    if not cfg.monotone_constraints:
        return None
    unknown = set(cfg.monotone_constraints) - set(feature_names)
    if unknown:
        raise InvalidInput(
            f"models.xgboost.monotone_constraints: unknown output feature {sorted(unknown)[0]!r}; "
            f"known: {', '.join(feature_names)}"
        )
    signs = [int(cfg.monotone_constraints.get(name, 0)) for name in feature_names]
    return "(" + ",".join(str(s) for s in signs) + ")"


def excluded_columns(feature_names: list[str], cfg: XGBoostConfig) -> list[int]:
    """Positions of the output features matching `exclude_features` (fnmatch patterns)."""
    from fnmatch import fnmatchcase

    out = []
    for pattern in cfg.exclude_features:
        hits = [i for i, name in enumerate(feature_names) if fnmatchcase(name, pattern)]
        if not hits:
            raise InvalidInput(
                f"models.xgboost.exclude_features: {pattern!r} matches no output feature"
            )
        out += hits
    return sorted(set(out))


def check_feature_names(feature_names: list[str], cfg: XGBoostConfig) -> None:
    """Check that `models.xgboost` names only output features of the fitted transform.

    `model_config.yaml` is checked at load, but which output features exist
    depends on the transform (its tenure bands), so this runs when training
    starts, before any fold is fitted: a misspelt name would otherwise leave a
    constraint or an exclusion silently unapplied or fail deep inside
    cross-validation.

    Raises:
        ConfigError: naming the field, the value and the known output features.
    """
    from fnmatch import fnmatchcase

    known = set(feature_names)
    problems = [
        f"models.xgboost.monotone_constraints.{name} = {sign}: {name!r} is not an output feature"
        for name, sign in cfg.monotone_constraints.items()
        if name not in known
    ]
    problems += [
        f"models.xgboost.exclude_features[{i}] = {pattern!r}: matches no output feature"
        for i, pattern in enumerate(cfg.exclude_features)
        if not any(fnmatchcase(name, pattern) for name in feature_names)
    ]
    if problems:
        raise ConfigError(
            "; ".join(problems) + f" (the output features are: {', '.join(feature_names)})"
        )


def fit_xgboost(
    X: np.ndarray,  # noqa: N803
    y: np.ndarray,
    cfg: XGBoostConfig,
    seed: int,
    feature_names: list[str] | None = None,
) -> XGBoostScorer:
    """Number of trees by early stopping on an inner split of these rows, then refit on all.

    Excluded features are held constant while training, so no tree splits on
    them: the booster still takes the full transformed matrix (serving and
    TreeSHAP see the same width) and those columns get zero attribution.
    """
    import xgboost as xgb

    constraints = monotone_vector(feature_names, cfg) if feature_names else None
    params = xgboost_params(cfg, seed, constraints)
    excluded = excluded_columns(feature_names, cfg) if feature_names else []
    if excluded:
        X = X.copy()  # noqa: N806
        X[:, excluded] = 0.0
    fit_idx, val_idx = inner_split(y, cfg.validation_share, seed)
    dfit = xgb.DMatrix(X[fit_idx], label=y[fit_idx], nthread=1)
    dval = xgb.DMatrix(X[val_idx], label=y[val_idx], nthread=1)
    probe = xgb.train(
        params,
        dfit,
        num_boost_round=cfg.max_n_estimators,
        evals=[(dval, "validation")],
        early_stopping_rounds=cfg.early_stopping_rounds,
        verbose_eval=False,
    )
    # the probe saw (1 - share) of the rows; scale the rounds to the full set
    n_trees = max(1, int(round((probe.best_iteration + 1) / (1.0 - cfg.validation_share))))
    n_trees = min(n_trees, cfg.max_n_estimators)
    booster = xgb.train(params, xgb.DMatrix(X, label=y, nthread=1), num_boost_round=n_trees)
    return XGBoostScorer(
        booster,
        params={
            **params,
            "n_estimators": n_trees,
            "early_stopping_best": probe.best_iteration + 1,
            "excluded_features": [feature_names[i] for i in excluded] if feature_names else [],
        },
    )


# -- torch MLP -------------------------------------------------------------------
@contextlib.contextmanager
def torch_determinism(seed: int) -> Iterator[None]:
    """Seed torch, one thread, deterministic kernels; restore the previous state after."""
    import torch

    threads = torch.get_num_threads()
    deterministic = torch.are_deterministic_algorithms_enabled()
    torch.manual_seed(seed)
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    try:
        yield
    finally:
        torch.set_num_threads(threads)
        torch.use_deterministic_algorithms(deterministic)


def build_mlp(n_features: int, cfg: MLPConfig) -> Any:
    """The network (`churn_model.scorers.mlp_module`, the one a stored MLP is rebuilt with)."""
    return mlp_module(n_features, cfg.hidden, cfg.dropout)


def fit_mlp(
    X: np.ndarray,  # noqa: N803
    y: np.ndarray,
    cfg: MLPConfig,
    seed: int,
) -> MLPScorer:
    """Adam on the binary cross-entropy, seeded mini-batches, fixed epochs from config."""
    import torch

    with torch_determinism(seed):
        module = build_mlp(X.shape[1], cfg)
        opt = torch.optim.AdamW(
            module.parameters(), lr=cfg.learning_rate, weight_decay=cfg.weight_decay
        )
        xt = torch.from_numpy(np.ascontiguousarray(X, dtype=np.float32))
        yt = torch.from_numpy(y.astype(np.float32))
        rng = np.random.default_rng(seed)
        n = len(y)
        loss_fn = torch.nn.functional.binary_cross_entropy_with_logits
        module.train()
        for _ in range(cfg.epochs):
            order = torch.from_numpy(rng.permutation(n))
            for start in range(0, n, cfg.batch_size):
                batch = order[start : start + cfg.batch_size]
                opt.zero_grad(set_to_none=True)
                loss = loss_fn(module(xt[batch]).squeeze(1), yt[batch])
                loss.backward()
                opt.step()
        module.eval()
    return MLPScorer(module, params=cfg.model_dump())


# -- one entry for all three -----------------------------------------------------
Fitter = Callable[[np.ndarray, np.ndarray, int, list[str]], Any]


def fitter(kind: str, config: ChurnConfig) -> Fitter:
    """The fit function of one candidate kind, bound to its config."""
    m = config.models
    if kind == "logistic":
        return lambda X, y, seed, names: fit_logistic(X, y, m.logistic, seed)
    if kind == "xgboost":
        return lambda X, y, seed, names: fit_xgboost(X, y, m.xgboost, seed, names)
    if kind == "mlp":
        return lambda X, y, seed, names: fit_mlp(X, y, m.mlp, seed)
    raise InvalidInput(f"unknown model kind {kind!r}; known: {', '.join(KINDS)}")


@dataclass
class CVPredictions:
    """Out-of-fold predictions of repeated stratified k-fold cross-validation.

    `oof[r, i]` is the raw churn probability of training row i from the model
    of repeat r that did not see it; `fold[r, i]` is the fold it was held out in.
    """

    oof: np.ndarray
    fold: np.ndarray
    fold_params: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0


@dataclass
class Candidate:
    """One trained candidate: the final estimator and its cross-validation evidence."""

    kind: str
    estimator: Any
    cv: CVPredictions
    params: dict[str, Any]
    seconds: dict[str, float]


def cross_validate(
    frame: pd.DataFrame,
    y: np.ndarray,
    features: ChurnFeatures,
    kind: str,
    config: ChurnConfig,
) -> CVPredictions:
    """5x5 (configured) repeated stratified CV; the transform is re-fitted on every fold."""
    ev = config.evaluation
    seed = config.split.seed
    fit = fitter(kind, config)
    splitter = RepeatedStratifiedKFold(
        n_splits=ev.cv_folds, n_repeats=ev.cv_repeats, random_state=seed
    )
    oof = np.full((ev.cv_repeats, len(y)), np.nan)
    fold = np.full((ev.cv_repeats, len(y)), -1, dtype=np.int16)
    fold_params: list[dict[str, Any]] = []
    start = time.perf_counter()
    for i, (tr, te) in enumerate(splitter.split(np.zeros(len(y)), y)):
        r, k = divmod(i, ev.cv_folds)
        fold_features = clone(features).fit(frame.iloc[tr])
        X_tr = fold_features.transform(frame.iloc[tr])  # noqa: N806
        X_te = fold_features.transform(frame.iloc[te])  # noqa: N806
        names = [f.name for f in fold_features.output_features]
        est = fit(X_tr, y[tr], seed + i, names)
        oof[r, te] = est.score(X_te)
        fold[r, te] = k
        fold_params.append({"repeat": r, "fold": k, **_summary(est.params)})
    seconds = time.perf_counter() - start
    logger.info(
        "%s: %dx%d CV in %.1fs", kind, ev.cv_repeats, ev.cv_folds, seconds, extra={"kind": kind}
    )
    return CVPredictions(oof=oof, fold=fold, fold_params=fold_params, seconds=seconds)


def _summary(params: dict[str, Any]) -> dict[str, Any]:
    keep = ("C", "n_estimators", "early_stopping_best")
    return {k: params[k] for k in keep if k in params}


def train_candidate(
    train: pd.DataFrame,
    features: ChurnFeatures,
    kind: str,
    config: ChurnConfig,
) -> Candidate:
    """Cross-validate one kind, then fit it on the whole training split.

    Args:
        train: the training split (contract feature columns and the label).
        features: the transform fitted on `train` by the features stage; the
            final estimator is fitted on its output, CV folds re-fit clones.
        kind: logistic, xgboost or mlp.
        config: the whole configuration.
    """
    if kind == "xgboost":
        check_feature_names([f.name for f in features.output_features], config.models.xgboost)
    y = labels(train)
    cv = cross_validate(train, y, features, kind, config)
    start = time.perf_counter()
    X = features.transform(train)  # noqa: N806
    names = [f.name for f in features.output_features]
    estimator = fitter(kind, config)(X, y, config.split.seed, names)
    final_seconds = time.perf_counter() - start
    logger.info("%s: final fit in %.2fs", kind, final_seconds)
    return Candidate(
        kind=kind,
        estimator=estimator,
        cv=cv,
        params=dict(estimator.params),
        seconds={"cv": cv.seconds, "final_fit": final_seconds},
    )
