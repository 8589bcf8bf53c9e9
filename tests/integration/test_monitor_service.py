"""The drift service's core on a real database (SQLite and PostgreSQL) with a real bundle.

Events are what the logger sends for real customers: v2 request bodies and the
responses of the bundle's own model. What these tests check is the monitor's
own bookkeeping (exact counts, one trigger, nothing repeated across restarts),
so the runs a trigger starts are recorded by `RunRecorder`, a launcher that
writes each trigger it gets to a folder; the real local launcher starting a
real pipeline run is exercised in tests/e2e/test_monitor_loop.py.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pandas as pd
import pytest

from churn_core.config import ChurnConfig
from churn_model.bundle import load_model
from churn_monitoring.events import REQUEST_TYPE, RESPONSE_TYPE, CloudEvent
from churn_monitoring.metrics import monitor_metrics
from churn_monitoring.service import Incoming, Monitor, load_watched
from churn_monitoring.store import MonitorStore
from tests.fixtures.model_server import v2_body, v2_response

WINDOW = 200


def small_windows() -> ChurnConfig:
    """Windows of 200 rows; the trigger fires on 2 bad windows of the last 3."""
    return ChurnConfig.model_validate(
        {
            "drift": {"window_size": WINDOW, "min_window_size": 100},
            "monitor": {"trigger": {"k": 2, "n": 3, "min_samples": 100, "cooldown_windows": 5}},
        }
    )


class Clock:
    """Seconds that a test moves on."""

    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


class RunRecorder:
    """Launcher that records each trigger it is asked to start (as the local launcher does)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)

    def launch(self, trigger: Mapping[str, Any]) -> str:
        run_id = f"run-{len(list(self.folder.iterdir())) + 1}"
        (self.folder / f"{run_id}.json").write_text(orjson.dumps(dict(trigger)).decode())
        return run_id

    def runs(self) -> list[dict[str, Any]]:
        return [orjson.loads(p.read_bytes()) for p in sorted(self.folder.iterdir())]


def events_for(
    frame: pd.DataFrame, model: Any, prefix: str, per_request: int = 5
) -> list[CloudEvent]:
    """The logger's events for `frame`'s customers, `per_request` customers per request."""
    out = []
    for start in range(0, len(frame), per_request):
        chunk = frame.iloc[start : start + per_request]
        event_id = f"{prefix}-{start}"
        response = v2_response(model.predict_proba(chunk), event_id=event_id)
        body = orjson.dumps(v2_body(chunk, id=event_id))
        out.append(
            CloudEvent(event_id, REQUEST_TYPE, "s", "churn", "predictor", "application/json", body)
        )
        out.append(
            CloudEvent(
                event_id,
                RESPONSE_TYPE,
                "s",
                "churn",
                "predictor",
                "application/json",
                orjson.dumps(response),
            )
        )
    return out


@pytest.fixture(scope="module")
def served(bundle_dir: Any) -> tuple[Path, Any]:
    bundle = bundle_dir("xgboost")
    model, _ = load_model(bundle)
    return bundle, model


def monitor(url: str, bundle: Path, clock: Clock, runs: RunRecorder) -> Monitor:
    m = Monitor(
        small_windows(), MonitorStore(url), load_watched(bundle), monitor_metrics(), runs, clock
    )
    m.restore()
    return m


def shifted(frame: pd.DataFrame) -> pd.DataFrame:
    out = frame.copy()
    out["Contract"] = "Month-to-month"
    out["tenure"] = (out["tenure"] * 0.3).round()
    out["TotalCharges"] = out["tenure"] * out["MonthlyCharges"]
    return out


def test_a_shuffled_replay_with_duplicates_and_lost_responses_counts_exactly(
    monitor_url: str, served: Any, customer_split: Any, tmp_path: Path
) -> None:
    bundle, model = served
    clock = Clock()
    m = monitor(monitor_url, bundle, clock, RunRecorder(tmp_path / "runs"))
    held_out = customer_split[1]
    frame = pd.concat([held_out] * 2, ignore_index=True).head(3 * WINDOW + 50)
    events = events_for(frame, model, "replay")
    rng = random.Random(11)
    responses = [e for e in events if e.type == RESPONSE_TYPE]
    dropped = {e.id for e in rng.sample(responses, len(responses) // 20)}
    kept = [e for e in events if not (e.type == RESPONSE_TYPE and e.id in dropped)]
    replay = kept + rng.sample(kept, len(kept) // 10)
    rng.shuffle(replay)
    for start in range(0, len(replay), 97):
        m.handle([Incoming(e, clock.now) for e in replay[start : start + 97]])
    clock.now += 61  # every request without its response has expired
    m.tick()
    joined_rows = sum(5 for e in events if e.type == REQUEST_TYPE and e.id not in dropped)
    windows = m.store.windows("churn")
    assert len(windows) == joined_rows // WINDOW
    assert all(w.samples == WINDOW for w in windows)
    assert len(m.store.open_rows("churn")) == joined_rows % WINDOW
    metrics = m.metrics.exposition().decode()
    assert (
        f'churn_drift_events_unmatched_total{{reason="no_response"}} {float(len(dropped))}'
        in metrics
    )
    assert f"churn_drift_events_duplicate_total {float(len(replay) - len(kept))}" in metrics
    assert f'churn_drift_predictions_total{{model="churn"}} {float(joined_rows)}' in metrics
    m.store.close()


def test_drift_fires_one_trigger_and_a_restart_repeats_nothing(
    monitor_url: str, served: Any, customer_split: Any, tmp_path: Path
) -> None:
    bundle, model = served
    clock = Clock()
    runs = RunRecorder(tmp_path / "runs")
    held_out = customer_split[1].reset_index(drop=True)
    rng = np.random.default_rng(3)

    def sample(n: int) -> pd.DataFrame:
        return held_out.iloc[rng.choice(len(held_out), size=n, replace=False)]

    m = monitor(monitor_url, bundle, clock, runs)
    for i in range(3):  # unshifted traffic: windows, no trigger
        m.handle([Incoming(e, clock.now) for e in events_for(sample(WINDOW), model, f"calm{i}")])
    assert len(m.store.windows("churn")) == 3
    assert m.store.triggers("churn") == []
    assert not any(w.drift for w in m.store.windows("churn"))

    m.handle([Incoming(e, clock.now) for e in events_for(shifted(sample(WINDOW)), model, "shift0")])
    half = events_for(shifted(sample(WINDOW)), model, "shift1")
    m.handle([Incoming(e, clock.now) for e in half[: len(half) // 2]])
    m.store.close()  # the service stops mid-window

    m = monitor(monitor_url, bundle, clock, runs)  # restarted: the open half window is back
    assert len(m.store.open_rows("churn")) == WINDOW // 2
    m.handle([Incoming(e, clock.now) for e in half[len(half) // 2 :]])
    m.wait_for_launches(10)
    (trigger,) = m.store.triggers("churn")
    assert trigger.run_id == "run-1" and trigger.run_status == "started"
    assert "Contract" in trigger.reason or "tenure" in trigger.reason
    (run,) = runs.runs()
    assert run["reason"] == trigger.reason and run["evidence"]
    assert m.status()["trigger_state"] in ("TRIGGERED", "COOLDOWN")

    for i in range(2):  # more drift in the cooldown: no second trigger, also after a restart
        m.handle(
            [Incoming(e, clock.now) for e in events_for(shifted(sample(WINDOW)), model, f"more{i}")]
        )
        m.store.close()
        m = monitor(monitor_url, bundle, clock, runs)
    m.wait_for_launches(10)
    assert len(m.store.triggers("churn")) == 1 and len(runs.runs()) == 1
    assert len(m.store.windows("churn")) == 7
    text = m.metrics.exposition().decode()
    assert 'churn_drift_window_drift{model="churn",model_version="7"} 1.0' in text
    assert (
        'churn_drift_p_value{feature="Contract",model="churn",model_version="7",test="chi2"}'
        in text
    )
    m.store.close()
