"""Generated malformed CloudEvents against a real drift service: never a 5xx, every event counted.

Property-based (hypothesis, derandomized: the same examples every run). Each
example is one case, one or two HTTP requests to a running `churn monitor
serve` (SQLite) built from the logger's good events for real customers:

- the CloudEvent headers broken: required ``ce-`` headers missing or empty,
  garbled bytes, an unknown ``ce-type`` (400, the body names the header or
  the type);
- bodies over ``monitor.events.max_body_bytes``, declared or chunked (413);
- request/response pairs with one half broken: bodies that are not JSON, not
  UTF-8, JSON that is no v2 document, v2 tensors of the wrong datatype, shape
  or contents, contract violations, binary-extension garbage, responses
  without the churn outputs or with more predictions than the request had
  customers (202: accepted, then counted as rejected by the worker);
- requests without responses, responses without requests, duplicates (202:
  counted as unmatched or duplicate);
- other routes and garbage label files (4xx naming the problem).

Every answer is 202 or a 4xx whose JSON body names what was wrong (no 5xx:
overload and database trouble cannot happen here). Afterwards the service's
counters add up exactly to what was sent, and a good request/response pair
is stored and closes a window of exactly its customers.

Examples: ``FUZZ_EXAMPLES`` (default 1,000 cases, about 1,300 requests);
``make fuzz`` runs many more.
"""

from __future__ import annotations

import http.client
import json
import os
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import pytest
import requests
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from churn_model.contract import FEATURE_COLUMNS, Categorical
from tests.fixtures.drift_service import DriftServiceHandle, start_drift_service
from tests.fixtures.model_server import v2_body

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "1000"))
MAX_BODY = 16 * 1024
GOOD_ROWS = 10  # customers of the good pair at the end: exactly one window
JOIN_TIMEOUT_S = 1.0
REQUEST = "org.kubeflow.serving.inference.request"
RESPONSE = "org.kubeflow.serving.inference.response"
REQUIRED = ("ce-id", "ce-type", "ce-specversion")
NAMES = [c.name for c in FEATURE_COLUMNS]
CATEGORICAL = [c.name for c in FEATURE_COLUMNS if isinstance(c, Categorical)]
NUMERIC = [c.name for c in FEATURE_COLUMNS if not isinstance(c, Categorical)]
POST_ACCEPT = ("bad_body", "bad_request", "bad_response", "mismatch")

FUZZ = settings(
    max_examples=EXAMPLES,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def fuzz_config(tmp: Path) -> Path:
    """model_config.yaml with a small body limit, a 1 s join timeout and windows of 10."""
    config = yaml.safe_load((REPO / "model_config.yaml").read_text())
    config["drift"].update(window_size=GOOD_ROWS, min_window_size=GOOD_ROWS)
    config["kfp"]["endpoint"] = ""
    config["monitor"]["events"].update(
        max_body_bytes=MAX_BODY, join_timeout_seconds=JOIN_TIMEOUT_S, dedupe_seconds=600
    )
    path = tmp / "model_config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.fixture(scope="module")
def service(bundle_dir: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    tmp = tmp_path_factory.mktemp("monitor-fuzz")
    handle = start_drift_service(
        bundle_dir("xgboost"),
        tmp / "service",
        db_url=f"sqlite:///{tmp / 'monitor.db'}",
        config_path=fuzz_config(tmp),
        extra_args=("--launch", "none"),
    )
    yield handle
    handle.stop()


@pytest.fixture(scope="module")
def customers(customer_split: Any) -> Any:
    frame = customer_split[1]
    return frame[frame["tenure"] > 0].reset_index(drop=True)


def response_body(rows: int, probability: float = 0.3) -> dict[str, Any]:
    """A churn model's v2 response for `rows` customers."""
    return {
        "model_name": "churn",
        "model_version": "7",
        "outputs": [
            {
                "name": "churn_probability",
                "datatype": "FP32",
                "shape": [rows],
                "data": [probability] * rows,
            },
            {"name": "churn", "datatype": "BOOL", "shape": [rows], "data": [False] * rows},
        ],
    }


def dumps(value: Any) -> bytes:
    """Compact JSON like orjson's, also for integers beyond 64 bits."""
    return json.dumps(value, separators=(",", ":")).encode()


# -- what is sent ---------------------------------------------------------------------


@dataclass
class Send:
    """One HTTP request and what the service must answer."""

    headers: dict[str, str | bytes]
    body: bytes
    status: int  # expected
    clues: tuple[str, ...] = ()  # words the 4xx error must contain
    reason: str = ""  # the rejected-counter label of a 4xx from the intake
    method: str = "POST"
    path: str = "/"
    chunked: bool = False


@dataclass
class Case:
    """One example: what is sent, and what the counters must add up to afterwards."""

    kind: str
    sends: list[Send] = field(default_factory=list)
    broken_pairs: int = 0  # pairs rejected by the worker
    no_response: int = 0
    no_request: int = 0
    duplicates: int = 0


def ce_headers(event_id: str, kind: str) -> dict[str, str | bytes]:
    return {
        "ce-specversion": "1.0",
        "ce-id": event_id,
        "ce-type": kind,
        "ce-source": "http://localhost/fuzz",
        "ce-inferenceservicename": "churn",
        "ce-component": "predictor",
        "content-type": "application/json",
    }


# header bytes HTTP allows (visible ASCII and obs-text): control characters are refused by
# the HTTP parser before the service sees a request, as RFC 9110 says
garbage_bytes = st.binary(min_size=1, max_size=40).map(
    lambda b: bytes(c for c in b if 0x20 <= c != 0x7F).strip(b" ") or b"\xff"
)
not_a_number = st.text(max_size=4).map(lambda s: "x" + s)
weird_value = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=12),
    st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
)


@st.composite
def broken_request(draw: Any, good: dict[str, Any]) -> bytes:
    """A request body that the worker must refuse (bad_body or bad_request)."""
    body = orjson.loads(dumps(good))
    inputs = body["inputs"]
    by_name = {t["name"]: t for t in inputs}
    rows = inputs[0]["shape"][0]
    kind = draw(
        st.sampled_from(
            [
                "not_json",
                "invalid_utf8",
                "json_not_object",
                "no_inputs",
                "inputs_not_list",
                "datatype",
                "shape",
                "drop",
                "duplicate",
                "unknown_category",
                "negative",
                "string_number",
                "weird_data",
                "nan_category",
                "binary_garbage",
                "deep",
                "big_int",
                "invalid_utf8_id",
                "unnamed",
            ]
        )
    )
    tensor = inputs[draw(st.integers(0, len(inputs) - 1))]
    if kind == "not_json":
        return b"not json: " + draw(st.binary(max_size=200))
    if kind == "invalid_utf8":
        raw = dumps(body)
        name = draw(st.sampled_from(CATEGORICAL)).encode()
        at = raw.index(b'"name":"' + name + b'"')
        at = raw.index(b'"data":["', at) + len(b'"data":["')
        return raw[:at] + draw(st.sampled_from([b"\xff\xfe", b"\xc3", b"\xed\xa0\x80"])) + raw[at:]
    if kind == "json_not_object":
        return dumps(
            draw(
                st.one_of(
                    st.lists(weird_value, max_size=3),
                    st.integers(),
                    st.text(max_size=10),
                    st.none(),
                )
            )
        )
    if kind == "no_inputs":
        return dumps(
            draw(
                st.dictionaries(
                    st.text(max_size=8).filter(lambda k: k not in ("inputs", "instances")),
                    weird_value,
                    max_size=3,
                )
            )
        )
    if kind == "inputs_not_list":
        body["inputs"] = draw(
            st.one_of(
                st.text(max_size=5),
                st.integers(),
                st.none(),
                st.dictionaries(st.text(max_size=3), st.integers()),
            )
        )
    elif kind == "datatype":
        if tensor["name"] in CATEGORICAL:
            tensor["datatype"] = draw(st.sampled_from(["FP32", "INT64", "BOOL", "FP16"]))
        else:
            tensor["datatype"] = draw(st.sampled_from(["BYTES", "BOOL", "NOPE", ""]))
    elif kind == "shape":
        tensor["shape"] = draw(st.sampled_from([[rows + 1], [0], [-1], [rows, 2], "x", []]))
    elif kind == "drop":
        inputs.remove(tensor)
    elif kind == "duplicate":
        inputs.append(dict(tensor))
    elif kind == "unknown_category":
        tensor = by_name[draw(st.sampled_from(CATEGORICAL))]
        tensor["data"][0] = "Martian-" + draw(st.text(max_size=5))
    elif kind == "negative":
        tensor = by_name["tenure"]
        tensor["data"][0] = -draw(st.integers(1, 10**6))
    elif kind == "string_number":
        tensor = by_name[draw(st.sampled_from(NUMERIC))]
        tensor["data"][0] = draw(not_a_number)
    elif kind == "weird_data":
        tensor["data"] = draw(
            st.one_of(  # a scalar, or more elements than the shape says
                weird_value.filter(lambda v: not isinstance(v, list)),
                st.lists(weird_value, min_size=rows + 1, max_size=rows + 2),
            )
        )
    elif kind == "nan_category":
        tensor = by_name[draw(st.sampled_from(CATEGORICAL))]
        tensor["data"][0] = None
    elif kind == "binary_garbage":
        tensor["parameters"] = {
            "binary_data_size": draw(
                st.one_of(
                    st.integers(-5, -1), st.integers(10**6, 10**9), st.text(max_size=3), st.none()
                )
            )
        }
        tensor.pop("data", None)
        return dumps(body) + draw(st.binary(max_size=64))
    elif kind == "deep":
        depth = draw(st.integers(100, 5000))
        return b'{"inputs": ' + b"[" * depth + b"]" * depth + b"}"
    elif kind == "big_int":
        raw = dumps(body)
        at = raw.index(b'"name":"' + draw(st.sampled_from(NUMERIC)).encode() + b'"')
        at = raw.index(b'"data":[', at) + len(b'"data":[')
        end = min(i for i in (raw.find(b",", at), raw.find(b"]", at)) if i >= 0)
        big = draw(st.one_of(st.integers(2**64, 10**40), st.integers(-(10**40), -(2**64))))
        return raw[:at] + str(big).encode() + raw[end:]
    elif kind == "invalid_utf8_id":
        ids = ["ID-A", "ID-B"][:rows] + ["ID-C"] * max(0, rows - 2)
        inputs.append({"name": "customerID", "shape": [rows], "datatype": "BYTES", "data": ids})
        bad = draw(st.sampled_from([b"\xff\xfe", b"\xc3", b"\xed\xa0\x80", b"\x80abc"]))
        return dumps(body).replace(b"ID-A", bad, 1)
    elif kind == "unnamed":
        tensor["name"] = draw(st.one_of(st.none(), st.integers(), st.lists(st.integers())))
    return dumps(body)


@st.composite
def broken_response(draw: Any, rows: int) -> bytes:
    """A response body that the worker must refuse (bad_body, bad_response or mismatch)."""
    body = response_body(rows)
    kind = draw(
        st.sampled_from(
            [
                "not_json",
                "no_outputs",
                "drop",
                "out_of_range",
                "not_numbers",
                "lengths",
                "more_rows",
                "nan",
                "binary_garbage",
            ]
        )
    )
    outputs = body["outputs"]
    if kind == "not_json":
        return draw(st.binary(max_size=100).filter(lambda b: not b.strip().startswith(b"{")))
    if kind == "no_outputs":
        del body["outputs"]
    elif kind == "drop":
        del outputs[draw(st.integers(0, 1))]
    elif kind == "out_of_range":
        outputs[0]["data"][0] = draw(st.one_of(st.floats(1.0001, 1e30), st.floats(-1e30, -1e-6)))
    elif kind == "not_numbers":
        outputs[0]["data"] = draw(st.lists(not_a_number, min_size=1, max_size=3))
    elif kind == "lengths":
        outputs[1]["data"] = outputs[1]["data"] + [True]
    elif kind == "more_rows":
        return dumps(response_body(rows + draw(st.integers(1, 5))))
    elif kind == "nan":
        return dumps(body).replace(b"0.3", b"NaN", 1)
    elif kind == "binary_garbage":
        outputs[0]["parameters"] = {
            "binary_data_size": draw(st.integers(1, 64).filter(lambda n: n % 4))
        }
        outputs[0].pop("data")
        return dumps(body) + draw(st.binary(max_size=64))
    return dumps(body)


def garble(draw: Any, headers: dict[str, str | bytes]) -> None:
    """Garbage bytes in headers the service only passes through."""
    for name in draw(
        st.lists(
            st.sampled_from(
                [
                    "ce-source",
                    "ce-inferenceservicename",
                    "content-type",
                    "ce-time",
                    "inference-header-content-length",
                    "ce-namespace",
                ]
            ),
            max_size=3,
            unique=True,
        )
    ):
        headers[name] = draw(garbage_bytes)


@st.composite
def cases(draw: Any, good_request: dict[str, Any]) -> Case:
    """One malformed case (see the module docstring)."""
    rows = good_request["inputs"][0]["shape"][0]
    request_raw = orjson.dumps(good_request)
    response_raw = orjson.dumps(response_body(rows))
    event_id = f"fuzz-{uuid.uuid4().hex}"
    kind = draw(
        st.sampled_from(
            [
                "missing_header",
                "empty_header",
                "unknown_type",
                "garbled_type",
                "too_large",
                "too_large_chunked",
                "broken_request",
                "broken_response",
                "lone_request",
                "lone_response",
                "duplicate",
                "route",
                "labels",
            ]
        )
    )
    case = Case(kind)
    if kind in ("missing_header", "empty_header"):
        headers = ce_headers(event_id, draw(st.sampled_from([REQUEST, RESPONSE])))
        broken = draw(st.lists(st.sampled_from(REQUIRED), min_size=1, max_size=3, unique=True))
        for name in broken:
            if kind == "missing_header":
                del headers[name]
            else:
                headers[name] = draw(st.sampled_from(["", " ", "\t"]))
        garble(draw, headers)
        case.sends.append(Send(headers, request_raw, 400, tuple(broken), "not_cloudevent"))
    elif kind in ("unknown_type", "garbled_type"):
        value: str | bytes
        if kind == "unknown_type":
            value = draw(
                st.text(
                    st.characters(min_codepoint=33, max_codepoint=126), min_size=1, max_size=150
                ).filter(lambda t: t not in (REQUEST, RESPONSE))
            )
        else:
            value = REQUEST.encode() + draw(garbage_bytes)
        headers = ce_headers(event_id, "")
        headers["ce-type"] = value
        case.sends.append(Send(headers, request_raw, 400, ("ce-type",), "unknown_type"))
    elif kind in ("too_large", "too_large_chunked"):
        size = draw(st.integers(MAX_BODY + 1, 8 * MAX_BODY))
        body = request_raw + b" " * (size - len(request_raw))
        headers = ce_headers(event_id, draw(st.sampled_from([REQUEST, RESPONSE])))
        case.sends.append(
            Send(
                headers,
                body,
                413,
                (str(MAX_BODY),),
                "too_large",
                chunked=kind == "too_large_chunked",
            )
        )
    elif kind == "broken_request":
        headers = ce_headers(event_id, REQUEST)
        garble(draw, headers)
        case.sends.append(Send(headers, draw(broken_request(good_request)), 202))
        case.sends.append(Send(ce_headers(event_id, RESPONSE), response_raw, 202))
        case.broken_pairs = 1
    elif kind == "broken_response":
        headers = ce_headers(event_id, RESPONSE)
        garble(draw, headers)
        case.sends.append(Send(ce_headers(event_id, REQUEST), request_raw, 202))
        case.sends.append(Send(headers, draw(broken_response(rows)), 202))
        case.broken_pairs = 1
        if draw(st.booleans()):
            case.sends.reverse()  # the response may arrive first
    elif kind == "lone_request":
        case.sends.append(Send(ce_headers(event_id, REQUEST), request_raw, 202))
        case.no_response = 1
    elif kind == "lone_response":
        case.sends.append(Send(ce_headers(event_id, RESPONSE), response_raw, 202))
        case.no_request = 1
    elif kind == "duplicate":
        half = draw(st.sampled_from([REQUEST, RESPONSE]))
        body = request_raw if half == REQUEST else response_raw
        case.sends += [Send(ce_headers(event_id, half), body, 202)] * draw(st.integers(2, 3))
        case.duplicates = len(case.sends) - 1
        case.no_response, case.no_request = (1, 0) if half == REQUEST else (0, 1)
    elif kind == "route":
        method, path = draw(
            st.sampled_from(
                [
                    ("GET", "/"),
                    ("PUT", "/"),
                    ("DELETE", "/metrics"),
                    ("POST", "/v2/models/churn/infer"),
                    ("GET", "/" + uuid.uuid4().hex),
                    ("POST", "/readyz"),
                ]
            )
        )
        case.sends.append(
            Send(
                ce_headers(event_id, REQUEST),
                request_raw,
                404,
                ("no route", path),
                method=method,
                path=path,
            )
        )
    elif kind == "labels":
        body = draw(
            st.one_of(
                st.binary(max_size=200),
                st.just(b"customerID,churned,date\nc1,maybe,2026-13-45\n"),
                st.just(b"customerID,date\nc1,2026-01-01\n"),
                st.just(b"customerID,churned,date\n"),
            )
        )
        case.sends.append(Send({"content-type": "text/csv"}, body, 400, ("label",), path="/labels"))
    return case


# -- how it is sent -------------------------------------------------------------------


class Client:
    """One keep-alive HTTP/1.1 connection that sends header values as raw bytes."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)

    def send(self, s: Send) -> tuple[int, bytes]:
        self.conn.putrequest(s.method, s.path, skip_accept_encoding=True)
        for name, value in s.headers.items():
            self.conn.putheader(name, value)
        if s.chunked:
            self.conn.putheader("transfer-encoding", "chunked")
            self.conn.endheaders()
            for at in range(0, len(s.body), 4096):
                chunk = s.body[at : at + 4096]
                self.conn.send(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            self.conn.send(b"0\r\n\r\n")
        else:
            self.conn.putheader("content-length", str(len(s.body)))
            self.conn.endheaders(s.body)
        response = self.conn.getresponse()
        data = response.read()
        if response.will_close:
            self.reconnect()
        return response.status, data

    def reconnect(self) -> None:
        self.conn.close()
        self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)


def counters(handle: DriftServiceHandle) -> Counter[str]:
    """The drift service's event counters by name and label (`rejected:bad_body`, ...)."""
    out: Counter[str] = Counter()
    for line in handle.metrics().splitlines():
        if not line.startswith(("churn_drift_events_", "churn_drift_predictions_")):
            continue
        series, value = line.rsplit(" ", 1)
        name = series.split("{", 1)[0].removeprefix("churn_drift_").removesuffix("_total")
        name = name.removeprefix("events_")
        label = series.split('"')[1] if '"' in series else ""
        out[f"{name}:{label}" if label else name] += float(value)
        out[name + ":*"] += float(value)
    return out


def good_pair(customers: Any, start: int, rows: int, event_id: str) -> list[Send]:
    request = orjson.dumps(v2_body(customers.iloc[start : start + rows], id=event_id))
    return [
        Send(ce_headers(event_id, REQUEST), request, 202),
        Send(ce_headers(event_id, RESPONSE), orjson.dumps(response_body(rows, 0.7)), 202),
    ]


def test_malformed_cloudevents_are_refused_and_counted(
    service: DriftServiceHandle, customers: Any
) -> None:
    good_request = v2_body(customers.iloc[:2])
    client = Client(service.port)
    before = counters(service)
    sent: Counter[str] = Counter()  # expected counter increments
    tally: Counter[str] = Counter()

    @FUZZ
    @given(case=cases(good_request))
    def run(case: Case) -> None:
        tally[case.kind] += 1
        for s in case.sends:
            status, data = client.send(s)
            tally["requests"] += 1
            assert status < 500, f"{case.kind}: HTTP {status} {data[:300]!r}"
            assert status == s.status, f"{case.kind}: HTTP {status}, not {s.status}: {data[:300]!r}"
            if status == 202:
                sent["received:*"] += 1
                continue
            try:
                error = orjson.loads(data)["error"]
            except (orjson.JSONDecodeError, KeyError, TypeError) as err:
                raise AssertionError(f"{case.kind}: HTTP {status} {data[:300]!r} {s}") from err
            for clue in s.clues:
                assert clue.lower() in error.lower(), f"{case.kind}: {clue!r} not in {error!r}"
            if s.reason:
                sent[f"rejected:{s.reason}"] += 1
        sent["broken_pairs"] += case.broken_pairs
        sent["unmatched:no_response"] += case.no_response
        sent["unmatched:no_request"] += case.no_request
        sent["duplicate"] += case.duplicates

    run()
    assert tally["requests"] >= EXAMPLES, tally
    # the lone halves expire after the join timeout; then every event is accounted for
    service.wait_for("the lone halves expired", lambda s: s["waiting_halves"] == 0)
    after = counters(service)
    diff = {k: after[k] - before[k] for k in after}
    report = f"sent {dict(sent)}, tally {dict(tally)}, counters {diff}"
    for key in (
        "received:*",
        "rejected:not_cloudevent",
        "rejected:unknown_type",
        "rejected:too_large",
        "unmatched:no_response",
        "unmatched:no_request",
    ):
        assert diff.get(key, 0) == sent[key], f"{key}: {report}"
    assert diff.get("duplicate", 0) == sent["duplicate"], report
    assert sum(diff.get(f"rejected:{r}", 0) for r in POST_ACCEPT) == sent["broken_pairs"], report
    for reason in ("internal", "overloaded", "store_unavailable"):
        assert diff.get(f"rejected:{reason}", 0) == 0, f"{reason}: {report}"
    assert diff.get("predictions:*", 0) == 0, report
    # received = the halves of the broken pairs + the unmatched + the duplicates
    assert diff["received:*"] == (
        2 * sent["broken_pairs"] + diff["unmatched:*"] + diff["duplicate"]
    ), report
    print(f"\nmonitor fuzz: {tally['requests']} requests, 0 5xx; {report}")

    # still serving: a good pair is stored and closes exactly one window of its customers
    status = service.status()
    assert status["recent_windows"] == [], status  # nothing of the fuzz was stored
    assert not any(status["open_windows"].values()), status
    for s in good_pair(customers, 10, GOOD_ROWS, "after-fuzz"):
        assert client.send(s)[0] == 202
    status = service.wait_for("the good pair's window", lambda s: s["recent_windows"] != [])
    (window,) = status["recent_windows"]
    assert window["samples"] == GOOD_ROWS and window["model_version"] == "7", status
    assert not any(status["open_windows"].values()), status
    final = counters(service)
    assert final["predictions:*"] - before["predictions:*"] == GOOD_ROWS
    assert final["received:*"] - after["received:*"] == 2
    assert requests.get(f"{service.url}/readyz", timeout=10).status_code == 200
