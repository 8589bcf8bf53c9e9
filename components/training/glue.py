"""Glue between the KFP training components and `churn_components.training.steps`.

Takes KFP artifact objects (anything with ``.path``, ``.metadata`` and the
``log_*`` methods) and turns step results into what the KFP UI draws:
Metrics, ClassificationMetrics (ROC curve, confusion matrix) and Markdown.
No kfp import here, so it is testable with stand-ins.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from churn_components.common import annotate, component_logging, config_from_json, log_metrics

logger = logging.getLogger(__name__)

METRIC_KEYS = ("roc_auc", "pr_auc", "f1", "precision", "recall", "accuracy", "brier", "ece")


def train(
    kind: str, train: Any, transform: Any, config_json: str, candidate: Any, metrics: Any
) -> None:
    """The body of train_logistic / train_xgboost / train_mlp."""
    from churn_components.training.steps import train_step

    component_logging()
    start = time.perf_counter()
    result = train_step(
        train.path,
        transform.path,
        kind,
        config_from_json(config_json),
        candidate.path,
        transform_sha256=transform.metadata.get("sha256"),
    )
    annotate(candidate, {k: v for k, v in result.items() if k != "params"})
    annotate(candidate, {"synthetic": bool(train.metadata.get("synthetic", False))})
    log_metrics(metrics, {k: v for k, v in result.items() if k not in ("kind", "params")})
    metrics.log_metric("stage_seconds", time.perf_counter() - start)


def log_curves(curves: Any, y: Any, p: Any, threshold: float) -> None:
    """A held-out ROC curve and confusion matrix on a KFP ClassificationMetrics artifact."""
    from churn_components.training.plots import confusion, roc_points

    roc = roc_points(y, p)
    curves.log_roc_curve(roc["fpr"], roc["tpr"], roc["thresholds"])
    curves.log_confusion_matrix(["No", "Yes"], confusion(y, p, threshold))


def evaluate(
    candidates: Mapping[str, Any],
    train: Any,
    test: Any,
    transform: Any,
    config_json: str,
    evaluation: Any,
    metrics: Any,
    curves: Mapping[str, Any],
    report: Any,
) -> None:
    """The body of the evaluate component."""
    from churn_components.training.artifacts import read_evaluations
    from churn_components.training.report import model_report
    from churn_components.training.steps import evaluate_step

    component_logging()
    start = time.perf_counter()
    config = config_from_json(config_json)
    summaries = evaluate_step(
        {k: a.path for k, a in candidates.items()},
        train.path,
        test.path,
        transform.path,
        config,
        evaluation.path,
        transform_sha256=transform.metadata.get("sha256"),
    )
    evaluations, y_test = read_evaluations(evaluation.path)
    for kind, ev in evaluations.items():
        log_curves(curves[kind], y_test, ev.test_scores, ev.thresholds["served"])
        s = summaries[kind]
        log_metrics(metrics, {f"{kind}_cv_{k}": s["cv"][k] for k in METRIC_KEYS})
        log_metrics(metrics, {f"{kind}_test_{k}": s["test"][k] for k in METRIC_KEYS})
        log_metrics(metrics, {f"{kind}_threshold_{k}": v for k, v in s["thresholds"].items()})
    annotate(evaluation, {"summaries": summaries})
    synthetic = bool(train.metadata.get("synthetic", False))
    best = max(summaries, key=lambda k: summaries[k]["cv"]["roc_auc"])
    text = model_report(
        summaries,
        f"(not yet selected; best CV ROC-AUC: {best})",
        synthetic=synthetic,
        cv_shape=(config.evaluation.cv_repeats, config.evaluation.cv_folds),
    )
    Path(report.path).write_text(text)
    metrics.log_metric("stage_seconds", time.perf_counter() - start)
