"""The drift service's event path without a server: parsing, decoding, joining, windows."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import numpy as np
import orjson
import pandas as pd
import pytest

from churn_core.config import DriftConfig
from churn_model.contract import FEATURE_COLUMNS, Categorical
from churn_monitoring.events import (
    REQUEST_TYPE,
    RESPONSE_TYPE,
    CloudEvent,
    EventRejected,
    check_pair,
    decode_request,
    decode_response,
    feature_rows,
    parse_event,
)
from churn_monitoring.join import Joiner
from churn_monitoring.records import Prediction
from churn_monitoring.windows import OpenWindow, take_windows
from tests.fixtures.model_server import v2_body, v2_request

LIMIT = 1 << 20


def headers(kind: str = REQUEST_TYPE, event_id: str = "r-1") -> dict[str, str]:
    return {
        "ce-specversion": "1.0",
        "ce-id": event_id,
        "ce-type": kind,
        "ce-source": "http://localhost/churn",
        "ce-inferenceservicename": "churn",
        "ce-component": "predictor",
        "content-type": "application/json",
    }


@pytest.fixture(scope="module")
def customers(synthetic_frame: pd.DataFrame) -> pd.DataFrame:
    return synthetic_frame.head(8).reset_index(drop=True)


def test_a_cloudevent_is_read_from_its_headers() -> None:
    event = parse_event(headers(), b"{}", LIMIT)
    assert (event.id, event.type, event.model, event.component) == (
        "r-1",
        REQUEST_TYPE,
        "churn",
        "predictor",
    )
    assert event.key == ("r-1", REQUEST_TYPE)


@pytest.mark.parametrize(
    ("drop", "change", "reason", "words"),
    [
        ("ce-id", {}, "not_cloudevent", "ce-id"),
        ("ce-specversion", {}, "not_cloudevent", "ce-specversion"),
        (None, {"ce-type": "com.example.other"}, "unknown_type", "com.example.other"),
    ],
)
def test_a_malformed_cloudevent_is_refused_with_its_reason(
    drop: str | None, change: dict[str, str], reason: str, words: str
) -> None:
    h = {**headers(), **change}
    if drop:
        del h[drop]
    with pytest.raises(EventRejected) as err:
        parse_event(h, b"{}", LIMIT)
    assert err.value.reason == reason
    assert words in str(err.value)


def test_an_event_over_the_size_limit_is_refused() -> None:
    with pytest.raises(EventRejected) as err:
        parse_event(headers(), b"x" * 2000, 1024)
    assert err.value.reason == "too_large" and "1024" in str(err.value)


def _expected_columns(frame: pd.DataFrame) -> dict[str, list]:
    out = {}
    for col in FEATURE_COLUMNS:
        values = frame[col.name].tolist()
        out[col.name] = values if isinstance(col, Categorical) else [float(v) for v in values]
    return out


def test_a_json_request_decodes_into_the_contract_columns(customers: pd.DataFrame) -> None:
    body = v2_body(customers, id="req-7")
    ids = [f"c{i}" for i in range(8)]
    body["inputs"].append({"name": "customerID", "shape": [8], "datatype": "BYTES", "data": ids})
    decoded = decode_request(orjson.dumps(body))
    assert decoded.rows == 8
    assert list(decoded.ids) == [f"c{i}" for i in range(8)]
    expected = _expected_columns(customers)
    for name, values in expected.items():
        got = decoded.columns[name].tolist()
        assert got == pytest.approx(values) if not isinstance(values[0], str) else got == values
    rows = feature_rows(decoded.columns)
    assert rows[3]["Contract"] == customers.loc[3, "Contract"]


def test_a_binary_extension_request_decodes_like_its_json_twin(customers: pd.DataFrame) -> None:
    binary, json_length = v2_request(customers, binary=True).to_rest()
    assert isinstance(binary, bytes) and json_length and json_length < len(binary)
    plain = decode_request(orjson.dumps(v2_body(customers)))
    decoded = decode_request(binary)
    for name, values in plain.columns.items():
        assert decoded.columns[name].tolist() == values.tolist(), name


def test_v1_instances_decode_too(customers: pd.DataFrame) -> None:
    from tests.fixtures.model_server import instances

    decoded = decode_request(orjson.dumps({"instances": instances(customers)}))
    assert decoded.rows == 8 and decoded.ids is None


@pytest.mark.parametrize(
    ("body", "reason", "words"),
    [
        (b"not json", "bad_body", "not a v2 JSON"),
        (b"[1, 2]", "bad_body", "not an object"),
        (b'{"inputs": 3}', "bad_body", "'inputs'"),
        (b'{"inputs": [{"datatype": "FP64"}]}', "bad_body", "named tensor"),
    ],
)
def test_a_body_that_is_no_v2_request_is_refused(body: bytes, reason: str, words: str) -> None:
    with pytest.raises(EventRejected) as err:
        decode_request(body)
    assert err.value.reason == reason and words in str(err.value)


def test_a_request_breaking_the_contract_is_refused_naming_the_value(
    customers: pd.DataFrame,
) -> None:
    frame = customers.copy()
    frame.loc[2, "Contract"] = "Ten year"
    with pytest.raises(EventRejected) as err:
        decode_request(orjson.dumps(v2_body(frame)))
    assert err.value.reason == "bad_request"
    assert "Contract" in str(err.value) and "Ten year" in str(err.value)


def _response(n: int, version: str = "7", model: str = "churn") -> bytes:
    p = np.linspace(0.05, 0.95, n)
    return orjson.dumps(
        {
            "id": "req-7",
            "model_name": model,
            "model_version": version,
            "outputs": [
                {"name": "churn_probability", "datatype": "FP32", "shape": [n], "data": p.tolist()},
                {"name": "churn", "datatype": "BOOL", "shape": [n], "data": (p >= 0.5).tolist()},
            ],
        }
    )


def test_a_response_gives_probability_decision_and_version() -> None:
    decoded = decode_response(_response(4))
    assert decoded.model_name == "churn" and decoded.model_version == "7"
    assert decoded.probability.tolist() == pytest.approx([0.05, 0.35, 0.65, 0.95])
    assert decoded.decision.tolist() == [False, False, True, True]


def test_a_response_without_the_churn_outputs_is_refused() -> None:
    body = orjson.dumps({"outputs": [{"name": "x", "datatype": "FP32", "shape": [1], "data": [1]}]})
    with pytest.raises(EventRejected) as err:
        decode_response(body)
    assert err.value.reason == "bad_response" and "churn_probability" in str(err.value)


def test_request_and_response_of_different_sizes_do_not_pair(customers: pd.DataFrame) -> None:
    request = decode_request(orjson.dumps(v2_body(customers)))
    with pytest.raises(EventRejected) as err:
        check_pair(request, decode_response(_response(3)))
    assert err.value.reason == "mismatch" and "8 customers" in str(err.value)


# -- joining -------------------------------------------------------------------------------


def _event(kind: str, event_id: str) -> CloudEvent:
    return CloudEvent(event_id, kind, "src", "churn", "predictor", "application/json", b"")


def test_shuffled_duplicated_events_with_lost_responses_join_exactly() -> None:
    """10% duplicates, 5% of the responses dropped, all shuffled: exact pairs and counts."""
    rng = random.Random(5)
    ids = [f"r{i}" for i in range(2000)]
    dropped = set(rng.sample(ids, 100))
    events = [_event(REQUEST_TYPE, i) for i in ids]
    events += [_event(RESPONSE_TYPE, i) for i in ids if i not in dropped]
    duplicates = rng.sample(events, len(events) // 10)
    events += duplicates
    rng.shuffle(events)
    joiner = Joiner(timeout_s=60.0, dedupe_s=3600.0)
    pairs = [p for e in events if (p := joiner.add(e, now=0.0)) is not None]
    joiner.expire(now=61.0)
    counts = joiner.take_counts()
    assert sorted(p.request.id for p in pairs) == sorted(set(ids) - dropped)
    assert all(p.request.type == REQUEST_TYPE and p.response.type == RESPONSE_TYPE for p in pairs)
    assert counts.duplicates == len(duplicates)
    assert counts.unmatched == {"no_response": 100}


def test_a_half_arriving_after_its_partner_expired_is_late() -> None:
    joiner = Joiner(timeout_s=10.0, dedupe_s=100.0)
    assert joiner.add(_event(RESPONSE_TYPE, "a"), now=0.0) is None
    assert joiner.add(_event(REQUEST_TYPE, "a"), now=11.0) is None
    counts = joiner.take_counts()
    assert counts.unmatched == {"no_request": 1, "late": 1}
    assert joiner.waiting == 0


# -- windows -------------------------------------------------------------------------------

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def _rows(n: int, at: datetime) -> list[Prediction]:
    return [
        Prediction(
            event_id=f"e{i}",
            row=0,
            request_id=f"e{i}",
            customer_id=None,
            model="churn",
            model_version="7",
            probability=0.5,
            decision=1,
            received_at=at,
            features={},
            id=i,
        )
        for i in range(n)
    ]


def test_a_full_window_closes_with_exactly_its_size_and_the_rest_stays_open() -> None:
    config = DriftConfig(window_size=100, min_window_size=50)
    window = OpenWindow("churn", "7", _rows(250, T0))
    closed = take_windows(window, config, T0)
    assert [len(c.rows) for c in closed] == [100, 100]
    assert all(c.tested and c.why == "full" for c in closed)
    assert len(window.rows) == 50


def test_an_old_window_closes_tested_when_big_enough_else_untested() -> None:
    config = DriftConfig(window_size=100, min_window_size=50, window_max_age_seconds=60)
    later = T0 + timedelta(seconds=61)
    big = OpenWindow("churn", "7", _rows(60, T0))
    assert take_windows(big, config, T0 + timedelta(seconds=59)) == []
    (closed,) = take_windows(big, config, later)
    assert closed.tested and closed.why == "age" and len(closed.rows) == 60
    small = OpenWindow("churn", "7", _rows(10, T0))
    (closed,) = take_windows(small, config, later)
    assert not closed.tested and closed.why == "too_small"
    assert small.rows == []
