"""Glue between the KFP scoring components and `churn_components.scoring.steps`.

Takes KFP artifact objects (anything with ``.path`` and ``.metadata``,
`log_metric` for metrics) and the pipeline's ``config_json``; no kfp import
here. Each body is an entry point: it reads the ``CHURN_*`` settings once (the
store's connection string) and passes them down.
"""

from __future__ import annotations

import base64
import logging
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from churn_components import common
from churn_components.scoring import steps, summary

logger = logging.getLogger(__name__)


def model_uri_or_champion(model_uri: str, config: Any) -> str:
    """The bundle to score with: `model_uri`, else the registry's champion."""
    return model_uri or f"models:/{config.registry.model_name}@champion"


def plan(input_uri: str, shard_rows: int, chunk_rows: int) -> list[dict[str, int]]:
    """The body of plan_shards: row ranges of the customer file, whole chunks each."""
    connection = common.component_logging().azure_storage_connection_string
    rows = steps.count_rows(input_uri, connection)
    shards = steps.plan_shards(rows, shard_rows, chunk_rows)
    logger.info("%s: %d data rows in %d shard(s)", input_uri, rows, len(shards))
    return shards


def score_shard(
    input_uri: str,
    shard: dict[str, int],
    model_uri: str,
    tracking_uri: str,
    reasons: bool,
    chunk_rows: int,
    workers: int,
    config_json: str,
    scores: Any,
    rejected: Any,
) -> None:
    """The body of score_shard: one row range scored with the bundle, as `churn score` does.

    In `workers` processes (no more than the shard has chunks), merged into one shard.
    """
    settings = common.component_logging()
    config = common.config_from_json(config_json)
    uri = model_uri_or_champion(model_uri, config)
    start, stop = int(shard["start"]), int(shard["stop"])
    chunks = -(-(stop - start) // max(chunk_rows, 1))
    with tempfile.TemporaryDirectory(prefix="churn-score-") as tmp:
        local = steps.fetch_bundle(
            uri, Path(tmp), settings.azure_storage_connection_string, tracking_uri
        )
        scorer = steps.load_scorer(local, config.explainer)
        parts = steps.score_parts(
            input_uri,
            scorer,
            config.economics,
            workers=max(1, min(workers, chunks)),
            start=start,
            stop=stop,
            reasons=reasons,
            chunk_rows=chunk_rows,
            connection_string=settings.azure_storage_connection_string,
        )
    result = steps.combine(parts)
    meta = steps.write_shard(result, scores.path, rejected.path)
    meta = {**meta, **{k: int(v) for k, v in shard.items()}, "model_uri": uri}
    common.annotate(scores, meta)
    common.annotate(rejected, meta)
    logger.info("shard %s: %d rows, %d scored", shard["shard"], meta["rows"], meta["scored_rows"])


def merge(
    input_uri: str,
    scores: Sequence[Any],
    rejected: Sequence[Any],
    config_json: str,
    top: int,
    artifact_store: str,
    retention_list: Any,
    retention_csv: Any,
    rejected_rows: Any,
    report: Any,
    distribution: Any,
    metrics: Any,
) -> str:
    """The body of merge_scores: rank, settle duplicate ids across shards, write, check.

    The rejected cells, the list and the summary are written before the
    rejected share is checked, so a failed run still shows why. Returns the
    list's store URI (its local path without an artifact store).
    """
    connection = common.component_logging().azure_storage_connection_string
    config = common.config_from_json(config_json)
    by_shard = sorted(zip(scores, rejected, strict=True), key=lambda p: p[0].metadata["shard"])
    shards = [steps.read_shard(s.path, r.path, dict(s.metadata)) for s, r in by_shard]
    result = steps.finish(input_uri, shards, max_rejected_share=None)
    steps.write_list(
        result.scores[list(steps.LIST_COLUMNS)], retention_list.path, retention_csv.path
    )
    result.rejected.to_csv(rejected_rows.path, index=False)
    numbers = summary.summarize(result.scores, config.economics, config.features.tenure_bands, top)
    text = summary.markdown(numbers, result.report)
    Path(report.path).write_text(text)
    png = summary.distribution_png(result.scores, shards[0].threshold)
    Path(distribution.path).write_text(distribution_html(png))
    facts = {
        "input_rows": result.report["input_rows"],
        "accepted_rows": result.report["accepted_rows"],
        "rejected_rows": result.report["rejected_rows"],
        "rejected_share": result.report["rejected_share"],
        "shards": len(shards),
        "expected_churners": numbers["total"]["expected_churners"],
        "revenue_at_risk": numbers["total"]["revenue_at_risk"],
        "top_n_value": numbers["total"]["top_n_value"],
    }
    common.log_metrics(metrics, facts)
    for artifact in (retention_list, retention_csv, rejected_rows):
        common.annotate(artifact, {**facts, "model": result.report["model"]})
    location = retention_list.path
    if artifact_store:
        files = {
            "list.parquet": retention_list.path,
            "list.csv": retention_csv.path,
            "rejected.csv": rejected_rows.path,
            "summary.md": report.path,
        }
        prefix = steps.publish(
            artifact_store, files, {**result.report, "summary": numbers}, connection
        )
        location = f"{prefix}/list.parquet"
        common.annotate(retention_list, {"store_uri": location})
    steps.check_share(result, config.data.max_rejected_share)
    return location


def distribution_html(png: bytes) -> str:
    """The score histogram as a self-contained HTML page (the KFP UI draws HTML artifacts)."""
    data = base64.b64encode(png).decode("ascii")
    return (
        "<!doctype html><html><head><meta charset='utf-8'><title>Score distribution</title>"
        f"</head><body><img alt='churn probability histogram' src='data:image/png;base64,{data}'>"
        "</body></html>\n"
    )
