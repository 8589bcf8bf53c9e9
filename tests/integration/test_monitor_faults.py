"""The drift service under faults: killed mid-window, and its PostgreSQL database stopped.

- Killed (SIGKILL) in the middle of a window and started again: the rows
  stored before the crash stay in the open window, the window closes once
  with exactly the rows sent (none lost, none counted twice), one window
  recorded.
- PostgreSQL stopped (`pg_ctl stop`) while `churn serve --log-url` logs to the
  drift service: `/readyz` answers 503, the intake answers 503 (counted as
  rejected `store_unavailable`), the logger counts those events as failed;
  once the database is started again the service recovers by itself (ready,
  new events stored) and the events it had accepted before it noticed the
  outage are stored too: every event the logger sent is received, and every
  joined pair stored. A dedicated PostgreSQL server (not the session's) is
  stopped, so no other test is disturbed.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import requests
import yaml

from tests.fixtures.drift_service import DriftServiceHandle, start_drift_service
from tests.fixtures.model_server import serve_bundle, v2_body, v2_response
from tests.fixtures.postgres import PostgresHandle, start_postgres, stop_postgres

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
WINDOW = 40
REQUEST = "org.kubeflow.serving.inference.request"
RESPONSE = "org.kubeflow.serving.inference.response"


def small_windows(tmp: Path) -> Path:
    config = yaml.safe_load((REPO / "model_config.yaml").read_text())
    config["drift"].update(window_size=WINDOW, min_window_size=WINDOW // 2)
    config["kfp"]["endpoint"] = ""
    path = tmp / "model_config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def metric(text: str, name: str, **labels: str) -> float:
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name) and line[len(name) : len(name) + 1] in ("{", " "):
            series, value = line.rsplit(" ", 1)
            if all(f'{k}="{v}"' in series for k, v in labels.items()):
                total += float(value)
    return total


def wait_for(what: str, check: Any, timeout: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not after {timeout:.0f} s")
        time.sleep(0.2)


def post_pairs(handle: DriftServiceHandle, frame: Any, prefix: str) -> None:
    """One request/response pair per customer, straight to the intake (as the logger sends)."""
    for i in range(len(frame)):
        event_id = f"{prefix}-{i}"
        response = v2_response([0.2])
        bodies = ((REQUEST, v2_body(frame.iloc[[i]])), (RESPONSE, response))
        for kind, body in bodies:
            headers = {"ce-specversion": "1.0", "ce-id": event_id, "ce-type": kind,
                       "ce-source": "test", "content-type": "application/json"}  # fmt: skip
            r = requests.post(f"{handle.url}/", data=orjson.dumps(body), headers=headers)
            assert r.status_code == 202, r.text


def test_killed_mid_window_loses_no_row_and_records_one_window(
    bundle_dir: Any, customer_split: Any, tmp_path: Path
) -> None:
    frame = customer_split[1].reset_index(drop=True).iloc[:WINDOW]
    service = start_drift_service(
        bundle_dir("xgboost"),
        tmp_path / "service",
        db_url=f"sqlite:///{tmp_path / 'monitor.db'}",
        config_path=small_windows(tmp_path),
        extra_args=("--launch", "none"),
    )
    try:
        post_pairs(service, frame.iloc[: WINDOW // 2], "a")
        wait_for("half a window stored",
                 lambda: sum(service.status()["open_windows"].values()) == WINDOW // 2)  # fmt: skip
        service.stop(crash=True)
        service.start()
        status = service.status()
        assert sum(status["open_windows"].values()) == WINDOW // 2, status
        assert status["recent_windows"] == []
        post_pairs(service, frame.iloc[: WINDOW // 2], "a")  # the logger's retry: duplicates
        post_pairs(service, frame.iloc[WINDOW // 2 :], "b")
        status = wait_for("the window", lambda: service.status()["recent_windows"] or None)
        time.sleep(1.5)  # a second (wrong) window would close within a tick
        status = service.status()
        assert [w["samples"] for w in status["recent_windows"]] == [WINDOW], status
        assert sum(status["open_windows"].values()) == 0, status
    finally:
        service.stop()
    from churn_monitoring.store import MonitorStore

    store = MonitorStore(f"sqlite:///{tmp_path / 'monitor.db'}")
    try:
        counts = store.counts()
    finally:
        store.close()
    assert counts["windows"] == 1 and counts["predictions"] == WINDOW, counts
    print(f"\nmonitor faults: killed mid-window, restarted: 1 window of {WINDOW} rows, 0 lost")


@pytest.fixture
def own_postgres() -> Iterator[PostgresHandle]:
    """A PostgreSQL server of this test alone (it is stopped and started)."""
    handle = start_postgres()
    try:
        yield handle
    finally:
        stop_postgres(handle)


def start_again(pg: PostgresHandle) -> None:
    options = (
        f"-p {pg.port} -c listen_addresses=127.0.0.1 -k {pg.root} "
        "-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
    )
    done = pg.pg_ctl("start", "-w", "-t", "60", "-l", str(pg.log_path), "-o", options)
    assert done.returncode == 0, done.stderr + pg.log()[-2000:]


def test_database_down_answers_503_counts_events_and_recovers(
    own_postgres: PostgresHandle, bundle_dir: Any, customer_split: Any, tmp_path: Path
) -> None:
    pg = own_postgres
    bundle = bundle_dir("xgboost")
    frame = customer_split[1].reset_index(drop=True)
    db_url = pg.new_database()
    service = start_drift_service(
        bundle, tmp_path / "service", db_url=db_url,
        config_path=small_windows(tmp_path), extra_args=("--launch", "none"),
    )  # fmt: skip
    server = serve_bundle(
        bundle, tmp_path / "serve", extra_args=("--no-grpc", "--log-url", f"{service.url}/")
    )
    sent_requests = 0

    def predict(start: int, n: int) -> None:
        nonlocal sent_requests
        for i in range(start, start + n):
            body = v2_body(frame.iloc[[i % len(frame)]])
            r = requests.post(f"{server.url}/v2/models/churn/infer", json=body, timeout=30)
            assert r.status_code == 200, r.text[:300]
            sent_requests += 1

    def logged() -> dict[str, float]:
        text = requests.get(f"{server.url}/metrics", timeout=10).text
        return {k: metric(text, f"churn_payload_events_{k}_total")
                for k in ("sent", "failed", "dropped")}  # fmt: skip

    def drift(name: str, **labels: str) -> float:
        return metric(service.metrics(), name, **labels)

    def ready() -> int:
        return requests.get(f"{service.url}/readyz", timeout=15).status_code

    try:
        predict(0, 10)
        wait_for("10 stored", lambda: drift("churn_drift_predictions_total") == 10)

        stopped = pg.pg_ctl("stop", "-m", "fast", "-w", "-t", "30")
        assert stopped.returncode == 0, stopped.stderr
        assert ready() == 503
        # traffic goes on: the first events are accepted and held, then the intake refuses
        for n in range(100):
            predict(10 + 10 * n, 10)
            rejected = drift("churn_drift_events_rejected_total", reason="store_unavailable")
            if rejected >= 10 and logged()["failed"] >= 10:
                break
        assert rejected >= 10, service.log()[-3000:]
        assert ready() == 503
        assert logged()["failed"] >= 10
        held = drift("churn_drift_events_received_total") - 20  # accepted after the stop
        assert held >= 1, "no event was accepted (and held) before the outage was noticed"

        start_again(pg)
        wait_for("ready again", lambda: ready() == 200)
        # ready means the intake accepts again: every new event is taken
        before = logged()
        predict(sent_requests + 10, 20)
        wait_for("logger settled", lambda: sum(logged().values()) == 2 * sent_requests)
        after = logged()
        assert after["sent"] - before["sent"] == 40 and after["failed"] == before["failed"]
        # every event accounted for: requests x 2 = sent + failed + dropped, and the
        # drift service received what was sent and stored every joined pair
        log = logged()
        wait_for("stored", lambda: drift("churn_drift_predictions_total") * 2 + (
            drift("churn_drift_events_unmatched_total")
        ) >= log["sent"] - service.status()["waiting_halves"], timeout=90)  # fmt: skip
        received = drift("churn_drift_events_received_total")
        assert received == log["sent"]
        status = service.status()
        stored = drift("churn_drift_predictions_total")
        unmatched = drift("churn_drift_events_unmatched_total")
        assert 2 * stored + unmatched + status["waiting_halves"] == received, (stored, status)
        assert drift("churn_drift_events_rejected_total", reason="internal") == 0
        # each refused event is one the logger counted as failed (HTTP 503), none dropped
        text = requests.get(f"{server.url}/metrics", timeout=10).text
        failed_503 = metric(text, "churn_payload_events_failed_total", reason="http_503")
        refused = drift("churn_drift_events_rejected_total", reason="store_unavailable")
        assert failed_503 == refused == log["failed"] and log["dropped"] == 0
        print(
            f"\nmonitor faults: database down: {sent_requests} requests, logger {log}, "
            f"drift service received {received:.0f}, rejected store_unavailable "
            f"{drift('churn_drift_events_rejected_total', reason='store_unavailable'):.0f}, "
            f"stored {stored:.0f} (with {held:.0f} events held during the outage), "
            f"unmatched {unmatched:.0f}; recovered"
        )
        from churn_monitoring.store import MonitorStore

        store = MonitorStore(db_url)  # the rows are in the database, not only counted
        try:
            assert store.counts()["predictions"] == stored
        finally:
            store.close()
    finally:
        server.stop()
        service.stop()
