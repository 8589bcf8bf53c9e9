"""Glue between the KFP training components and `churn_components.training_steps`.

Takes KFP artifact objects (anything with ``.path``, ``.metadata`` and the
``log_*`` methods) and turns step results into what the KFP UI draws:
Metrics, ClassificationMetrics (ROC curve, confusion matrix) and Markdown.
No kfp import here, so it is testable with stand-ins.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

_METRIC_KEYS = ("roc_auc", "pr_auc", "f1", "precision", "recall", "accuracy", "brier", "ece")


def _setup() -> None:
    from churn_components.stages import component_logging

    component_logging()


def _config(config_json: str) -> Any:
    from churn_components.training_steps import config_from_json

    return config_from_json(config_json)


def _log(metrics: Any, values: Mapping[str, Any]) -> None:
    for key, value in values.items():
        if isinstance(value, bool | int | float) and value == value:
            metrics.log_metric(key, float(value))


def _annotate(artifact: Any, values: Mapping[str, Any]) -> None:
    artifact.metadata.update(json.loads(json.dumps(dict(values), default=str)))


def train(
    kind: str, train: Any, transform: Any, config_json: str, candidate: Any, metrics: Any
) -> None:
    """The body of train_logistic / train_xgboost / train_mlp."""
    from churn_components.training_steps import train_step

    _setup()
    start = time.perf_counter()
    result = train_step(
        train.path,
        transform.path,
        kind,
        _config(config_json),
        candidate.path,
        transform_sha256=transform.metadata.get("sha256"),
    )
    _annotate(candidate, {k: v for k, v in result.items() if k != "params"})
    _annotate(candidate, {"synthetic": bool(train.metadata.get("synthetic", False))})
    _log(metrics, {k: v for k, v in result.items() if k not in ("kind", "params")})
    metrics.log_metric("stage_seconds", time.perf_counter() - start)


def _log_curves(curves: Any, y: Any, p: Any, threshold: float) -> None:
    from churn_components.plots import confusion, roc_points

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
    import pickle

    from churn_components.report import model_report
    from churn_components.training_steps import evaluate_step

    _setup()
    start = time.perf_counter()
    config = _config(config_json)
    summaries = evaluate_step(
        {k: a.path for k, a in candidates.items()},
        train.path,
        test.path,
        transform.path,
        config,
        evaluation.path,
        transform_sha256=transform.metadata.get("sha256"),
    )
    stored = pickle.loads(Path(evaluation.path).read_bytes())  # noqa: S301 - our own artifact
    for kind, ev in stored["evaluations"].items():
        _log_curves(curves[kind], stored["y_test"], ev.test_scores, ev.thresholds["served"])
        s = summaries[kind]
        _log(metrics, {f"{kind}_cv_{k}": s["cv"][k] for k in _METRIC_KEYS})
        _log(metrics, {f"{kind}_test_{k}": s["test"][k] for k in _METRIC_KEYS})
        _log(metrics, {f"{kind}_threshold_{k}": v for k, v in s["thresholds"].items()})
    _annotate(evaluation, {"summaries": summaries})
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


def select(
    evaluation: Any, config_json: str, tracking_uri: str, decision: Any, metrics: Any
) -> str:
    """The body of the select component; returns the selected kind."""
    from churn_components.training_steps import select_step

    _setup()
    result = select_step(evaluation.path, _config(config_json), tracking_uri)
    Path(decision.path).write_text(json.dumps(result, indent=2, sort_keys=True) + "\n")
    _annotate(
        decision,
        {
            "selected": result["selected"],
            "promote": result["gate"]["promote"],
            "reason": result["gate"]["reason"],
        },
    )
    for item in result["ranking"]:
        metrics.log_metric(f"{item['kind']}_selection_score", float(item["score"]))
    metrics.log_metric("promote", float(bool(result["gate"]["promote"])))
    logger.info("selected %s; %s", result["selected"], result["gate"]["reason"])
    return str(result["selected"])


def register(
    candidates: Mapping[str, Any],
    evaluation: Any,
    decision: Any,
    raw: Any,
    train: Any,
    test: Any,
    transform: Any,
    config_json: str,
    tracking_uri: str,
    artifact_store: str,
    bundle: Any,
    metrics: Any,
    curves: Any,
    report: Any,
) -> str:
    """The body of the register component; returns the registered (or content) version."""
    import pickle

    from churn_components.training_steps import register_step

    _setup()
    from churn_core.settings import Settings

    settings = Settings()
    result = register_step(
        {k: a.path for k, a in candidates.items()},
        evaluation.path,
        json.loads(Path(decision.path).read_text()),
        train.path,
        test.path,
        transform.path,
        dict(raw.metadata),
        _config(config_json),
        bundle.path,
        tracking_uri=tracking_uri,
        artifact_store=artifact_store,
        connection_string=settings.azure_storage_connection_string or None,
        transform_sha256=transform.metadata.get("sha256"),
    )
    stored = pickle.loads(Path(evaluation.path).read_bytes())  # noqa: S301 - our own artifact
    selected = result["selected"]
    _log_curves(
        curves, stored["y_test"], stored["evaluations"][selected].test_scores, result["threshold"]
    )
    sel = result["summaries"][selected]
    _log(metrics, {f"cv_{k}": sel["cv"][k] for k in _METRIC_KEYS})
    _log(metrics, {f"test_{k}": sel["test"][k] for k in _METRIC_KEYS})
    _log(metrics, {"threshold": result["threshold"], "promote": float(result["promote"])})
    _annotate(
        bundle,
        {
            k: result.get(k)
            for k in ("selected", "version", "model_uri", "aliases", "bundle_uri", "run_id")
            if result.get(k) is not None
        },
    )
    _annotate(bundle, {"synthetic": result["synthetic"], "reason": result["reason"]})
    Path(report.path).write_text(result["report"])
    return str(result["version"])
