"""Starting a training run for a trigger: what can be checked without a KFP server.

No KFP server runs here and none is imitated: the KFP launcher's arguments are
checked against the compiled pipeline's declared parameters, and a launch to an
endpoint where nothing listens must fail with the reason. The local launcher
runs the real CLI.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import yaml

from churn_core.errors import ConfigError
from churn_monitoring.launch import (
    KFPLauncher,
    LaunchError,
    LocalLauncher,
    pipeline_parameters,
    trigger_json,
)
from tests.fixtures.ports import free_port

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "pipelines" / "churn_training.yaml"
TRIGGER = {
    "reason": "retraining churn (serving version 3): 3 of the last 5 windows were bad",
    "evidence": [{"bad": True, "causes": ["drift on tenure (effect 0.210)"], "evidence": {}}],
}


def base_arguments() -> dict[str, str]:
    """What `churn pipeline submit` passes, but the trigger (the launcher adds it)."""
    from churn_core.cli import build_parser
    from churn_core.config import load_config
    from churn_core.settings import Settings
    from churn_pipelines.cli import submit_arguments

    args = build_parser().parse_args(
        ["pipeline", "submit", "--tracking-uri", "http://mlflow.invalid"]
    )
    arguments = submit_arguments(args, Settings(), load_config(ROOT / "model_config.yaml"))
    assert arguments.pop("trigger") == ""
    return arguments


def test_kfp_arguments_match_the_compiled_pipelines_parameters() -> None:
    from churn_components.registry.steps import trigger_record

    launcher = KFPLauncher("http://kfp.invalid", PACKAGE, "churn", arguments=base_arguments())
    arguments = launcher.arguments(TRIGGER)
    declared = pipeline_parameters(PACKAGE)
    assert set(arguments) == set(declared)
    assert all(declared[k]["parameterType"] == "STRING" for k in arguments)
    # the register step reads back exactly what the trigger recorded
    assert trigger_record(arguments["trigger"]) == TRIGGER
    # and the pipeline hands it to the register step
    spec = yaml.safe_load(PACKAGE.read_text())
    register = spec["root"]["dag"]["tasks"]["register"]["inputs"]["parameters"]
    assert register["trigger"] == {"componentInputParameter": "trigger"}


def test_kfp_launcher_refuses_arguments_the_package_does_not_declare(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"undeclared arguments \['colour'\]"):
        KFPLauncher("http://kfp.invalid", PACKAGE, "churn", arguments={"colour": "red"})
    spec = yaml.safe_load(PACKAGE.read_text())
    del spec["root"]["inputDefinitions"]["parameters"]["trigger"]
    old = tmp_path / "old.yaml"
    old.write_text(yaml.safe_dump(spec))
    with pytest.raises(ConfigError, match="needs it declared"):
        KFPLauncher("http://kfp.invalid", old, "churn")
    with pytest.raises(ConfigError, match="no pipeline parameters"):
        KFPLauncher("http://kfp.invalid", tmp_path / "missing.yaml", "churn")


def test_kfp_launch_to_an_endpoint_where_nothing_listens_fails_with_the_reason() -> None:
    host = f"http://127.0.0.1:{free_port()}"
    launcher = KFPLauncher(host, PACKAGE, "churn", arguments=base_arguments())
    with pytest.raises(LaunchError, match=f"KFP endpoint {host} did not start the run"):
        launcher.launch(TRIGGER)


def test_a_trigger_needs_a_reason() -> None:
    with pytest.raises(LaunchError, match="'reason'"):
        trigger_json({"evidence": []})
    assert json.loads(trigger_json(TRIGGER)) == TRIGGER


def test_local_launcher_command_line(tmp_path: Path) -> None:
    launcher = LocalLauncher(tmp_path, command=["churn"], config_path="c.yaml", source="d.csv")
    assert launcher.arguments(tmp_path / "t.json") == [
        "churn",
        *("pipeline", "run", "--local", "--trigger", str(tmp_path / "t.json")),
        *("--config", "c.yaml", "--source", "d.csv"),
    ]


def test_local_launcher_without_its_command_fails_to_start(tmp_path: Path) -> None:
    launcher = LocalLauncher(tmp_path, command=[str(tmp_path / "no-such-churn")])
    with pytest.raises(LaunchError, match="could not start"):
        launcher.launch(TRIGGER)


def test_a_local_run_that_fails_reports_why(tmp_path: Path) -> None:
    launcher = LocalLauncher(
        tmp_path / "runs",
        command=[sys.executable, "-m", "churn_core.cli"],
        config_path=str(tmp_path / "missing.yaml"),
    )
    run_id = launcher.launch(TRIGGER)
    assert run_id.startswith("local-")
    written = tmp_path / "runs" / f"{run_id}.trigger.json"
    assert json.loads(written.read_text()) == TRIGGER
    with pytest.raises(LaunchError, match=rf"run {run_id} failed \(exit [1-9]\d*\)") as err:
        launcher.wait(run_id, timeout=120)
    assert "missing.yaml" in str(err.value)


def test_submit_trigger_file_becomes_the_runs_trigger_argument(tmp_path: Path) -> None:
    from churn_core.cli import build_parser
    from churn_core.config import load_config
    from churn_core.errors import InvalidInput
    from churn_core.settings import Settings
    from churn_pipelines.cli import submit_arguments

    good, bad = tmp_path / "trigger.json", tmp_path / "bad.json"
    good.write_text(trigger_json(TRIGGER))
    bad.write_text('{"evidence": []}')
    config = load_config(ROOT / "model_config.yaml")
    common = ["pipeline", "submit", "--tracking-uri", "http://mlflow.invalid", "--trigger"]
    args = build_parser().parse_args([*common, str(good)])
    assert json.loads(submit_arguments(args, Settings(), config)["trigger"]) == TRIGGER
    args = build_parser().parse_args([*common, str(bad)])
    with pytest.raises(InvalidInput, match="'reason' string"):
        submit_arguments(args, Settings(), config)
    args = build_parser().parse_args([*common, str(tmp_path / "none.json")])
    with pytest.raises(InvalidInput, match="cannot read it"):
        submit_arguments(args, Settings(), config)
