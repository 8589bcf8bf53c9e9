"""The monitoring loop, every part real: `churn serve` logs to `churn monitor serve`.

A running model server sends its payload CloudEvents to a running drift
service (SQLite), which a real Prometheus scrapes. Unshifted customers give
windows and no trigger; shifted customers drift, raise the metrics (a PromQL
query sees the drift flag) and start exactly one training run through the
local launcher, also when the drift service is killed and restarted in the
middle of a window; the run trains, registers a model and logs the trigger's
reason in its MLflow run.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import requests
import yaml

from tests.fixtures.data import real_csv_path
from tests.fixtures.drift_service import start_drift_service
from tests.fixtures.model_server import serve_bundle, v2_body
from tests.fixtures.prometheus import prometheus_binary, start_prometheus

pytestmark = [pytest.mark.e2e, pytest.mark.integration]

WINDOW = 200
REPO = Path(__file__).resolve().parents[2]


def loop_config(tmp: Path) -> Path:
    """model_config.yaml with windows of 200, a 2-of-3 trigger and a quick retraining."""
    config = yaml.safe_load((REPO / "model_config.yaml").read_text())
    config["drift"].update(window_size=WINDOW, min_window_size=100)
    config["monitor"]["trigger"].update(k=2, n=3, min_samples=100, cooldown_windows=10)
    config["models"]["enabled"] = ["logistic"]
    config["evaluation"].update(cv_folds=2, cv_repeats=1)
    config["kfp"]["endpoint"] = ""
    path = tmp / "model_config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def send(server: Any, frame: pd.DataFrame, prefix: str, per_request: int = 20) -> None:
    """The customers of `frame` through the v2 REST API, with ids and request ids."""
    for start in range(0, len(frame), per_request):
        chunk = frame.iloc[start : start + per_request]
        body = v2_body(chunk, id=f"{prefix}-{start}")
        body["inputs"].append(
            {
                "name": "customerID",
                "shape": [len(chunk)],
                "datatype": "BYTES",
                "data": [f"{prefix}-c{start + i}" for i in range(len(chunk))],
            }
        )
        r = requests.post(f"{server.url}/v2/models/churn/infer", json=body, timeout=30)
        assert r.status_code == 200, r.text[:300]


def shifted(frame: pd.DataFrame) -> pd.DataFrame:
    out = frame.copy()
    out["Contract"] = "Month-to-month"
    out["tenure"] = (out["tenure"] * 0.3).round()
    out["TotalCharges"] = out["tenure"] * out["MonthlyCharges"]
    return out


def windows(status: dict[str, Any]) -> int:
    return max((w["id"] for w in status["recent_windows"]), default=0)


def test_drift_in_live_traffic_starts_one_training_run(
    bundle_dir: Any, customer_split: Any, synthetic_training_csv: Path, tmp_path: Path
) -> None:
    from mlflow.tracking import MlflowClient

    prometheus_binary()
    bundle = bundle_dir("xgboost")
    held_out = customer_split[1].reset_index(drop=True)
    rng = np.random.default_rng(8)

    def sample(n: int) -> pd.DataFrame:
        return held_out.iloc[rng.choice(len(held_out), size=n, replace=False)]

    tracking = f"sqlite:///{tmp_path / 'mlflow.db'}"
    data = real_csv_path() or synthetic_training_csv
    env = {
        "CHURN_DATA_URI": str(data),
        "CHURN_MLFLOW_TRACKING_URI": tracking,
        "CHURN_ARTIFACT_ROOT": str(tmp_path / "artifacts"),
    }
    service = start_drift_service(
        bundle,
        tmp_path / "monitor",
        db_url=f"sqlite:///{tmp_path / 'monitor.db'}",
        config_path=loop_config(tmp_path),
        extra_args=("--launch", "local", "--run-dir", str(tmp_path / "runs")),
        env=env,
    )
    server = serve_bundle(
        bundle, tmp_path / "serve", extra_args=("--no-grpc", "--log-url", f"{service.url}/")
    )
    prom = start_prometheus([f"127.0.0.1:{service.port}"], tmp_path / "prometheus")
    try:
        for i in range(3):  # unshifted: three windows, no drift, no trigger
            send(server, sample(WINDOW), f"calm{i}")
        status = service.wait_for("three calm windows", lambda s: windows(s) == 3)
        assert not any(w["drift"] for w in status["recent_windows"])
        assert status["triggers"] == [] and status["trigger_state"] == "OK"

        send(server, shifted(sample(WINDOW)), "shift0")
        service.wait_for("a drifted window", lambda s: windows(s) == 4)
        prom.wait_for('churn_drift_window_drift{model="churn"} == 1', lambda r: len(r) == 1)

        half = shifted(sample(WINDOW))
        send(server, half.iloc[: WINDOW // 2], "shift1a")
        service.wait_for(
            "half a window stored", lambda s: sum(s["open_windows"].values()) == WINDOW // 2
        )
        service.stop(crash=True)  # killed in the middle of a window
        service.start()
        assert sum(service.status()["open_windows"].values()) == WINDOW // 2
        send(server, half.iloc[WINDOW // 2 :], "shift1b")
        status = service.wait_for("the trigger", lambda s: len(s["triggers"]) == 1)
        status = service.wait_for(
            "the run started", lambda s: s["triggers"][0]["run_status"] == "started"
        )
        (trigger,) = status["triggers"]
        assert trigger["run_id"].startswith("local-")
        assert "drift" in trigger["reason"].lower()

        for i in range(2):  # drift goes on in the cooldown, across a restart: no second run
            send(server, shifted(sample(WINDOW)), f"more{i}")
            service.wait_for(f"window {6 + i}", lambda s, n=6 + i: windows(s) == n)
            service.stop()
            service.start()
        status = service.status()
        assert len(status["triggers"]) == 1 and status["trigger_state"] == "COOLDOWN"
        assert len(list((tmp_path / "runs").glob("*.trigger.json"))) == 1

        metrics = service.metrics()
        assert 'churn_trigger_state{model="churn",state="COOLDOWN"} 1.0' in metrics
        assert 'churn_drift_events_rejected_total{reason="bad_body"} 0.0' in metrics

        # the run trains, registers and logs the trigger in the model's MLflow run
        client = MlflowClient(tracking_uri=tracking)
        deadline = time.monotonic() + 300
        versions: list[Any] = []
        while time.monotonic() < deadline and not versions:
            try:
                versions = client.search_model_versions("name='churn'")
            except Exception:  # the run has not created the registry tables yet
                versions = []
            time.sleep(2)
        log = "\n".join(p.read_text() for p in (tmp_path / "runs").glob("*.log"))
        assert versions, f"no model registered by the triggered run:\n{log[-3000:]}"
        run = client.get_run(versions[0].run_id)
        assert run.data.tags.get("trigger_reason") == trigger["reason"]
    finally:
        prom.stop()
        server.stop()
        service.stop()
