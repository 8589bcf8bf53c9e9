"""Delayed labels into a running drift service: `POST /labels` and `churn monitor labels FILE`.

Logged predictions of real held-out customers (with their ids) are joined to
their true churn labels as they arrive; the realized ROC-AUC the service then
exposes equals scikit-learn's on the same customers. A bad label file is
refused whole, naming the row, and stores nothing.
"""

from __future__ import annotations

import subprocess
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pandas as pd
import pytest
import requests
import yaml
from sklearn.metrics import roc_auc_score

from churn_model.bundle import load_model
from tests.fixtures.drift_service import start_drift_service
from tests.fixtures.model_server import churn_command, v2_body, v2_response

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
CUSTOMERS = 300


def config(tmp: Path) -> Path:
    raw = yaml.safe_load((REPO / "model_config.yaml").read_text())
    raw["kfp"]["endpoint"] = ""
    raw["drift"].update(window_size=100, min_window_size=50)
    raw["monitor"]["labels"].update(min_labels=200)
    path = tmp / "model_config.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def post_pair(url: str, frame: pd.DataFrame, model: Any, event_id: str) -> None:
    """The logger's request and response events of `frame`'s customers."""
    body = v2_body(frame, id=event_id)
    ids = frame["customerID"].tolist()
    body["inputs"].append(
        {"name": "customerID", "shape": [len(ids)], "datatype": "BYTES", "data": ids}
    )
    response = v2_response(model.predict_proba(frame), event_id=event_id, ids=ids)
    for kind, data in (("request", body), ("response", response)):
        r = requests.post(
            f"{url}/",
            data=orjson.dumps(data),
            headers={
                "ce-specversion": "1.0",
                "ce-id": event_id,
                "ce-type": f"org.kubeflow.serving.inference.{kind}",
                "ce-source": "test",
                "ce-inferenceservicename": "churn",
                "content-type": "application/json",
            },
            timeout=10,
        )
        assert r.status_code == 202, r.text


def stored_predictions(metrics: str) -> float:
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in metrics.splitlines()
        if line.startswith("churn_drift_predictions_total")
    )


def test_labels_posted_to_the_service_give_the_realized_figures(
    bundle_dir: Any, customer_split: Any, tmp_path: Path
) -> None:
    bundle = bundle_dir("xgboost")
    model, _ = load_model(bundle)
    held_out = customer_split[1].head(CUSTOMERS).reset_index(drop=True)
    service = start_drift_service(
        bundle,
        tmp_path / "monitor",
        db_url=f"sqlite:///{tmp_path / 'monitor.db'}",
        config_path=config(tmp_path),
        extra_args=("--launch", "none"),
    )
    try:
        for start in range(0, CUSTOMERS, 10):
            post_pair(service.url, held_out.iloc[start : start + 10], model, f"r{start}")
        today = datetime.now(UTC).date().isoformat()
        labels = pd.DataFrame(
            {"customerID": held_out["customerID"], "churned": held_out["Churn"], "date": today}
        )
        bad = labels.copy()
        bad.loc[7, "churned"] = "maybe"
        r = requests.post(f"{service.url}/labels", data=bad.to_csv(index=False), timeout=30)
        assert r.status_code == 400 and "maybe" in r.text and "8" in r.text, r.text
        # the predictions are stored before their labels count: wait for the worker
        deadline = time.monotonic() + 30
        while stored_predictions(service.metrics()) < CUSTOMERS:
            assert time.monotonic() < deadline, service.metrics()
            time.sleep(0.2)
        r = requests.post(f"{service.url}/labels", data=labels.to_csv(index=False), timeout=30)
        assert r.status_code == 200 and r.json() == {"stored": CUSTOMERS}, r.text
        metrics = service.metrics()
        line = next(m for m in metrics.splitlines() if m.startswith("churn_realized_roc_auc{"))
        realized = float(line.rsplit(" ", 1)[1])
        expected = roc_auc_score(held_out["Churn"] == "Yes", model.predict_proba(held_out))
        assert realized == pytest.approx(expected, abs=1e-6)
    finally:
        service.stop()


def test_churn_monitor_labels_stores_a_file_and_refuses_a_bad_one(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'monitor.db'}"
    good = tmp_path / "labels.csv"
    good.write_text("customerID,churned,date\nA-1,Yes,2026-11-01\nA-2,no,2026-11-02\n")
    done = subprocess.run(
        [*churn_command(), "monitor", "labels", str(good), "--db-url", db],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert "2 label(s) stored of 2" in done.stdout
    bad = tmp_path / "bad.csv"
    bad.write_text("customerID,churned,date\nA-3,Yes,not-a-date\n")
    done = subprocess.run(
        [*churn_command(), "monitor", "labels", str(bad), "--db-url", db],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=60,
    )
    assert done.returncode == 2 and "not-a-date" in done.stderr
    from churn_monitoring.store import MonitorStore

    with MonitorStore(db) as store:
        assert store.counts()["labels"] == 2
