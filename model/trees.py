"""A vectorised evaluator of an XGBoost tree ensemble, for small serving batches.

`Booster.inplace_predict` costs ~0.3 ms per call on one row (per-call set-up
in the library, not the trees: 120 depth-3 trees are ~400 comparisons). The
serving path predicts one or a few customers per call, so that set-up is a
third of a request. `CompiledTrees` holds the same trees as padded numpy
arrays and walks all of them at once for a batch: the same splits
(``x < threshold`` on float32 inputs, missing values to the default side),
the same leaf values, the booster's base score.

It is an accelerator, never a second model: `accelerate` uses it only after
checking, at load time, that it reproduces the booster's own probabilities
on the bundle's background rows and a probe to within `TOLERANCE`; anything
else (categorical splits, multi-output, another objective, a mismatch) keeps
the booster. TreeSHAP explanations always use the booster itself.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import numpy as np

logger = logging.getLogger(__name__)

TOLERANCE = 1e-7
# above this many rows the booster's own (multi-row optimised) predictor is faster
SMALL_BATCH = 16


class CompiledTrees:
    """The trees of a binary:logistic gbtree booster as padded arrays."""

    def __init__(self, booster: Any) -> None:
        model = json.loads(bytes(booster.save_raw("json")))
        learner = model["learner"]
        objective = learner["objective"]["name"]
        if objective != "binary:logistic":
            raise ValueError(f"objective {objective} is not binary:logistic")
        gbm = learner["gradient_booster"]
        if gbm.get("name") != "gbtree":
            raise ValueError(f"booster {gbm.get('name')} is not gbtree")
        params = learner["learner_model_param"]
        if int(params.get("num_target", "1")) != 1 or int(params.get("num_class", "0")) > 1:
            raise ValueError("multi-output boosters are not supported")
        trees = gbm["model"]["trees"]
        if not trees:
            raise ValueError("no trees")
        width = max(len(t["left_children"]) for t in trees)
        shape = (len(trees), width)
        self.left = np.zeros(shape, dtype=np.int32)
        self.right = np.zeros(shape, dtype=np.int32)
        self.feature = np.zeros(shape, dtype=np.int32)
        self.threshold = np.zeros(shape, dtype=np.float32)
        self.default_left = np.zeros(shape, dtype=bool)
        self.leaf = np.ones(shape, dtype=bool)
        self.value = np.zeros(shape, dtype=np.float32)
        depth = 0
        for i, tree in enumerate(trees):
            if any(tree.get("split_type", [])) or tree.get("categories_nodes"):
                raise ValueError("categorical splits are not supported")
            left = np.asarray(tree["left_children"], dtype=np.int64)
            n = len(left)
            is_leaf = left == -1
            self.leaf[i, :n] = is_leaf
            self.left[i, :n] = np.where(is_leaf, np.arange(n), left)
            right = np.asarray(tree["right_children"], dtype=np.int64)
            self.right[i, :n] = np.where(is_leaf, np.arange(n), right)
            self.feature[i, :n] = np.where(is_leaf, 0, tree["split_indices"])
            cond = np.asarray(tree["split_conditions"], dtype=np.float64).astype(np.float32)
            self.threshold[i, :n] = cond
            self.value[i, :n] = np.where(is_leaf, cond, 0.0)
            self.default_left[i, :n] = np.asarray(tree["default_left"], dtype=bool)
            depth = max(depth, _depth(left, right))
        self.depth = depth
        self.n_trees = len(trees)
        self.n_features = int(params["num_feature"])
        base_score = float(str(params["base_score"]).strip("[]").split(",")[0])
        self.base_margin = np.float32(-np.log(np.float32(1.0) / np.float32(base_score) - 1))
        # flat views: children as absolute flat indices, leaves pointing at themselves
        offsets = (np.arange(self.n_trees, dtype=np.int64) * width)[:, None]
        self._offsets = offsets.reshape(1, -1)
        self._left = (self.left + offsets).reshape(-1)
        self._right = (self.right + offsets).reshape(-1)
        self._feature = self.feature.reshape(-1).astype(np.int64)
        self._threshold = self.threshold.reshape(-1)
        self._default_left = self.default_left.reshape(-1)
        self._value = self.value.reshape(-1)

    def margin(self, X: np.ndarray) -> np.ndarray:  # noqa: N803
        """Log-odds per row (float64 holding the booster's float32 sum)."""
        x = np.asarray(X, dtype=np.float32)
        if x.ndim == 1:
            x = x.reshape(1, -1)
        n = x.shape[0]
        if x.shape[1] != self.n_features:
            raise ValueError(f"{x.shape[1]} columns, the trees expect {self.n_features}")
        # flat node index per (row, tree): tree * width + node
        idx = np.broadcast_to(self._offsets, (n, self.n_trees)).copy()
        row_base = (np.arange(n, dtype=np.int64) * self.n_features)[:, None]
        flat_x = x.reshape(-1)
        for _ in range(self.depth):
            value = flat_x.take(row_base + self._feature.take(idx))
            left = value < self._threshold.take(idx)
            missing = np.isnan(value)
            if missing.any():
                left = np.where(missing, self._default_left.take(idx), left)
            idx = np.where(left, self._left.take(idx), self._right.take(idx))
        # float32, tree after tree, from the base margin: the booster's own accumulation
        terms = np.empty((n, self.n_trees + 1), dtype=np.float32)
        terms[:, 0] = self.base_margin
        terms[:, 1:] = self._value.take(idx)
        return np.asarray(np.cumsum(terms, axis=1, dtype=np.float32)[:, -1], dtype=np.float64)


def _depth(left: np.ndarray, right: np.ndarray) -> int:
    best, stack = 0, [(0, 0)]
    while stack:
        node, d = stack.pop()
        if left[node] == -1:
            best = max(best, d)
        else:
            stack += [(int(left[node]), d + 1), (int(right[node]), d + 1)]
    return best


class AcceleratedXGBoostScorer:
    """The bundle's `XGBoostScorer` with `CompiledTrees` for `score`/`margin`.

    Exposes the original `booster` (TreeSHAP) and `kind`, like the scorer.
    """

    kind = "xgboost"

    def __init__(self, scorer: Any, compiled: CompiledTrees) -> None:
        self.original = scorer
        self.booster = scorer.booster
        self.compiled = compiled

    @property
    def n_features(self) -> int:
        """Width of the transformed matrix it expects."""
        return self.compiled.n_features

    def margin(self, X: np.ndarray) -> np.ndarray:  # noqa: N803
        """Log-odds of churn per row."""
        if len(X) > SMALL_BATCH:
            return np.asarray(self.original.margin(X))
        return self.compiled.margin(X)

    def score(self, X: np.ndarray) -> np.ndarray:  # noqa: N803
        """Churn probability per row, rounded to float32 like the booster's."""
        if len(X) > SMALL_BATCH:
            return np.asarray(self.original.score(X))
        return self.compiled_score(X)

    def compiled_score(self, X: np.ndarray) -> np.ndarray:  # noqa: N803
        """Probability from the compiled trees, whatever the batch size."""
        # the booster's float32 sigmoid; exp via float64 rounded once (a correctly rounded expf)
        e = np.exp(-self.compiled.margin(X)).astype(np.float32)
        p = np.float32(1.0) / (np.float32(1.0) + e)
        return np.asarray(p, dtype=np.float64)


def accelerate(model: Any, check_rows: np.ndarray) -> bool:
    """Swap an XGBoost model's scorer for the compiled trees if they agree with the booster.

    Args:
        model: a `ChurnModel`; changed in place only when the check passes.
        check_rows: transformed rows to compare the two on (background sample, probes).

    Returns:
        Whether the compiled trees are now used.
    """
    scorer = model.estimator
    if getattr(scorer, "kind", None) != "xgboost" or not hasattr(scorer, "booster"):
        return False
    try:
        compiled = CompiledTrees(scorer.booster)
        fast = AcceleratedXGBoostScorer(scorer, compiled)
        diff = max(
            float(np.abs(fast.compiled_score(chunk) - scorer.score(chunk)).max())
            for chunk in np.array_split(check_rows, max(1, len(check_rows) // 256))
        )
    except (ValueError, KeyError, IndexError, TypeError) as err:
        logger.warning("serving with the booster itself (trees not compiled: %s)", err)
        return False
    if not diff <= TOLERANCE:
        logger.warning(
            "serving with the booster itself: compiled trees differ by %.3g > %.1g", diff, TOLERANCE
        )
        return False
    model.estimator = fast
    logger.info(
        "compiled %d trees (depth %d) for serving; max |p - booster p| = %.2g on %d rows",
        compiled.n_trees,
        compiled.depth,
        diff,
        len(check_rows),
    )
    return True
