"""`make demo` end to end: the whole loop, from training to the canary's verdict.

`scripts/demo.py` runs as a person would run it, on the generated synthetic
stand-in (the data file is absent), with every output (artifacts, MLflow
SQLite, the drift database, the logs) in a temporary folder and a quick
configuration (`CHURN_CONFIG_PATH`): train and register, serve with payload
logging to the drift service, five customers explained, unshifted then
shifted traffic until one training run is triggered, its challenger gated
and registered, and the rollout gates on two servers and a real Prometheus.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.fixtures.prometheus import prometheus_binary

pytestmark = [pytest.mark.e2e, pytest.mark.integration]

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "demo.py"


def quick_config(path: Path) -> Path:
    """The project's model_config.yaml with a small synthetic set and short training."""
    from churn_core.config import expand_env

    source = REPO / "model_config.yaml"
    raw = yaml.safe_load(expand_env(source.read_text(), source))
    raw["data"]["synthetic_rows"] = 1500
    raw["models"]["enabled"] = ["logistic", "xgboost"]  # all three: test_pipeline_local
    raw["models"]["xgboost"].update({"max_n_estimators": 60, "early_stopping_rounds": 10})
    raw["models"]["mlp"]["epochs"] = 3
    raw["evaluation"].update({"cv_folds": 3, "cv_repeats": 1})
    raw.setdefault("bundle", {})["reference_rows"] = 200
    raw["explainer"]["background_rows"] = 50
    path.write_text(yaml.safe_dump(raw))
    return path


def test_demo_runs_the_whole_loop_on_synthetic_data(tmp_path: Path) -> None:
    prometheus_binary()  # the canary step needs it (skip locally, fail in CI)
    artifacts = tmp_path / "artifacts"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("CHURN_")},
        "CHURN_DATA_URI": str(tmp_path / "data" / "absent.csv"),
        "CHURN_CONFIG_PATH": str(quick_config(tmp_path / "model_config.yaml")),
        "CHURN_ARTIFACT_ROOT": str(artifacts),
        "CHURN_MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}",
        "OMP_NUM_THREADS": "1",
        "COLUMNS": "200",
    }
    done = subprocess.run(
        [sys.executable, str(SCRIPT)],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=600,
    )
    out, err = done.stdout, done.stderr
    assert done.returncode == 0, f"{out[-4000:]}\n{err[-3000:]}"

    # trained on the synthetic stand-in, announced, and registered as the champion
    assert "SYNTHETIC" in out + err
    assert "churn v1 is the champion" in out
    # five customers with probabilities, reasons and suggestions over the v2 API
    rows = re.findall(r"^(SYNTH-\d+)\s+(\d\.\d{3})\s+(yes|no)\s+(Yes|No)$", out, re.M)
    assert len(rows) == 5
    assert re.search(r"^    \d\. .+ raises churn risk", out, re.M)
    # unshifted traffic: windows and no drift; shifted traffic: one trigger, with its reason
    assert re.search(r"\d+ windows, 0 drifted, trigger OK", out)
    assert re.search(r"trigger: retraining churn .*drift on", out)
    runs = list((artifacts / "demo" / "runs").glob("*.trigger.json"))
    assert len(runs) == 1
    # the triggered run registered v2 through the gate, with the trigger in its MLflow run
    assert re.search(r"v2 registered, (promoted to champion by the gate|kept as challenger)", out)
    assert "trigger_reason = retraining churn" in out
    # the canary: the gates' verdicts, and a decision
    assert re.search(r"error_rate: (PASS|FAIL|HOLD)", out)
    assert re.search(r"(promoted|rolled_back|inconclusive): traffic", out)
    assert re.search(r"demo done in \d+ s", out)
