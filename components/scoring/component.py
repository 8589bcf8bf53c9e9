"""KFP v2 lightweight components for `churn-scoring`: plan, score a shard, merge.

Thin typed wrappers over `churn_components.scoring.glue` (which calls the
plain functions of `churn_components.scoring.steps`, the ones `churn score`
runs). ``model_uri``: a bundle folder, a blob URI or ``models:/<name>@<alias>``
/ ``models:/<name>/<version>``; empty: the registry's champion, through
``tracking_uri``. Store credentials come from the component's environment.
"""

# No `from __future__ import annotations` here: KFP reads the annotations at decoration.
from kfp import dsl
from kfp.dsl import HTML, Dataset, Input, Markdown, Metrics, Output

from churn_components.common import COMPONENTS_IMAGE


@dsl.component(base_image=COMPONENTS_IMAGE, install_kfp_package=False)
def plan_shards(input_uri: str, shard_rows: int, chunk_rows: int) -> list[dict]:
    """Row ranges of the customer file, each a whole number of chunks."""
    from churn_components.scoring import glue

    return glue.plan(input_uri, shard_rows, chunk_rows)


@dsl.component(base_image=COMPONENTS_IMAGE, install_kfp_package=False)
def score_shard(
    input_uri: str,
    shard: dict,
    model_uri: str,
    tracking_uri: str,
    reasons: bool,
    chunk_rows: int,
    workers: int,
    config_json: str,
    scores: Output[Dataset],
    rejected: Output[Dataset],
) -> None:
    """Validate and score one row range: probabilities, reasons, the best offer, EV.

    ``workers``: processes on the shard's chunks (at most one per chunk).
    """
    from churn_components.scoring import glue

    glue.score_shard(
        input_uri,
        shard,
        model_uri,
        tracking_uri,
        reasons,
        chunk_rows,
        workers,
        config_json,
        scores,
        rejected,
    )


@dsl.component(base_image=COMPONENTS_IMAGE, install_kfp_package=False)
def merge_scores(
    input_uri: str,
    scores: Input[list[Dataset]],
    rejected: Input[list[Dataset]],
    config_json: str,
    top: int,
    artifact_store: str,
    retention_list: Output[Dataset],
    retention_csv: Output[Dataset],
    rejected_rows: Output[Dataset],
    summary: Output[Markdown],
    distribution: Output[HTML],
    metrics: Output[Metrics],
) -> str:
    """Rank the shards' customers, settle duplicate ids, write the list and the summary.

    Fails above ``data.max_rejected_share`` (after writing the rejected rows).
    """
    from churn_components.scoring import glue

    return glue.merge(
        input_uri,
        scores,
        rejected,
        config_json,
        top,
        artifact_store,
        retention_list,
        retention_csv,
        rejected_rows,
        summary,
        distribution,
        metrics,
    )
