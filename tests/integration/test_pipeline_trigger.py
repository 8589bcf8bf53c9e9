"""A run started by the retraining trigger carries its reason and evidence into MLflow.

A real firing of the trigger machine, started by `LocalLauncher`: one
`churn pipeline run --local --trigger FILE` subprocess through kfp.local on the
synthetic stand-in (small configuration). The register step logs the trigger in
the MLflow run of the model it produces, as ``trigger.json`` and the
``trigger_reason`` tag.
"""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml

from churn_core.config import FloorsConfig, TriggerConfig
from churn_model.bundle import verify_bundle
from churn_monitoring.launch import LocalLauncher
from churn_monitoring.trigger import TriggerMachine, WindowEvidence
from tests.fixtures.training import small_config

pytestmark = pytest.mark.integration


def fired_trigger() -> dict[str, object]:
    """What the drift service sends to the run: a real firing of the machine."""
    machine = TriggerMachine(TriggerConfig(k=2, n=3), FloorsConfig())
    for window_id in (41, 42):
        t = machine.observe(
            WindowEvidence(
                window_id=window_id,
                model="churn",
                model_version="1",
                samples=500,
                closed_at=datetime(2026, 3, 1, window_id - 40, tzinfo=UTC),
                drifted_features=("tenure",),
                effects={"tenure": 0.21, "Contract": 0.04},
                estimate_low={"roc_auc": 0.71, "f1": 0.52},
                estimate_reliable=True,
            )
        )
    assert t.fired
    return {"reason": t.reason, "evidence": t.evidence}


def test_a_triggered_run_logs_the_trigger_in_mlflow(tmp_path: Path) -> None:
    config = small_config()
    config = config.model_copy(
        update={"data": config.data.model_copy(update={"synthetic_rows": 1500})}
    )
    config_file = tmp_path / "model_config.yaml"
    config_file.write_text(yaml.safe_dump(config.model_dump(mode="json")))
    trigger = fired_trigger()
    tracking_uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    launcher = LocalLauncher(
        tmp_path / "runs",
        command=[sys.executable, "-m", "churn_core.cli"],
        config_path=str(config_file),
        env={
            "CHURN_DATA_URI": str(tmp_path / "data" / "missing.csv"),
            "CHURN_ARTIFACT_ROOT": str(tmp_path / "artifacts"),
            "CHURN_MLFLOW_TRACKING_URI": tracking_uri,
        },
    )
    launcher.wait(launcher.launch(trigger), timeout=400)

    meta = verify_bundle(tmp_path / "artifacts" / "bundles" / "churn" / "1")
    run_id = meta["mlflow"]["run_id"]
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri, tracking_uri)
    run = client.get_run(run_id)
    assert run.data.tags["trigger_reason"] == trigger["reason"]
    assert "window 41: drift on tenure (effect 0.210)" in run.data.tags["trigger_reason"]
    assert "estimated roc_auc lower bound 0.710 < floor 0.750" in run.data.tags["trigger_reason"]
    local = client.download_artifacts(run_id, "trigger.json", str(tmp_path / "downloaded"))
    assert json.loads(Path(local).read_text()) == trigger
    # the model version registered from that run is the one the bundle names
    version = client.get_model_version("churn", "1")
    assert version.run_id == run_id
