"""Glue between the KFP registry components and `churn_components.registry.steps`.

Takes KFP artifact objects and turns step results into what the KFP UI draws.
No kfp import here, so it is testable with stand-ins. The register component
is an entry point: it reads the store credentials from the ``CHURN_*`` settings
once, at its start, and passes them down.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from churn_components.common import annotate, component_logging, config_from_json, log_metrics
from churn_components.training.glue import METRIC_KEYS, log_curves

logger = logging.getLogger(__name__)


def select(
    evaluation: Any,
    test: Any,
    config_json: str,
    tracking_uri: str,
    decision: Any,
    metrics: Any,
) -> str:
    """The body of the select component; returns the selected kind.

    `test` is the held-out split the challenger was evaluated on; its metadata
    carries the data's ``synthetic`` flag.
    """
    from churn_components.registry.steps import select_step

    component_logging()
    result = select_step(
        evaluation.path,
        test.path,
        config_from_json(config_json),
        tracking_uri,
        data_metadata=dict(test.metadata),
    )
    Path(decision.path).write_text(json.dumps(result, indent=2, sort_keys=True) + "\n")
    gate = result["gate"]
    shown = {
        "selected": result["selected"],
        "promote": gate["promote"],
        "basis": gate["basis"],
        "reason": gate["reason"],
        "rows": gate["rows"],
        "champion_version": gate["champion_version"],
    }
    annotate(decision, {k: v for k, v in shown.items() if v is not None})
    for item in result["ranking"]:
        metrics.log_metric(f"{item['kind']}_selection_score", float(item["score"]))
    metrics.log_metric("challenger_gate_score", float(gate["challenger"]["score"]))
    if gate["champion"] is not None:
        metrics.log_metric("champion_gate_score", float(gate["champion"]["score"]))
    metrics.log_metric("promote", float(bool(gate["promote"])))
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
    trigger: str = "",
) -> str:
    """The body of the register component; returns the registered (or content) version.

    `trigger`: the retraining trigger's JSON (empty when started by hand), logged in the run.
    """
    from churn_components.registry.steps import register_step
    from churn_components.training.artifacts import read_evaluations

    connection_string = component_logging().azure_storage_connection_string
    result = register_step(
        {k: a.path for k, a in candidates.items()},
        evaluation.path,
        json.loads(Path(decision.path).read_text()),
        train.path,
        test.path,
        transform.path,
        dict(raw.metadata),
        config_from_json(config_json),
        bundle.path,
        tracking_uri=tracking_uri,
        artifact_store=artifact_store,
        connection_string=connection_string,
        transform_sha256=transform.metadata.get("sha256"),
        trigger=trigger,
    )
    evaluations, y_test = read_evaluations(evaluation.path)
    selected = result["selected"]
    log_curves(curves, y_test, evaluations[selected].test_scores, result["threshold"])
    sel = result["summaries"][selected]
    log_metrics(metrics, {f"cv_{k}": sel["cv"][k] for k in METRIC_KEYS})
    log_metrics(metrics, {f"test_{k}": sel["test"][k] for k in METRIC_KEYS})
    log_metrics(metrics, {"threshold": result["threshold"], "promote": float(result["promote"])})
    annotate(
        bundle,
        {
            k: result.get(k)
            for k in ("selected", "version", "model_uri", "aliases", "bundle_uri", "run_id")
            if result.get(k) is not None
        },
    )
    annotate(bundle, {"synthetic": result["synthetic"], "reason": result["reason"]})
    Path(report.path).write_text(result["report"])
    return str(result["version"])
