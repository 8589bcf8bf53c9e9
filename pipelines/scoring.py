"""The KFP pipeline `churn-scoring`: the retention list for a whole customer file.

::

    plan-shards -> ParallelFor(shard) score-shard -> merge-scores

`plan-shards` counts the file's rows and cuts them into row ranges of whole
chunks; every `score-shard` validates and scores its range with the champion
bundle (or ``model_uri``), the same functions `churn score` runs, in
``shard_workers`` processes (one per requested core); `merge-scores`
settles duplicate ids across shards, ranks, writes the list (Parquet + CSV),
the rejected cells, the summary (Markdown) and the score distribution (HTML),
copies them to the artifact store and fails above ``data.max_rejected_share``.
On a cluster the shards run side by side; in the embedded default
(`run_local`) kfp.local runs them one after the other.
`compile_pipeline` writes the IR committed as ``pipelines/churn_scoring.yaml``.
"""

# No `from __future__ import annotations` here: KFP reads the pipeline's annotations.
import time
from pathlib import Path
from typing import Any

from churn_core.config import ChurnConfig

PIPELINE_NAME = "churn-scoring"
IR_FILE = Path(__file__).resolve().with_name("churn_scoring.yaml")  # the source tree
SHARD_ROWS = 250_000
CHUNK_ROWS = 50_000
TOP = 1000
SHARD_WORKERS = 2  # processes per shard: one per requested core
SHARD_CPU = str(SHARD_WORKERS)
SHARD_MEMORY = "4G"


def build_pipeline(config: ChurnConfig, *, parallelism: int = 0) -> Any:
    """The `churn-scoring` pipeline function; `parallelism` caps the shards at once (0: none)."""
    from kfp import dsl

    from churn_components.scoring import component as ks
    from churn_pipelines.training import config_json as to_json

    compiled_config = to_json(config)

    @dsl.pipeline(
        name=PIPELINE_NAME,
        description=(
            "Churn scoring: the customer file cut into row ranges, each validated against the "
            "data contract and scored with the champion bundle (probability, decision, top "
            "reasons, the best offer and its what-if, expected value of a call); the shards "
            "merged into the ranked retention list with its rejected rows and summary."
        ),
    )
    def churn_scoring(
        input_uri: str,
        model_uri: str = "",
        tracking_uri: str = "",
        artifact_store: str = "",
        reasons: bool = True,
        shard_rows: int = SHARD_ROWS,
        chunk_rows: int = CHUNK_ROWS,
        shard_workers: int = SHARD_WORKERS,
        top: int = TOP,
        config_json: str = compiled_config,
    ) -> str:
        plan = ks.plan_shards(input_uri=input_uri, shard_rows=shard_rows, chunk_rows=chunk_rows)
        with dsl.ParallelFor(plan.output, parallelism=parallelism) as shard:
            scored = ks.score_shard(
                input_uri=input_uri,
                shard=shard,
                model_uri=model_uri,
                tracking_uri=tracking_uri,
                reasons=reasons,
                chunk_rows=chunk_rows,
                workers=shard_workers,
                config_json=config_json,
            )
            scored.set_cpu_request(SHARD_CPU).set_memory_request(SHARD_MEMORY)
            scored.set_caching_options(False)  # the champion may have moved
        merged = ks.merge_scores(
            input_uri=input_uri,
            scores=dsl.Collected(scored.outputs["scores"]),
            rejected=dsl.Collected(scored.outputs["rejected"]),
            config_json=config_json,
            top=top,
            artifact_store=artifact_store,
        )
        merged.set_caching_options(False)
        return merged.outputs["Output"]

    return churn_scoring


def compile_pipeline(config: ChurnConfig, path: str | Path = IR_FILE) -> Path:
    """Compile the pipeline to IR YAML at `path`."""
    from kfp import compiler

    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    compiler.Compiler().compile(build_pipeline(config), package_path=str(target))
    return target


def run_local(
    settings: Any,
    config: ChurnConfig,
    *,
    input_uri: str,
    model_uri: str = "",
    reasons: bool = True,
    shard_rows: int = SHARD_ROWS,
    chunk_rows: int = CHUNK_ROWS,
    top: int = TOP,
    verbose: bool = False,
) -> str:
    """Run churn-scoring through kfp.local, shard after shard; the list's store URI.

    Outputs go to the artifact store (`CHURN_ARTIFACT_ROOT`) under
    ``scoring/<digest>/``; kfp.local's own output to ``<root>/kfp/last-run.log``
    unless `verbose`. The summary is printed.
    """
    from churn_components.scoring.steps import usable_cores
    from churn_model.registry import absolute_tracking_uri
    from churn_pipelines.cli import kfp_local
    from churn_pipelines.training import config_json

    started = time.perf_counter()
    root = Path(settings.artifact_root).resolve()
    root.mkdir(parents=True, exist_ok=True)
    with kfp_local(root, verbose) as clock:
        task = build_pipeline(config, parallelism=1)(
            input_uri=input_uri,
            model_uri=model_uri,
            tracking_uri=absolute_tracking_uri(settings.mlflow_tracking_uri),
            artifact_store=str(root),
            reasons=reasons,
            shard_rows=shard_rows,
            chunk_rows=chunk_rows,
            shard_workers=usable_cores(),  # one shard at a time here: all cores on it
            top=top,
            config_json=config_json(config),
        )
    location = str(task.output)
    summary = Path(location).with_name("summary.md")
    if summary.is_file():
        print(summary.read_text())
    lines = ["churn-scoring (kfp.local) stage times:"]
    lines += [f"  {name:<22} {sec:7.1f} s" for name, sec in clock.seconds.items()]
    lines += [f"  {'total (wall)':<22} {time.perf_counter() - started:7.1f} s", f"list: {location}"]
    print("\n".join(lines))
    return location
