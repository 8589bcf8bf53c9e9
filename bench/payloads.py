"""Request bodies for the benchmark (v2 REST JSON, gRPC ModelInferRequest) and reading answers.

Two flavours of the same customers: "churn" (what `churn serve` takes: one
input per column, `content_type: pd`) and "mlserver" (the same, plus what
MLServer's pandas codec and sklearn runtime need: `content_type: str` on BYTES
inputs, and `outputs: [predict_proba]`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

# the output holding the churn probability, and its column in that output
PROBABILITY_OUTPUT = {"churn": ("churn_probability", 0), "mlserver": ("predict_proba", 1)}


def v2_body(frame: Any, flavour: str = "churn") -> dict[str, Any]:
    from churn_model.contract import FEATURE_COLUMNS, Categorical

    mlserver = flavour == "mlserver"
    inputs = []
    for col in FEATURE_COLUMNS:
        values = frame[col.name].tolist()
        tensor: dict[str, Any]
        if isinstance(col, Categorical):
            tensor = {"datatype": "BYTES", "data": values}
            if mlserver:  # MLServer's pandas codec keeps BYTES as bytes unless told "str"
                tensor["parameters"] = {"content_type": "str"}
        elif col.integer:
            tensor = {"datatype": "INT64", "data": [int(v) for v in values]}
        else:
            tensor = {"datatype": "FP64", "data": [None if v != v else float(v) for v in values]}
        inputs.append({"name": col.name, "shape": [len(values)], **tensor})
    body: dict[str, Any] = {"parameters": {"content_type": "pd"}, "inputs": inputs}
    if mlserver:
        body["outputs"] = [{"name": "predict_proba"}]
    return body


def grpc_request(frame: Any, model: str, flavour: str = "churn") -> Any:
    """The same body as a gRPC ModelInferRequest."""
    from kserve.protocol.grpc import grpc_predict_v2_pb2 as pb

    body = v2_body(frame, flavour)
    req = pb.ModelInferRequest(model_name=model)
    req.parameters["content_type"].string_param = "pd"
    for tensor in body["inputs"]:
        t = req.inputs.add(name=tensor["name"], datatype=tensor["datatype"], shape=tensor["shape"])
        for key, value in (tensor.get("parameters") or {}).items():
            t.parameters[key].string_param = value
        if tensor["datatype"] == "BYTES":
            t.contents.bytes_contents.extend(v.encode() for v in tensor["data"])
        elif tensor["datatype"] == "INT64":
            t.contents.int64_contents.extend(tensor["data"])
        else:
            t.contents.fp64_contents.extend(
                float("nan") if v is None else v for v in tensor["data"]
            )
    for out in body.get("outputs", []):
        req.outputs.add(name=out["name"])
    return req


def rest_probabilities(answer: dict[str, Any], rows: int, flavour: str) -> np.ndarray:
    """The churn probability of each row from a v2 REST JSON answer."""
    name, column = PROBABILITY_OUTPUT[flavour]
    for out in answer["outputs"]:
        if out["name"] == name:
            return np.asarray(out["data"], dtype=np.float64).reshape(rows, -1)[:, column]
    raise KeyError(f"no output {name!r} in {[o['name'] for o in answer['outputs']]}")


_RAW = {"FP32": np.float32, "FP64": np.float64}


def grpc_probabilities(answer: Any, rows: int, flavour: str) -> np.ndarray:
    """The churn probability of each row from a gRPC ModelInferResponse (typed or raw)."""
    name, column = PROBABILITY_OUTPUT[flavour]
    for i, out in enumerate(answer.outputs):
        if out.name != name:
            continue
        if len(answer.raw_output_contents) > i:
            data = np.frombuffer(answer.raw_output_contents[i], dtype=_RAW[out.datatype])
        elif out.datatype == "FP32":
            data = np.asarray(out.contents.fp32_contents)
        else:
            data = np.asarray(out.contents.fp64_contents)
        return data.astype(np.float64).reshape(rows, -1)[:, column]
    raise KeyError(f"no output {name!r} in {[o.name for o in answer.outputs]}")


class Payloads:
    """Body files for the load generators, written once per flavour and reused."""

    def __init__(self, workdir: Path, one: Any, batch: Any) -> None:
        self.dir = workdir
        self.one, self.batch = one, batch

    def file(self, name: str, data: bytes) -> str:
        path = self.dir / name
        if not path.exists():
            path.write_bytes(data)
        return str(path)

    def rest(self, which: str, flavour: str) -> str:
        frame = self.one if which == "one" else self.batch
        return self.file(f"{flavour}-{which}.json", json.dumps(v2_body(frame, flavour)).encode())

    def grpc(self, which: str, flavour: str) -> str:
        frame = self.one if which == "one" else self.batch
        data = grpc_request(frame, "churn", flavour).SerializeToString()
        return self.file(f"{flavour}-{which}.pb", bytes(data))

    def explain_v1(self) -> str:
        from tests.fixtures.model_server import instances

        body = json.dumps({"instances": instances(self.one)}).encode()
        return self.file("explain-v1.json", body)
