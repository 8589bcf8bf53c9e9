"""Generated malformed requests against a real `churn serve`: never a 5xx, always a reason.

Property-based (hypothesis, derandomized: the same examples every run). Each
example starts from a good v2 request for real customers and applies a few
mutations shaped around the v2 protocol: wrong datatypes, shapes that do not
match the data, missing, duplicated and unknown inputs, bad categories, NaN,
infinities, strings and nested lists among numbers, huge batches, deep JSON,
invalid UTF-8, wrong content types, false binary-extension headers and
truncated bodies (REST); the same over gRPC (wrong contents fields, raw
contents of the wrong size, truncated protobuf). Every answer must be a
success or a 4xx (gRPC: not UNKNOWN/INTERNAL) whose error text names one of
the things the mutations broke; after all of them a good request gets the
same answer as before.

Examples per property: ``FUZZ_EXAMPLES`` (default 500 per REST route, lean and
KServe's, and 1,000 over gRPC: >= 1,000 each); ``make fuzz`` runs many more.
"""

from __future__ import annotations

import json
import math
import os
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import orjson
import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from churn_model.contract import FEATURE_COLUMNS, Categorical
from tests.fixtures.model_server import ServerHandle, serve_bundle, v2_body

pytestmark = pytest.mark.integration

MAX_BODY = 256 * 1024
MAX_ROWS = 100
EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "500"))
NAMES = [c.name for c in FEATURE_COLUMNS]
CATEGORICAL = [c.name for c in FEATURE_COLUMNS if isinstance(c, Categorical)]
NUMERIC = [c.name for c in FEATURE_COLUMNS if not isinstance(c, Categorical)]
DATATYPES = ["BOOL", "UINT8", "INT8", "INT32", "INT64", "FP16", "FP32", "FP64", "BYTES"]
TALLY: Counter[str] = Counter()

FUZZ = settings(
    max_examples=EXAMPLES,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@pytest.fixture(scope="module", params=["lean", "kserve-rest"])
def server(request, bundle_dir, tmp_path_factory) -> Iterator[ServerHandle]:
    extra = ("--max-body-bytes", str(MAX_BODY), "--max-batch-rows", str(MAX_ROWS))
    if request.param == "kserve-rest":
        extra += ("--kserve-rest",)
    handle = serve_bundle(
        bundle_dir("xgboost"), tmp_path_factory.mktemp(f"fuzz-{request.param}"), extra_args=extra
    )
    handle.extra["route"] = request.param
    yield handle
    handle.stop()


@pytest.fixture(scope="module")
def good(customer_split) -> dict[str, Any]:
    frame = customer_split[1]
    return v2_body(frame[frame["tenure"] > 0].iloc[:3])


# -- REST: mutations of a good body -----------------------------------------------------


@dataclass
class Case:
    """A request being broken: its body (dict until serialised), headers, and the clues."""

    body: Any
    headers: dict[str, str] = field(default_factory=lambda: {"content-type": "application/json"})
    raw: bytes | None = None  # set once the body is bytes
    clues: set[str] = field(default_factory=set)

    def tensor(self, i: int) -> dict[str, Any]:
        return self.body["inputs"][i % len(self.body["inputs"])]


weird_value = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=12),
    st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
)


def _first(inputs: list[Any], names: list[str], default: dict[str, Any]) -> dict[str, Any]:
    """The first input tensor named one of `names`, else `default`."""
    return next((x for x in inputs if isinstance(x, dict) and x.get("name") in names), default)


def _clue_of(tensor: dict[str, Any]) -> set[str]:
    name = tensor.get("name")
    return {str(name)} if isinstance(name, str) else {"inputs["}


@st.composite
def rest_mutation(draw: Any, case: Case) -> None:
    """Apply one structural mutation to `case` (a dict body) and add what it breaks."""
    kind = draw(
        st.sampled_from(
            [
                "datatype",
                "shape",
                "drop",
                "duplicate",
                "unknown",
                "category",
                "number",
                "data-type",
                "field",
                "top",
                "rows",
                "outputs",
                "content-type",
            ]
        )
    )
    body = case.body
    if not isinstance(body, dict) or not isinstance(body.get("inputs"), list) or not body["inputs"]:
        return
    t = case.tensor(draw(st.integers(0, 100)))
    if not isinstance(t, dict):  # an earlier mutation made the inputs a list of non-objects
        case.clues |= {"inputs", "must be an object"}
        return
    clue = _clue_of(t)
    if kind == "datatype":
        t["datatype"] = draw(st.sampled_from([*DATATYPES, "FLOAT", "", "fp64"]) | weird_value)
        case.clues |= clue | {"datatype"}
    elif kind == "shape":
        t["shape"] = draw(st.lists(st.integers(-5, 10**13), min_size=0, max_size=4) | weird_value)
        case.clues |= clue | {"shape"}
    elif kind == "drop":
        body["inputs"].remove(t)
        case.clues |= clue | {"missing"}
    elif kind == "duplicate":
        body["inputs"].append(dict(t))
        case.clues |= clue | {"more than once"}
    elif kind == "unknown":
        name = draw(st.text(min_size=1, max_size=10).filter(lambda s: s not in NAMES))
        body["inputs"].append({**t, "name": name})
        case.clues |= {name} if name.isprintable() else {"unexpected input"}
    elif kind == "category":
        cat = _first(body["inputs"], CATEGORICAL, t)
        if isinstance(cat.get("data"), list) and cat["data"]:
            cat["data"][0] = draw(
                st.text(max_size=20) | weird_value | st.sampled_from(["x" * 5000, "Yes" * 999])
            )
        case.clues |= _clue_of(cat)
    elif kind == "number":
        num = _first(body["inputs"], NUMERIC, t)
        if isinstance(num.get("data"), list) and num["data"]:
            num["data"][0] = draw(
                st.sampled_from([math.nan, math.inf, -math.inf, "NaN", "12", "", True, "9" * 3000])
                | weird_value
            )
        case.clues |= _clue_of(num)
    elif kind == "data-type":
        t["data"] = draw(weird_value)
        case.clues |= clue | {"data"}
    elif kind == "field":
        key = draw(st.sampled_from(["name", "shape", "datatype", "data", "parameters"]))
        if draw(st.booleans()):
            t.pop(key, None)
        else:
            t[key] = draw(weird_value)
        case.clues |= clue | {key, "inputs["}
    elif kind == "top":
        key = draw(st.sampled_from(["inputs", "id", "parameters", "outputs"]))
        if key == "inputs" and draw(st.booleans()):
            body.pop("inputs")
        else:
            body[key] = draw(weird_value)
        case.clues |= {key, "missing"}  # no inputs, or [], is every attribute missing
    elif kind == "rows":
        n = draw(st.integers(MAX_ROWS + 1, 4 * MAX_ROWS))
        for x in body["inputs"]:
            if isinstance(x.get("data"), list) and x["data"]:
                x["data"] = (x["data"] * n)[:n]
                x["shape"] = [n]
        case.clues |= {"rows", "CHURN_MAX_BATCH_ROWS"}
    elif kind == "outputs":
        body["outputs"] = [{"name": draw(st.text(max_size=8))}]
        case.clues |= {"output"}
    elif kind == "content-type":
        case.headers["content-type"] = draw(
            st.sampled_from(["text/plain", "application/octet-stream", "multipart/form-data", ""])
        )
        case.clues |= {"content"}
        return


@st.composite
def rest_case(draw: Any, good: dict[str, Any]) -> Case:
    """A good body broken by 1-3 mutations, then perhaps by a byte-level one."""
    case = Case(body=orjson.loads(orjson.dumps(good)))
    if draw(st.integers(0, 9)) == 0:  # not an inference request at all
        case.body = draw(weird_value | st.lists(weird_value, max_size=3))
        case.clues |= {"inputs", "object", "JSON", "body"}
    for _ in range(draw(st.integers(1, 3))):
        draw(rest_mutation(case))
    # json, not orjson: integers beyond 64 bits, NaN and Infinity go out as written
    raw = json.dumps(case.body, default=str, separators=(",", ":")).encode()
    if any(isinstance(v, float) and not math.isfinite(v) for v in _leaves(case.body)):
        case.clues |= {"NaN", "nan", "inf", "JSON", "null"}
    kind = draw(st.sampled_from(["none"] * 5 + ["truncate", "utf8", "deep", "token", "binary"]))
    if kind == "truncate":
        raw = raw[: draw(st.integers(0, max(0, len(raw) - 1)))]
        case.clues |= {"JSON", "body", "request format"}
    elif kind == "utf8":
        at = raw.find(b'"', draw(st.integers(0, max(0, len(raw) - 1))))
        if at >= 0:
            raw = (
                raw[: at + 1]
                + draw(st.sampled_from([b"\xff", b"\xc3\x28", b"\xed\xa0\x80"]))
                + raw[at + 1 :]
            )
            case.clues |= {"UTF-8", "utf-8", "JSON"}
    elif kind == "deep":
        depth = draw(st.integers(33, 200_000))
        raw = b'{"inputs":' + b"[" * depth + b"]" * depth + b"}"
        case.clues = {"levels deep", "CHURN_MAX_BODY_BYTES"}
    elif kind == "token":
        raw = raw.replace(
            b"0.", draw(st.sampled_from([b"NaN", b"Infinity", b"-Infinity", b"0x"])), 1
        )
        case.clues |= {"JSON"}
    elif kind == "binary":
        case.headers["inference-header-content-length"] = str(
            draw(st.integers(-5, len(raw) + 50) | st.sampled_from(["x", ""]))
        )
        raw += draw(st.binary(max_size=40))
        case.clues |= {"inference-header-content-length", "JSON", "binary", "request format"}
    if len(raw) > MAX_BODY:
        case.clues |= {"CHURN_MAX_BODY_BYTES"}
    case.raw = raw
    return case


def _leaves(value: Any) -> Iterator[Any]:
    if isinstance(value, dict):
        for v in value.values():
            yield from _leaves(v)
    elif isinstance(value, list):
        for v in value:
            yield from _leaves(v)
    else:
        yield value


def _names_a_clue(error: str, clues: set[str]) -> bool:
    text = error.lower()
    return any(c.lower() in text for c in clues if c)


def test_rest_malformed_requests(server: ServerHandle, good: dict[str, Any]) -> None:
    """No 5xx; a 4xx names what was wrong; a 200 answers every customer; then a good one."""
    session = requests.Session()
    url = f"{server.url}/v2/models/churn/infer"
    json_type = {"content-type": "application/json"}
    before = session.post(url, data=orjson.dumps(good), headers=json_type, timeout=30)
    before.raise_for_status()
    route = server.extra["route"]

    @FUZZ
    @given(st.data())
    def check(data: Any) -> None:
        case = data.draw(rest_case(good))
        r = session.post(url, data=case.raw, headers=case.headers, timeout=30)
        TALLY[f"rest-{route}"] += 1
        TALLY[f"rest-{r.status_code}"] += 1
        assert r.status_code < 500, (case.raw[:300], r.text[:500])
        if r.status_code == 200:
            outputs = r.json()["outputs"]
            assert len(outputs) >= 1 and all(o["shape"][0] >= 1 for o in outputs)
            return
        error = r.json().get("error")
        assert isinstance(error, str) and error, (r.status_code, r.text[:500], case.raw[:300])
        assert len(error) < 2000, error[:300]  # a reason, not the request echoed back
        assert _names_a_clue(error, case.clues), (sorted(case.clues), error, case.raw[:300])

    check()
    assert server.alive(), server.log()[-3000:]
    after = session.post(url, data=orjson.dumps(good), headers=json_type, timeout=30)
    assert after.status_code == 200 and after.json()["outputs"] == before.json()["outputs"]


# -- gRPC ----------------------------------------------------------------------------------


def _grpc_good(good: dict[str, Any]) -> Any:
    from kserve.protocol.grpc import grpc_predict_v2_pb2 as pb

    request = pb.ModelInferRequest(model_name="churn")
    request.parameters["content_type"].string_param = "pd"
    for t in good["inputs"]:
        tensor = request.inputs.add(name=t["name"], datatype=t["datatype"], shape=t["shape"])
        if t["datatype"] == "BYTES":
            tensor.contents.bytes_contents.extend(v.encode() for v in t["data"])
        elif t["datatype"] == "INT64":
            tensor.contents.int64_contents.extend(t["data"])
        else:
            tensor.contents.fp64_contents.extend(t["data"])
    return request


CONTENTS = [
    "bool_contents",
    "int_contents",
    "int64_contents",
    "uint_contents",
    "uint64_contents",
    "fp32_contents",
    "fp64_contents",
    "bytes_contents",
]


@st.composite
def grpc_case(draw: Any, base: Any) -> tuple[bytes, set[str]]:
    """A serialised ModelInferRequest broken by 1-3 mutations (maybe truncated)."""
    request = type(base)()
    request.CopyFrom(base)
    clues: set[str] = set()
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(
            st.sampled_from(
                [
                    "datatype",
                    "shape",
                    "drop",
                    "duplicate",
                    "unknown",
                    "category",
                    "number",
                    "contents",
                    "raw",
                    "rows",
                    "outputs",
                    "parameters",
                ]
            )
        )
        if not request.inputs:
            break
        i = draw(st.integers(0, len(request.inputs) - 1))
        t = request.inputs[i]
        clue = {t.name}
        if kind == "datatype":
            t.datatype = draw(st.sampled_from([*DATATYPES, "", "FLOAT"]) | st.text(max_size=6))
            clues |= clue | {"datatype"}
        elif kind == "shape":
            del t.shape[:]
            t.shape.extend(draw(st.lists(st.integers(-(2**40), 2**40), max_size=4)))
            clues |= clue | {"shape"}
        elif kind == "drop":
            del request.inputs[i]
            clues |= clue | {"missing"}
        elif kind == "duplicate":
            request.inputs.add().CopyFrom(t)
            clues |= clue | {"more than once"}
        elif kind == "unknown":
            name = draw(st.text(min_size=1, max_size=10).filter(lambda s: s not in NAMES))
            request.inputs.add().CopyFrom(t)
            request.inputs[-1].name = name
            clues |= {name} if name.isprintable() else {"unexpected input"}
        elif kind == "category":
            cats = [x for x in request.inputs if x.name in CATEGORICAL]
            if cats:
                c = cats[draw(st.integers(0, len(cats) - 1))]
                del c.contents.bytes_contents[:]
                c.contents.bytes_contents.append(
                    draw(st.binary(max_size=12) | st.text(max_size=12).map(str.encode))
                )
                clues |= {c.name}
        elif kind == "number":
            nums = [x for x in request.inputs if x.name in NUMERIC]
            if nums:
                n = nums[draw(st.integers(0, len(nums) - 1))]
                value = draw(st.sampled_from([math.nan, math.inf, -math.inf, -1.0, 1e300, 0.5]))
                if n.contents.int64_contents:
                    n.contents.ClearField("int64_contents")
                    n.contents.fp64_contents.extend([value] * len(n.shape and [0] or [0]))
                    n.datatype = "FP64"
                elif n.contents.fp64_contents:
                    n.contents.fp64_contents[0] = value
                clues |= {n.name}
        elif kind == "contents":
            t.contents.Clear()
            which = draw(st.sampled_from(CONTENTS))
            values = draw(
                st.lists(
                    st.booleans()
                    if which == "bool_contents"
                    else st.binary(max_size=6)
                    if which == "bytes_contents"
                    else st.floats(width=32)
                    if which.startswith("fp")
                    else st.integers(0, 2**31 - 1),
                    max_size=5,
                )
            )
            getattr(t.contents, which).extend(values)
            clues |= clue | {"contents", "data", "shape", "datatype"}
        elif kind == "raw":
            request.raw_input_contents.append(draw(st.binary(max_size=64)))
            clues |= {"raw", "contents", "input"} | clue
        elif kind == "rows":
            n = draw(st.integers(MAX_ROWS + 1, 4 * MAX_ROWS))
            del t.shape[:]
            t.shape.append(n)
            clues |= clue | {"rows", "shape"}
        elif kind == "outputs":
            request.outputs.add(name=draw(st.text(max_size=8)))
            clues |= {"output"}
        elif kind == "parameters":
            request.parameters["content_type"].string_param = draw(st.text(max_size=8))
            clues |= {"content_type"}
    raw = request.SerializeToString()
    if draw(st.integers(0, 9)) == 0:
        raw = raw[: draw(st.integers(0, max(0, len(raw) - 1)))]
        clues |= {"protobuf", "model_name", "missing", "shape", "datatype", "contents"}
    return raw, clues


def test_grpc_malformed_requests(server: ServerHandle, good: dict[str, Any]) -> None:
    """No UNKNOWN/INTERNAL; an error names what was wrong; then a good request is served."""
    import grpc
    from kserve.protocol.grpc import grpc_predict_v2_pb2 as pb

    if server.extra["route"] != "lean":
        pytest.skip("gRPC does not depend on the REST route: fuzzed once")
    base = _grpc_good(good)
    with grpc.insecure_channel(server.grpc_url) as channel:
        infer = channel.unary_unary(
            "/inference.GRPCInferenceService/ModelInfer",
            request_serializer=None,
            response_deserializer=pb.ModelInferResponse.FromString,
        )
        before = infer(base.SerializeToString(), timeout=30)

        @settings(FUZZ, max_examples=2 * EXAMPLES)
        @given(st.data())
        def check(data: Any) -> None:
            raw, clues = data.draw(grpc_case(base))
            TALLY["grpc"] += 1
            try:
                response = infer(raw, timeout=30)
            except grpc.RpcError as err:
                code = err.code()
                TALLY[f"grpc-{code.name}"] += 1
                assert code not in (grpc.StatusCode.UNKNOWN, grpc.StatusCode.INTERNAL), (
                    err.details(),
                    raw[:200],
                )
                details = err.details() or ""
                assert len(details) < 2000, details[:300]
                assert _names_a_clue(details, clues), (sorted(clues), details)
                return
            TALLY["grpc-OK"] += 1
            assert response.outputs and all(o.shape[0] >= 1 for o in response.outputs)

        check()
        assert server.alive(), server.log()[-3000:]
        after = infer(base.SerializeToString(), timeout=30)
    assert list(after.outputs) == list(before.outputs)


def test_tally() -> None:
    """The figures: requests tried per protocol and the answers (print with -s)."""
    print("\nfuzz figures:", dict(sorted(TALLY.items())))
    rest = TALLY["rest-lean"] + TALLY["rest-kserve-rest"]
    if EXAMPLES >= 500:
        assert rest >= 1000 and TALLY["grpc"] >= 1000, TALLY
    assert not any(k.startswith("rest-5") for k in TALLY), TALLY
