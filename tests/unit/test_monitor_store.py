"""The monitor store on SQLite and on a real PostgreSQL: nothing lost, nothing twice."""

from __future__ import annotations

import math
import threading
from datetime import UTC, date, datetime, timedelta, timezone

import pandas as pd
import pytest
from sqlalchemy import create_engine, text

from churn_core.errors import InvalidInput, NotFound
from churn_monitoring.records import Label, Prediction, TriggerRecord, WindowRecord
from churn_monitoring.store import (
    LABELLED_COLUMNS,
    MonitorStore,
    MonitorStoreError,
    StoreUnavailable,
)
from tests.fixtures.ports import free_port
from tests.fixtures.postgres import PostgresHandle

T0 = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)
FEATURES = {"tenure": 5, "Contract": "Month-to-month", "MonthlyCharges": 70.35}


def pred(event: str, row: int = 0, customer: str | None = "c1", **kw: object) -> Prediction:
    values: dict[str, object] = {
        "request_id": f"req-{event}",
        "customer_id": customer,
        "model": "churn",
        "model_version": "3",
        "probability": 0.25,
        "decision": 0,
        "received_at": T0,
        "features": FEATURES,
    }
    values.update(kw)
    return Prediction(event_id=event, row=row, **values)


def window(samples: int = 2, **kw: object) -> WindowRecord:
    values: dict[str, object] = {
        "model": "churn",
        "model_version": "3",
        "opened_at": T0,
        "closed_at": T0 + timedelta(minutes=5),
        "samples": samples,
        "drift": True,
        "result": {"n": samples, "features": {"tenure": {"p_value": 0.001}}},
        "estimate": {"roc_auc": {"value": 0.8, "low": 0.75, "high": 0.85}},
    }
    values.update(kw)
    return WindowRecord(**values)


def trigger(**kw: object) -> TriggerRecord:
    values: dict[str, object] = {
        "model": "churn",
        "fired_at": T0,
        "state": "TRIGGERED",
        "reason": "drift on tenure in 3 of the last 5 windows",
        "evidence": {"windows": [1, 2, 3], "features": ["tenure"]},
    }
    values.update(kw)
    return TriggerRecord(**values)


def test_a_prediction_added_twice_is_stored_once_also_after_a_restart(
    monitor_url: str, monitor_store: MonitorStore
) -> None:
    batch = [pred("e1", 0), pred("e1", 1), pred("e2", 0)]
    assert monitor_store.add_predictions(batch) == 3
    assert monitor_store.add_predictions(batch) == 0
    # duplicates inside one batch and a mix of new and old rows
    assert monitor_store.add_predictions([pred("e3"), pred("e3"), pred("e1", 1)]) == 1
    # the new rows counted per model (what the service's churn_drift_predictions_total counts)
    mixed = [pred("e4"), pred("e5"), pred("x1", model="other"), pred("e3")]
    assert monitor_store.store_predictions(mixed) == {"churn": 2, "other": 1}
    monitor_store.close()

    reopened = MonitorStore(monitor_url)
    try:
        assert reopened.add_predictions(batch) == 0
        rows = reopened.open_rows("churn")
        assert [(r.event_id, r.row) for r in rows] == [
            ("e1", 0),
            ("e1", 1),
            ("e2", 0),
            ("e3", 0),
            ("e4", 0),
            ("e5", 0),
        ]
        assert reopened.counts()["predictions"] == 7
    finally:
        reopened.close()


def test_a_restart_sees_every_record_as_written(
    monitor_url: str, monitor_store: MonitorStore
) -> None:
    plus_two = timezone(timedelta(hours=2))
    monitor_store.add_predictions(
        [pred("e1"), pred("e2", customer=None, received_at=T0.astimezone(plus_two))]
    )
    first = monitor_store.open_rows("churn")
    window_id = monitor_store.close_window(
        window(samples=2),
        [p.id for p in first if p.id is not None],
        {"state": "SUSPECT", "bad": [1]},
    )
    monitor_store.add_predictions([pred("e3", probability=0.9, decision=1)])
    monitor_store.add_labels([Label("c1", True, date(2026, 4, 1), T0)])
    trigger_id = monitor_store.add_trigger(trigger())
    monitor_store.update_trigger_run(trigger_id, "run-1", "Running")
    before = (
        monitor_store.windows("churn"),
        monitor_store.open_rows("churn"),
        monitor_store.triggers("churn"),
        monitor_store.load_trigger_state("churn"),
        monitor_store.labelled_predictions("churn"),
    )
    monitor_store.close()

    reopened = MonitorStore(monitor_url)
    try:
        after = (
            reopened.windows("churn"),
            reopened.open_rows("churn"),
            reopened.triggers("churn"),
            reopened.load_trigger_state("churn"),
            reopened.labelled_predictions("churn"),
        )
    finally:
        reopened.close()
    assert after[:4] == before[:4]
    pd.testing.assert_frame_equal(after[4], before[4])
    (w,) = after[0]
    assert w.id == window_id and w.drift and w.estimate == window().estimate
    assert w.opened_at == T0 and w.opened_at.tzinfo is not None
    assert [p.event_id for p in after[1]] == ["e3"]
    assert after[1][0].features == FEATURES and after[1][0].received_at == T0
    (t,) = after[2]
    assert (t.run_id, t.run_status, t.evidence) == ("run-1", "Running", trigger().evidence)
    assert after[3] == {"state": "SUSPECT", "bad": [1]}


def test_times_come_back_in_utc_and_naive_times_are_refused(monitor_store: MonitorStore) -> None:
    local = T0.astimezone(timezone(timedelta(hours=-5)))
    monitor_store.add_predictions([pred("e1", received_at=local)])
    (row,) = monitor_store.open_rows("churn")
    assert row.received_at == T0 and row.received_at.utcoffset() == timedelta(0)
    with pytest.raises(InvalidInput, match="no time zone"):
        monitor_store.add_predictions([pred("e2", received_at=T0.replace(tzinfo=None))])
    with pytest.raises(InvalidInput, match="probability"):
        monitor_store.add_predictions([pred("e3", probability=math.nan)])
    assert len(monitor_store.open_rows("churn")) == 1


def test_close_window_assigns_predictions_once(monitor_store: MonitorStore) -> None:
    monitor_store.add_predictions([pred(f"e{i}") for i in range(5)])
    monitor_store.add_predictions([pred("x1", model="churn-explainer")])
    rows = monitor_store.open_rows("churn")
    ids = [p.id for p in rows if p.id is not None]
    w1 = monitor_store.close_window(window(samples=3), ids[:3], {"state": "OK"})
    assert [p.id for p in monitor_store.open_rows("churn")] == ids[3:]
    assert [p.event_id for p in monitor_store.open_rows("churn-explainer")] == ["x1"]
    w2 = monitor_store.close_window(window(samples=2, drift=False, estimate=None), ids[3:])
    assert monitor_store.open_rows("churn") == []
    assert [w.id for w in monitor_store.windows("churn")] == [w1, w2]
    assert [w.id for w in monitor_store.windows("churn", limit=1)] == [w2]
    assert monitor_store.windows("churn")[1].estimate is None
    # the state saved with the first window stays when a later close passes none
    assert monitor_store.load_trigger_state("churn") == {"state": "OK"}
    assert monitor_store.windows("churn-explainer") == []


@pytest.mark.parametrize(
    "breakage",
    ["state_not_json", "already_windowed", "other_model", "bad_trigger"],
)
def test_a_failing_close_window_records_nothing(monitor_store: MonitorStore, breakage: str) -> None:
    monitor_store.add_predictions([pred(f"e{i}") for i in range(4)])
    monitor_store.add_predictions([pred("x1", model="other")])
    ids = [p.id for p in monitor_store.open_rows("churn") if p.id is not None]
    first = monitor_store.close_window(window(samples=1), ids[:1], {"state": "OK"})
    state: dict[str, object] = {"state": "SUSPECT"}
    chosen = ids[1:]
    fired: TriggerRecord | None = trigger()
    expected: type[Exception] = MonitorStoreError
    if breakage == "state_not_json":
        state = {"state": "SUSPECT", "score": math.nan}  # fails after the window row is written
        expected = InvalidInput
    elif breakage == "already_windowed":
        chosen = [*ids[1:], ids[0]]
    elif breakage == "other_model":
        chosen = [*ids[1:], *(p.id for p in monitor_store.open_rows("other") if p.id)]
    else:
        fired = trigger(fired_at=T0.replace(tzinfo=None))  # the last step of the transaction
        expected = InvalidInput
    with pytest.raises(expected):
        monitor_store.close_window(window(samples=len(chosen)), chosen, state, trigger=fired)

    assert [w.id for w in monitor_store.windows("churn")] == [first]
    assert [p.id for p in monitor_store.open_rows("churn")] == ids[1:]
    assert monitor_store.load_trigger_state("churn") == {"state": "OK"}
    assert monitor_store.triggers("churn") == []
    assert monitor_store.counts()["windows"] == 1


def test_a_trigger_recorded_with_its_window_and_its_run(monitor_store: MonitorStore) -> None:
    monitor_store.add_predictions([pred("e1")])
    (p,) = monitor_store.open_rows("churn")
    assert p.id is not None
    monitor_store.close_window(window(samples=1), [p.id], {"state": "TRIGGERED"}, trigger=trigger())
    (t,) = monitor_store.triggers("churn")
    assert t.id is not None and t.run_id is None and t.state == "TRIGGERED"
    monitor_store.update_trigger_run(t.id, "run-7", "Succeeded")
    second = monitor_store.add_trigger(trigger(state="COOLDOWN", reason="run finished"))
    history = monitor_store.triggers("churn")
    assert [(h.id, h.run_id, h.run_status) for h in history] == [
        (t.id, "run-7", "Succeeded"),
        (second, None, None),
    ]
    with pytest.raises(NotFound, match="no trigger"):
        monitor_store.update_trigger_run(second + 100, "run-x", "Running")


def test_labels_join_the_first_label_on_or_after_the_prediction_day(
    monitor_store: MonitorStore,
) -> None:
    day = T0.date()
    monitor_store.add_predictions(
        [
            pred("a", customer="c1"),  # gets c1's label of day + 10 (day - 1 is older)
            pred("b", customer="c2"),  # a label dated the prediction's own day counts
            pred("c", customer="c3"),  # no label yet
            pred("d", customer=None),  # no customer id: never labelled
            pred("e", customer="c1", received_at=T0 + timedelta(days=15)),  # c1's day + 20
        ]
    )
    assert (
        monitor_store.add_labels(
            [
                Label("c1", False, day - timedelta(days=1), T0),
                Label("c1", True, day + timedelta(days=10), T0),
                Label("c1", False, day + timedelta(days=20), T0),
                Label("c2", False, day, T0),
                Label("c2", False, day, T0),  # the same key twice in one batch
            ]
        )
        == 4
    )
    # upsert: a corrected label replaces the stored one
    assert monitor_store.add_labels([Label("c2", True, day, T0 + timedelta(days=1))]) == 1
    assert monitor_store.counts()["labels"] == 4
    frame = monitor_store.labelled_predictions("churn")
    assert list(frame.columns) == list(LABELLED_COLUMNS)
    assert list(frame["event_id"]) == ["a", "b", "c", "d", "e"]
    assert frame["churned"].tolist() == [True, True, pd.NA, pd.NA, False]
    expected_dates = [day + timedelta(days=10), day, None, None, day + timedelta(days=20)]
    assert [None if pd.isna(d) else d.date() for d in frame["label_date"]] == expected_dates
    assert str(frame["received_at"].dt.tz) == "UTC"
    assert monitor_store.labelled_predictions("nobody").empty


def test_several_threads_write_at_once(monitor_store: MonitorStore) -> None:
    errors: list[BaseException] = []

    def writer(k: int) -> None:
        try:
            for i in range(10):
                batch = [pred(f"t{k}-{i}", row) for row in range(5)]
                assert monitor_store.add_predictions(batch) == 5
                monitor_store.add_predictions(batch[:2])  # a redelivery
        except BaseException as err:  # noqa: BLE001 - collected and re-raised below
            errors.append(err)

    threads = [threading.Thread(target=writer, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert monitor_store.counts()["predictions"] == 4 * 10 * 5


def test_an_unreachable_database_is_store_unavailable_without_the_password(
    tmp_path: object,
) -> None:
    port = free_port()
    with pytest.raises(StoreUnavailable) as caught:
        MonitorStore(f"postgresql+psycopg://churn:s3cret-pw@127.0.0.1:{port}/monitor")
    assert f"127.0.0.1:{port}" in str(caught.value) and "s3cret-pw" not in str(caught.value)
    with pytest.raises(StoreUnavailable, match="no-such-dir"):
        MonitorStore(f"sqlite:///{tmp_path}/no-such-dir/monitor.db")


def test_ping_fails_once_the_database_goes_away(postgres_server: PostgresHandle) -> None:
    url = postgres_server.new_database()
    name = url.rsplit("/", 1)[1]
    store = MonitorStore(url)
    try:
        store.ping()
        postgres_server.admin(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
        postgres_server.admin(
            f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'"
        )
        with pytest.raises(StoreUnavailable) as caught:
            store.ping()
        assert postgres_server.password not in str(caught.value)
        assert f"127.0.0.1:{postgres_server.port}/{name}" in str(caught.value)
        postgres_server.admin(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
        store.ping()  # the pool reconnects once the database is back
    finally:
        store.close()


def test_a_wrong_password_and_a_foreign_schema_are_clear_errors(
    postgres_server: PostgresHandle, monitor_url: str
) -> None:
    with pytest.raises(StoreUnavailable, match="password authentication failed"):
        MonitorStore(postgres_server.url(password="wrong"))
    MonitorStore(monitor_url).close()
    engine = create_engine(monitor_url)
    with engine.begin() as conn:
        conn.execute(text("UPDATE schema_version SET version = 99"))
    engine.dispose()
    with pytest.raises(MonitorStoreError, match="schema version"):
        MonitorStore(monitor_url)
    with pytest.raises(InvalidInput, match="only sqlite"):
        MonitorStore("mysql://u@localhost/db")
    with pytest.raises(InvalidInput, match="not a SQLAlchemy URL") as caught:
        MonitorStore("monitor.db?password=hunter2")
    assert "hunter2" not in str(caught.value)


def test_a_plain_postgresql_url_uses_psycopg_3(postgres_server: PostgresHandle) -> None:
    url = postgres_server.new_database().replace("postgresql+psycopg://", "postgresql://")
    with MonitorStore(url) as store:
        store.ping()
        assert store.add_predictions([pred("e1")]) == 1
