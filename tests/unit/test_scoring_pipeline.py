"""churn-scoring: the committed IR (current, fanned out with ParallelFor) and shards that add up.

Scoring a file as shards (row ranges) and merging them must give exactly the
list, rejected cells and report of scoring it whole, duplicate ids across
shards included.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd
import pytest
import yaml

from churn_components.scoring import steps
from churn_core.config import load_config
from churn_core.errors import DataContractError, InvalidInput
from churn_model.contract import ID_COLUMN, LABEL_COLUMN
from churn_model.synthetic import generate_frame
from churn_pipelines import cli
from churn_pipelines.scoring import IR_FILE, PIPELINE_NAME, compile_pipeline
from tests.fixtures.training import project_config

COMMITTED = Path(__file__).resolve().parents[2] / "pipelines" / "churn_scoring.yaml"
CONFIG = load_config("model_config.yaml")


def test_committed_ir_is_current(tmp_path: Path) -> None:
    fresh = compile_pipeline(project_config(), tmp_path / "churn_scoring.yaml")
    assert IR_FILE == COMMITTED
    assert COMMITTED.read_text() == fresh.read_text(), (
        "pipelines/churn_scoring.yaml is stale: run `make compile` (churn pipeline compile) "
        "and commit the result"
    )


def test_ir_fans_out_over_the_planned_shards_and_merges_them() -> None:
    spec = yaml.safe_load(COMMITTED.read_text())
    assert spec["pipelineInfo"]["name"] == PIPELINE_NAME
    tasks = spec["root"]["dag"]["tasks"]
    loops = [name for name, t in tasks.items() if "parameterIterator" in t]
    assert len(loops) == 1
    loop = tasks[loops[0]]
    # the loop iterates over the plan's output, the list of row ranges
    items = loop["parameterIterator"]["items"]["inputParameter"]
    source = loop["inputs"]["parameters"][items]["taskOutputParameter"]
    assert source == {"outputParameterKey": "Output", "producerTask": "plan-shards"}
    assert "iteratorPolicy" not in loop  # no cap: the shards run side by side on a cluster
    body = spec["components"][loop["componentRef"]["name"]]["dag"]["tasks"]
    assert set(body) == {"score-shard"}
    # the merge collects every shard's scores and rejected cells from the loop
    merge = tasks["merge-scores"]
    assert merge["dependentTasks"] == [loops[0]]
    for name in ("scores", "rejected"):
        produced = merge["inputs"]["artifacts"][name]["taskOutputArtifact"]
        assert produced["producerTask"] == loops[0]
    outputs = spec["components"]["comp-merge-scores"]["outputDefinitions"]["artifacts"]
    assert outputs["summary"]["artifactType"]["schemaTitle"] == "system.Markdown"
    assert outputs["distribution"]["artifactType"]["schemaTitle"] == "system.HTML"
    assert {"retention_list", "retention_csv", "rejected_rows", "metrics"} <= set(outputs)
    for name, task in tasks.items():
        for param, source in task.get("inputs", {}).get("parameters", {}).items():
            assert "runtimeValue" not in source, (name, param)  # no constant compiled in


def test_the_local_run_caps_the_loop_at_one_shard_at_a_time(tmp_path: Path) -> None:
    from kfp import compiler

    from churn_pipelines.scoring import build_pipeline

    path = tmp_path / "local.yaml"
    compiler.Compiler().compile(
        build_pipeline(project_config(), parallelism=1), package_path=str(path)
    )
    spec = yaml.safe_load(path.read_text())
    loop = next(t for t in spec["root"]["dag"]["tasks"].values() if "parameterIterator" in t)
    assert loop["iteratorPolicy"] == {"parallelismLimit": 1}


def test_shards_are_whole_chunks_covering_every_row() -> None:
    shards = steps.plan_shards(1050, shard_rows=250, chunk_rows=100)
    assert shards == [
        {"shard": 0, "start": 0, "stop": 300},
        {"shard": 1, "start": 300, "stop": 600},
        {"shard": 2, "start": 600, "stop": 900},
        {"shard": 3, "start": 900, "stop": 1050},
    ]
    assert steps.plan_shards(0, 10, 5) == [{"shard": 0, "start": 0, "stop": 0}]
    with pytest.raises(InvalidInput, match="shard_rows"):
        steps.plan_shards(10, 0, 5)


@pytest.fixture(scope="module")
def scorer(bundle_dir):
    return steps.load_scorer(bundle_dir("xgboost"), CONFIG.explainer)


def _bad_file(tmp_path: Path) -> Path:
    """400 customers; duplicate ids within and across shards, bad charges, an unknown category."""
    raw = generate_frame(rows=400, seed=5).astype(str).drop(columns=[LABEL_COLUMN])
    ids = raw[ID_COLUMN].to_numpy()
    raw.loc[250, ID_COLUMN] = ids[10]  # across shards (shard 0 and shard 1)
    raw.loc[390, ID_COLUMN] = ids[10]  # a third copy, in shard 2
    raw.loc[120, ID_COLUMN] = ids[130]  # within shard 0, across its chunks
    raw.loc[310, "TotalCharges"] = "n/a"
    raw.loc[20, "Contract"] = "Lifetime"
    path = tmp_path / "customers.csv"
    raw.to_csv(path, index=False)
    return path


def test_shards_merged_give_exactly_the_whole_file_answer(scorer, tmp_path) -> None:
    path = str(_bad_file(tmp_path))
    whole = steps.score_file(path, scorer, CONFIG.economics, max_rejected_share=1.0, chunk_rows=50)
    plan = steps.plan_shards(steps.count_rows(path), shard_rows=150, chunk_rows=50)
    assert len(plan) == 3
    shards = []
    for item in plan:
        shard = steps.score_rows(
            path, scorer, CONFIG.economics, start=item["start"], stop=item["stop"], chunk_rows=50
        )
        # through the files the KFP components pass on
        scores, rejected = tmp_path / f"s{item['shard']}.parquet", tmp_path / "r.parquet"
        meta = steps.write_shard(shard, scores, rejected)
        shards.append(steps.read_shard(scores, rejected, meta))
    merged = steps.finish(path, shards, max_rejected_share=1.0)
    pd.testing.assert_frame_equal(merged.scores, whole.scores)
    pd.testing.assert_frame_equal(
        merged.rejected.astype(str).reset_index(drop=True),
        whole.rejected.astype(str).reset_index(drop=True),
    )
    assert merged.report == whole.report
    # every copy of a repeated id is rejected, none scored
    dup = merged.rejected[merged.rejected["reason"] == "duplicate_id"]
    assert sorted(dup["row"].tolist()) == [11, 121, 131, 251, 391]
    assert not set(dup[ID_COLUMN]) & set(merged.scores[ID_COLUMN])
    assert merged.report["rejected_rows"] == 7
    with pytest.raises(DataContractError, match=r"7 of 400 rows rejected"):
        steps.check_share(merged, 0.01)


def test_pipeline_cli_runs_scoring_only_with_an_input(tmp_path) -> None:
    from churn_core.settings import Settings

    parser = argparse.ArgumentParser()
    cli.add_arguments(parser)
    args = parser.parse_args(["run", "--local", "--pipeline", "scoring"])
    with pytest.raises(InvalidInput, match="--input FILE is required"):
        cli.run(args, Settings(artifact_root=str(tmp_path)))
    args = parser.parse_args(["run", "--local"])
    assert args.pipeline == "training"


class _Artifact:
    """What a KFP artifact gives a component body: a path, metadata, logged metrics."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)
        self.metadata: dict = {}
        self.metrics: dict = {}

    def log_metric(self, name: str, value: float) -> None:
        self.metrics[name] = value


def test_the_merge_writes_everything_then_fails_above_the_rejected_share(scorer, tmp_path) -> None:
    from churn_components.scoring import glue
    from churn_pipelines.training import config_json

    path = str(_bad_file(tmp_path))
    strict = CONFIG.model_copy(
        update={"data": CONFIG.data.model_copy(update={"max_rejected_share": 0.01})}
    )
    scores, rejected = [], []
    for item in steps.plan_shards(400, shard_rows=200, chunk_rows=100):
        s, r = _Artifact(tmp_path / f"s{item['shard']}"), _Artifact(tmp_path / f"r{item['shard']}")
        shard = steps.score_rows(
            path, scorer, CONFIG.economics, start=item["start"], stop=item["stop"], chunk_rows=100
        )
        s.metadata.update({**steps.write_shard(shard, s.path, r.path), **item})
        scores.append(s)
        rejected.append(r)
    outs = {n: _Artifact(tmp_path / n) for n in ("list", "csv", "rej", "md", "html", "metrics")}
    with pytest.raises(DataContractError, match=r"7 of 400 rows rejected"):
        glue.merge(
            path,
            scores[::-1],  # the order artifacts arrive in does not matter
            rejected[::-1],
            config_json(strict),
            50,
            str(tmp_path / "store"),
            *outs.values(),
        )
    assert len(pd.read_csv(outs["rej"].path)) == 7
    assert len(pd.read_parquet(outs["list"].path)) == 393
    assert "| Contract |" in Path(outs["md"].path).read_text()
    assert Path(outs["html"].path).read_text().count("data:image/png;base64,") == 1
    assert outs["metrics"].metrics["rejected_rows"] == 7.0
    assert outs["list"].metadata["store_uri"].endswith("/list.parquet")


def test_worker_processes_give_exactly_the_one_process_answer(scorer, tmp_path) -> None:
    path = str(_bad_file(tmp_path))
    alone = steps.score_file(path, scorer, CONFIG.economics, max_rejected_share=1.0, chunk_rows=50)
    seen: list[int] = []
    together = steps.score_file(
        path,
        scorer,
        CONFIG.economics,
        max_rejected_share=1.0,
        chunk_rows=50,
        workers=3,  # 8 chunks: 3, 3 and 2 per worker, duplicates across workers
        progress=seen.append,
    )
    pd.testing.assert_frame_equal(together.scores, alone.scores)
    pd.testing.assert_frame_equal(together.rejected, alone.rejected)
    assert together.report == alone.report
    assert sum(seen) == 400  # every row reported once, accepted or rejected
    # a shard's parts combined are the shard scored in one process
    parts = steps.score_parts(
        path, scorer, CONFIG.economics, workers=2, start=100, stop=300, chunk_rows=50
    )
    assert [p.rows for p in parts] == [100, 100]
    one = steps.score_rows(path, scorer, CONFIG.economics, start=100, stop=300, chunk_rows=50)
    combined = steps.combine(parts)
    pd.testing.assert_frame_equal(combined.scores, one.scores)
    pd.testing.assert_frame_equal(combined.rejected, one.rejected)


@pytest.mark.parametrize("suffix", ["csv", "parquet"])
def test_parts_take_every_chunk_once_at_its_own_rows(tmp_path, suffix) -> None:
    raw = generate_frame(rows=1000, seed=8).astype(str).drop(columns=[LABEL_COLUMN])
    path = tmp_path / f"customers.{suffix}"
    if suffix == "csv":
        raw.to_csv(path, index=False)
    else:
        raw.to_parquet(path, index=False, row_group_size=128)
    got: dict[int, list[str]] = {}
    for k in range(3):
        for first, frame in steps.read_chunks_at(
            str(path), 100, start=150, stop=910, part=steps.Part(k, 3)
        ):
            assert first not in got
            assert (first - 150) // 100 % 3 == k
            got[first] = frame[ID_COLUMN].tolist()
    assert sorted(got) == list(range(150, 910, 100))
    assert [len(got[f]) for f in sorted(got)] == [100] * 7 + [60]
    assert [i for f in sorted(got) for i in got[f]] == raw[ID_COLUMN].tolist()[150:910]


def test_a_parquet_reader_skips_the_row_groups_it_does_not_need(tmp_path) -> None:
    raw = generate_frame(rows=1000, seed=8).astype(str).drop(columns=[LABEL_COLUMN])
    path = tmp_path / "customers.parquet"
    raw.to_parquet(path, index=False, row_group_size=100)
    # a shard of rows 400..600: only groups 4 and 5 are read
    firsts = [first for first, _ in steps._batches(str(path), "", lambda lo, hi: 400 <= lo < 600)]
    assert firsts == [400, 500]
    frames = list(steps.read_chunks_at(str(path), 100, start=400, stop=600))
    assert [f for f, _ in frames] == [400, 500]
    assert frames[0][1][ID_COLUMN].tolist() == raw[ID_COLUMN].tolist()[400:500]


def test_workers_default_to_the_cores_and_never_outnumber_the_chunks(tmp_path) -> None:
    raw = generate_frame(rows=250, seed=8).astype(str).drop(columns=[LABEL_COLUMN])
    path = tmp_path / "customers.csv"
    raw.to_csv(path, index=False)
    cores = steps.usable_cores()
    assert steps.choose_workers(0, str(path), chunk_rows=100) == min(cores, 3)
    assert steps.choose_workers(0, str(path), chunk_rows=1000) == 1
    assert steps.choose_workers(5, str(path), chunk_rows=1000) == 5  # asked for: as asked
    with pytest.raises(InvalidInput, match="workers must be >= 0"):
        steps.choose_workers(-1, str(path), chunk_rows=100)


def test_a_worker_that_dies_is_a_clear_error(scorer, tmp_path) -> None:
    import os
    import signal

    raw = generate_frame(rows=3000, seed=9).astype(str).drop(columns=[LABEL_COLUMN])
    path = tmp_path / "customers.csv"
    raw.to_csv(path, index=False)
    killed: list[int] = []

    def kill_a_worker(_rows: int) -> None:
        if not killed:
            import multiprocessing

            worker = multiprocessing.active_children()[0]
            os.kill(worker.pid, signal.SIGKILL)
            killed.append(worker.pid)

    with pytest.raises(steps.ScoringWorkerError, match="a scoring worker process died"):
        steps.score_file(
            str(path),
            scorer,
            CONFIG.economics,
            max_rejected_share=1.0,
            chunk_rows=100,
            workers=2,
            progress=kill_a_worker,
        )
    assert killed


def test_a_file_a_worker_cannot_read_is_a_data_contract_error(scorer, tmp_path) -> None:
    raw = generate_frame(rows=300, seed=9).astype(str).drop(columns=[LABEL_COLUMN])
    path = tmp_path / "customers.csv"
    raw.to_csv(path, index=False)
    lines = path.read_text().splitlines(keepends=True)
    lines[250] = lines[250].rstrip("\n") + ",one,too,many\n"  # in the third chunk of 100
    path.write_text("".join(lines))
    with pytest.raises(DataContractError, match=r"customers.csv: not a readable CSV/Parquet"):
        steps.score_file(
            str(path), scorer, CONFIG.economics, max_rejected_share=1.0, chunk_rows=100, workers=2
        )
