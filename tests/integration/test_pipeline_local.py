"""The whole churn-training pipeline through kfp.local (SubprocessRunner), as `make demo` runs it.

No data file: the run generates the synthetic stand-in, says so, and marks
everything synthetic. A small configuration keeps it quick. A second run
through the CLI gates against the first one's champion.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from churn_core.settings import Settings
from churn_model.bundle import load_model, verify_bundle
from churn_pipelines import cli
from churn_pipelines.cli import run_local
from tests.fixtures.training import PIPELINE_TASKS, small_config

pytestmark = pytest.mark.integration


def test_pipeline_runs_locally_on_synthetic_data(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = small_config()
    config = config.model_copy(
        update={"data": config.data.model_copy(update={"synthetic_rows": 1500})}
    )
    settings = Settings(
        data_uri=str(tmp_path / "data" / "missing.csv"),
        artifact_root=str(tmp_path / "artifacts"),
        mlflow_tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}",
    )
    assert run_local(settings, config) == 0
    out, err = capsys.readouterr()

    # loud about the synthetic data, and a time for every stage plus the total
    assert "SYNTHETIC DATA" in err and "does not exist" in err
    for stage in PIPELINE_TASKS:
        assert re.search(rf"^\s+{stage}\s+\d+\.\d s$", out, re.M), stage
    assert re.search(r"total \(wall\)\s+\d+\.\d s", out)
    assert "[SYNTHETIC DATA]" in out
    # one progress line per stage on the terminal; kfp.local's full output in a log file
    for stage in PIPELINE_TASKS:
        assert re.search(rf"^\[\s*\d+\.\d s\] {stage} done in \d+\.\d s$", err, re.M), stage
    assert "Got executor_input" not in out + err
    log = (tmp_path / "artifacts" / "kfp" / "last-run.log").read_text()
    assert log.count("Got executor_input") == len(PIPELINE_TASKS)

    bundle = tmp_path / "artifacts" / "bundles" / "churn" / "1"
    meta = verify_bundle(bundle)
    assert meta["version"] == "1" and meta["synthetic"] is True
    assert meta["kind"] in ("logistic", "xgboost", "mlp")
    assert set(meta["thresholds"]) == {"f1", "profit", "served", "served_rule"}
    assert meta["threshold"] == meta["thresholds"]["served"]
    assert {"cv", "test"} <= set(meta["metrics"])
    assert len(meta["input_schema"]["columns"]) == 19
    assert {c["datatype"] for c in meta["input_schema"]["columns"]} == {"BYTES", "INT64", "FP64"}
    generated = tmp_path / "artifacts" / "synthetic" / "telco-synthetic.csv"
    assert meta["training_data"]["sha256"] == hashlib.sha256(generated.read_bytes()).hexdigest()
    assert meta["code_version"]
    assert meta["selection"]["gate"]["promote"] is True
    assert "SYNTHETIC DATA" in (bundle / "report.md").read_text()

    reference = pd.read_csv(bundle / "reference.csv")
    assert len(reference) == config.bundle.reference_rows and "Churn" not in reference
    model, _ = load_model(bundle)
    background = np.load(bundle / "explainer" / "background.npy")
    assert background.shape == (config.explainer.background_rows, len(meta["output_features"]))
    explainer = json.loads((bundle / "explainer" / "explainer.json").read_text())
    names = [f.name for f in model.features.output_features]
    assert [f["name"] for f in explainer["output_features"]] == names

    # the registry knows it under both aliases
    from mlflow.tracking import MlflowClient

    client = MlflowClient(settings.mlflow_tracking_uri, settings.mlflow_tracking_uri)
    assert str(client.get_model_version_by_alias("churn", "champion").version) == "1"
    assert str(client.get_model_version_by_alias("churn", "challenger").version) == "1"

    # a second run, the operator override on (`--replace-unreadable-champion`): select
    # downloads champion v1 and scores it on this run's held-out rows; the same data and
    # configuration retrain the same model, so the two tie exactly and the tie promotes
    config_file = tmp_path / "model_config.yaml"
    config_file.write_text(yaml.safe_dump(config.model_dump(mode="json")))
    parser = argparse.ArgumentParser()
    cli.add_arguments(parser)
    args = parser.parse_args(
        ["run", "--local", "--replace-unreadable-champion", "--config", str(config_file)]
    )
    assert cli.run(args, settings) == 0
    second = verify_bundle(tmp_path / "artifacts" / "bundles" / "churn" / "2")
    gate = second["selection"]["gate"]
    assert gate["basis"] == "score" and gate["promote"] is True
    assert gate["champion_version"] == "1" and gate["replace_unreadable_champion"] is True
    assert gate["rows"] == round(config.data.synthetic_rows * config.split.test_size)
    assert gate["difference"] == 0.0
    assert gate["champion"]["metrics"] == gate["challenger"]["metrics"]
    assert str(client.get_model_version_by_alias("churn", "champion").version) == "2"
