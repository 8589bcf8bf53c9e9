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


DATA_STAGES = ("validate-data", "preprocess-data", "fit-features")
DATA_PARAMETERS = {"max_rejected_share", "test_size", "seed", "tenure_bands"}


def test_no_configuration_value_is_compiled_into_a_task() -> None:
    spec = yaml.safe_load(COMMITTED.read_text())
    pipeline_inputs = set(spec["root"]["inputDefinitions"]["parameters"])
    for name, task in spec["root"]["dag"]["tasks"].items():
        for param, source in task.get("inputs", {}).get("parameters", {}).items():
            # every parameter of every task is one of the pipeline's own, never a constant
            assert set(source) == {"componentInputParameter"}, (name, param, source)
            assert source["componentInputParameter"] in pipeline_inputs, (name, param)
    tasks = spec["root"]["dag"]["tasks"]
    for name in DATA_STAGES:
        params = tasks[name]["inputs"]["parameters"]
        assert params["config_json"] == {"componentInputParameter": "config_json"}, name
        component = spec["components"][tasks[name]["componentRef"]["name"]]
        declared = set(component["inputDefinitions"]["parameters"])
        assert declared == {"config_json", "artifact_store"}, (name, declared)
    assert DATA_PARAMETERS.isdisjoint(
        p for c in spec["components"].values() for p in c["inputDefinitions"].get("parameters", {})
    )


def test_submit_passes_the_loaded_config_for_every_pipeline_parameter(tmp_path: Path) -> None:
    import json

    from churn_components.common import config_from_json
    from churn_core.cli import build_parser
    from churn_core.config import KFPConfig, load_config
    from churn_core.settings import Settings
    from churn_pipelines.cli import submit_arguments

    source = yaml.safe_load((COMMITTED.parents[1] / "model_config.yaml").read_text())
    source["split"]["seed"] = 7
    source["kfp"]["endpoint"] = "http://kfp.invalid"
    path = tmp_path / "other.yaml"
    path.write_text(yaml.safe_dump(source))
    config = load_config(path)
    args = build_parser().parse_args(
        ["pipeline", "submit", "--config", str(path), "--tracking-uri", "http://mlflow.invalid"]
    )
    arguments = submit_arguments(args, Settings(), config)

    spec = yaml.safe_load(COMMITTED.read_text())
    assert set(arguments) == set(spec["root"]["inputDefinitions"]["parameters"])
    assert json.loads(arguments["config_json"])["split"]["seed"] == 7
    # the very config loaded, but the kfp section (the submitting client's only)
    assert config_from_json(arguments["config_json"]) == config.model_copy(
        update={"kfp": KFPConfig()}
    )
