"""The training stages over files: what the KFP components (and tests) call.

train (one per kind) -> evaluate; `churn_components.registry.steps` goes on
from there. Each reads the data stages' outputs (Parquet splits, the stored
`ChurnFeatures`) and writes its own artifacts as data
(`churn_components.training.artifacts`: a candidate, the evaluations); the KFP
wrappers in `churn_components.training.component` only pass paths and log what
these return.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from churn_components.common import jsonable, read_dataset, read_features
from churn_components.training.artifacts import read_candidate, write_candidate, write_evaluations
from churn_components.training.evaluate import Evaluation, evaluate_candidate
from churn_components.training.train import Candidate, labels, train_candidate
from churn_core.config import ChurnConfig
from churn_core.errors import InvalidInput

logger = logging.getLogger(__name__)


# -- train ------------------------------------------------------------------------
def train_step(
    train_path: str | Path,
    transform_path: str | Path,
    kind: str,
    config: ChurnConfig,
    candidate_path: str | Path,
    *,
    transform_sha256: str | None = None,
) -> dict[str, Any]:
    """Cross-validate and fit one kind; store the `Candidate` (or a skip marker) as data."""
    if kind not in config.models.enabled:
        logger.info("%s: not in models.enabled, skipped", kind)
        write_candidate(candidate_path, kind, None)
        return {"kind": kind, "skipped": True}
    start = time.perf_counter()
    train = read_dataset(train_path)
    features = read_features(transform_path, transform_sha256)
    candidate = train_candidate(train, features, kind, config)
    write_candidate(candidate_path, kind, candidate)
    y = labels(train)
    from sklearn.metrics import roc_auc_score

    raw_auc = float(
        np.mean(
            [
                roc_auc_score(
                    y[candidate.cv.fold[r] == k], candidate.cv.oof[r][candidate.cv.fold[r] == k]
                )
                for r in range(candidate.cv.oof.shape[0])
                for k in np.unique(candidate.cv.fold[r])
            ]
        )
    )
    return {
        "kind": kind,
        "skipped": False,
        "cv_raw_roc_auc": raw_auc,
        "cv_seconds": candidate.seconds["cv"],
        "final_fit_seconds": candidate.seconds["final_fit"],
        "seconds": time.perf_counter() - start,
        "params": jsonable(candidate.params),
    }


def load_candidates(paths: Mapping[str, str | Path]) -> dict[str, Candidate]:
    """The trained candidates (skipped kinds left out)."""
    out: dict[str, Candidate] = {}
    for kind, path in paths.items():
        stored_kind, candidate = read_candidate(path)
        if stored_kind != kind:
            raise InvalidInput(f"{path} holds the {stored_kind} candidate, not {kind}")
        if candidate is not None:
            out[kind] = candidate
    if not out:
        raise InvalidInput("no candidate was trained: models.enabled is empty")
    return out


# -- evaluate ---------------------------------------------------------------------
def evaluate_step(
    candidate_paths: Mapping[str, str | Path],
    train_path: str | Path,
    test_path: str | Path,
    transform_path: str | Path,
    config: ChurnConfig,
    evaluation_path: str | Path,
    *,
    transform_sha256: str | None = None,
) -> dict[str, dict[str, Any]]:
    """Evaluate every candidate (calibration, thresholds, CV, held-out, leakage guard)."""
    candidates = load_candidates(candidate_paths)
    train, test = read_dataset(train_path), read_dataset(test_path)
    features = read_features(transform_path, transform_sha256)
    y_train, y_test = labels(train), labels(test)
    X_test = features.transform(test)  # noqa: N806
    evaluations: dict[str, Evaluation] = {}
    for kind, candidate in candidates.items():
        evaluations[kind] = evaluate_candidate(candidate, y_train, X_test, y_test, config)
    write_evaluations(evaluation_path, evaluations, y_test)
    return {kind: summary(ev, candidates[kind]) for kind, ev in evaluations.items()}


def summary(ev: Evaluation, candidate: Candidate) -> dict[str, Any]:
    """An evaluation's JSON-ready figures with the candidate's hyperparameters."""
    return {**ev.summary(), "params": jsonable(candidate.params)}
