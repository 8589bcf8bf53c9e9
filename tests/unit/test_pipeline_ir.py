"""The committed IR of churn-training: current, loadable by the kfp SDK, shaped as designed."""

from __future__ import annotations

from pathlib import Path

import yaml

from churn_pipelines.training import IR_FILE, PIPELINE_NAME, compile_pipeline
from tests.fixtures.training import PIPELINE_TASKS, project_config

COMMITTED = Path(__file__).resolve().parents[2] / "pipelines" / "churn_training.yaml"


def test_committed_ir_is_current(tmp_path: Path) -> None:
    fresh = compile_pipeline(project_config(), tmp_path / "churn_training.yaml")
    assert IR_FILE == COMMITTED
    assert COMMITTED.read_text() == fresh.read_text(), (
        "pipelines/churn_training.yaml is stale: run `make compile` (churn pipeline compile) "
        "and commit the result"
    )


def test_ir_loads_back_with_the_kfp_sdk() -> None:
    from kfp import components

    pipeline = components.load_component_from_file(str(COMMITTED))
    assert pipeline.name == PIPELINE_NAME
    inputs = set(pipeline.component_spec.inputs or {})
    assert {"source_uri", "artifact_store", "tracking_uri", "config_json"} <= inputs


def test_ir_dag_has_every_stage_and_parallel_trainings() -> None:
    spec = yaml.safe_load(COMMITTED.read_text())
    assert spec["pipelineInfo"]["name"] == PIPELINE_NAME
    tasks = spec["root"]["dag"]["tasks"]
    assert set(PIPELINE_TASKS) <= set(tasks)
    trainings = ("train-logistic", "train-xgboost", "train-mlp")
    for name in trainings:
        deps = set(tasks[name].get("dependentTasks", []))
        # each training waits for the data only, never for another training: they run in parallel
        assert deps <= {"preprocess-data", "fit-features"}, (name, deps)
    assert set(trainings) <= set(tasks["evaluate"]["dependentTasks"])
    assert "select" in tasks["register"]["dependentTasks"]
    # the registry-facing stages are never served from the cache
    for name in ("select", "register", "ingest-data"):
        assert tasks[name]["cachingOptions"] == {}, name
