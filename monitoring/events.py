"""The payload logger's CloudEvents, read: headers checked, v2 bodies decoded into columns.

KServe's logger (and `churn serve --log-url`) POSTs binary-mode CloudEvents:
the `ce-*` headers say what the event is, the body is the raw payload. A
request event's body is the v2 request the model server received (JSON, or
the binary tensor extension: a JSON header followed by the tensors' bytes),
a response event's body the v2 response it sent. Both carry the request's
content type, so a body is recognised by its bytes, not by that header.

Every problem is an `EventRejected` with a short `reason` (a metric label)
and a message naming what was wrong; nothing here raises anything else for
bad input.
"""

from __future__ import annotations

import functools
import json
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson

from churn_core.errors import InvalidInput
from churn_inference.schema import (
    OUTPUT_DECISION,
    OUTPUT_ID,
    OUTPUT_PROBABILITY,
    decode_columns,
    decode_instances,
    input_specs,
)
from churn_model.contract import FEATURE_COLUMNS, ID_COLUMN

REQUEST_TYPE = "org.kubeflow.serving.inference.request"
RESPONSE_TYPE = "org.kubeflow.serving.inference.response"
EVENT_TYPES = (REQUEST_TYPE, RESPONSE_TYPE)
HEADER_LENGTH = "inference-header-content-length"

# the reasons an event is rejected (label values of churn_drift_events_rejected_total)
REJECT_REASONS = (
    "not_cloudevent",  # a required ce- header is missing
    "unknown_type",  # ce-type is not a request or a response
    "too_large",  # body over monitor.events.max_body_bytes
    "bad_body",  # not a v2 body (JSON, or JSON header + tensors)
    "bad_request",  # a v2 request that breaks the data contract
    "bad_response",  # a v2 response without the churn outputs
    "mismatch",  # request and response disagree (row counts)
    "overloaded",  # the intake queue is full
    "store_unavailable",  # the database cannot be reached
    "internal",  # processing failed unexpectedly (logged with its traceback)
)

_NUMPY_TYPES = {
    "BOOL": np.bool_,
    "INT8": np.int8,
    "INT16": np.int16,
    "INT32": np.int32,
    "INT64": np.int64,
    "UINT8": np.uint8,
    "UINT16": np.uint16,
    "UINT32": np.uint32,
    "UINT64": np.uint64,
    "FP16": np.float16,
    "FP32": np.float32,
    "FP64": np.float64,
}


class EventRejected(InvalidInput):
    """An event the service cannot use; `reason` is its metric label."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class CloudEvent:
    """One logged event: what it is, where from, and its raw body."""

    id: str
    type: str
    source: str
    model: str  # ce-inferenceservicename
    component: str  # ce-component: predictor, explainer, ...
    content_type: str
    body: bytes

    @property
    def key(self) -> tuple[str, str]:
        """The de-duplication key: the logger sends each (ce-id, ce-type) once."""
        return (self.id, self.type)


def parse_event(headers: Mapping[str, str], body: bytes, max_body_bytes: int) -> CloudEvent:
    """A binary-mode CloudEvent from its HTTP headers (lower-case names) and body.

    Raises:
        EventRejected: a missing `ce-id`/`ce-type`/`ce-specversion`, an unknown
            type, or a body over `max_body_bytes`.
    """
    missing = [h for h in ("ce-id", "ce-type", "ce-specversion") if not headers.get(h)]
    if missing:
        raise EventRejected(
            "not_cloudevent",
            f"not a binary-mode CloudEvent: header(s) {', '.join(missing)} missing",
        )
    kind = headers["ce-type"]
    if kind not in EVENT_TYPES:
        raise EventRejected(
            "unknown_type",
            f"ce-type {kind[:100]!r} is neither {REQUEST_TYPE} nor {RESPONSE_TYPE}",
        )
    if len(body) > max_body_bytes:
        raise EventRejected(
            "too_large", f"event body of {len(body)} bytes is over the limit of {max_body_bytes}"
        )
    return CloudEvent(
        id=headers["ce-id"],
        type=kind,
        source=headers.get("ce-source", ""),
        model=headers.get("ce-inferenceservicename", ""),
        component=headers.get("ce-component", ""),
        content_type=headers.get("content-type", ""),
        body=body,
    )


# -- v2 bodies ----------------------------------------------------------------------------


@dataclass
class _Tensor:
    """The attributes of a kserve `InferInput` that `decode_columns` reads."""

    name: str
    datatype: str
    shape: Any
    data: Any
    _raw_data: None = None


def _split_body(body: bytes) -> tuple[dict[str, Any], bytes]:
    """The JSON document at the start of `body` and the bytes after it (binary tensors)."""
    try:
        document, rest = orjson.loads(body), b""
    except orjson.JSONDecodeError:
        try:
            text = body.decode("utf-8", "surrogateescape")
            document, end = json.JSONDecoder().raw_decode(text)
        except (ValueError, RecursionError) as err:
            raise EventRejected("bad_body", f"the body is not a v2 JSON document: {err}") from err
        rest = text[end:].encode("utf-8", "surrogateescape")
    if not isinstance(document, dict):
        raise EventRejected("bad_body", "the body's JSON is not an object")
    return document, rest


def _binary(tensor: Mapping[str, Any], raw: bytes, offset: int) -> tuple[list[Any], int]:
    """The elements of one tensor sent in the binary extension, and the next offset."""
    name = tensor.get("name")
    size = (tensor.get("parameters") or {}).get("binary_data_size")
    if not isinstance(size, int) or size < 0 or offset + size > len(raw):
        raise EventRejected(
            "bad_body", f"tensor {name!r}: binary_data_size {size!r} outside the body's tensors"
        )
    chunk = raw[offset : offset + size]
    datatype = tensor.get("datatype")
    if datatype == "BYTES":
        values: list[Any] = []
        at = 0
        while at < len(chunk):
            if at + 4 > len(chunk):
                raise EventRejected("bad_body", f"tensor {name!r}: truncated BYTES element")
            (length,) = struct.unpack_from("<I", chunk, at)
            at += 4
            if at + length > len(chunk):
                raise EventRejected("bad_body", f"tensor {name!r}: truncated BYTES element")
            values.append(chunk[at : at + length])
            at += length
        return values, offset + size
    dtype = _NUMPY_TYPES.get(str(datatype))
    if dtype is None:
        raise EventRejected("bad_body", f"tensor {name!r}: unknown datatype {datatype!r}")
    width = np.dtype(dtype).itemsize
    if size % width:
        raise EventRejected(
            "bad_body", f"tensor {name!r}: {size} bytes is no whole number of {datatype}"
        )
    return np.frombuffer(chunk, dtype=np.dtype(dtype).newbyteorder("<")).tolist(), offset + size


def _tensors(document: Mapping[str, Any], raw: bytes, key: str) -> list[_Tensor]:
    """The `inputs` or `outputs` of a v2 document, binary tensors decoded."""
    entries = document.get(key)
    if not isinstance(entries, list):
        raise EventRejected("bad_body", f"the v2 body has no {key!r} list")
    out, offset = [], 0
    for entry in entries:
        if not isinstance(entry, Mapping) or not isinstance(entry.get("name"), str):
            raise EventRejected("bad_body", f"an entry of {key!r} is not a named tensor")
        data: Any
        if "binary_data_size" in (entry.get("parameters") or {}):
            data, offset = _binary(entry, raw, offset)
        else:
            data = entry.get("data")
        out.append(_Tensor(entry["name"], str(entry.get("datatype")), entry.get("shape"), data))
    return out


@dataclass(frozen=True)
class DecodedRequest:
    """A v2 request's customers: the contract's columns and the optional customer ids."""

    columns: dict[str, np.ndarray]
    ids: np.ndarray | None

    @property
    def rows(self) -> int:
        """Customers in the request."""
        return len(next(iter(self.columns.values())))


@dataclass(frozen=True)
class DecodedResponse:
    """What the server answered: its model, version and each customer's prediction."""

    model_name: str
    model_version: str
    probability: np.ndarray
    decision: np.ndarray
    ids: np.ndarray | None


@functools.cache
def _specs() -> tuple[tuple[Any, ...], dict[str, Any]]:
    """The served inputs (from the data contract) and the same by name."""
    specs = input_specs()
    return specs, {s.name: s for s in specs}


def decode_request(body: bytes) -> DecodedRequest:
    """A logged v2 (or v1 `instances`) request as the contract's columns, checked as served.

    Raises:
        EventRejected: `bad_body` for a body that is no v2 document,
            `bad_request` for one whose customers break the contract.
    """
    document, raw = _split_body(body)
    specs, by_name = _specs()
    try:
        if "instances" in document and "inputs" not in document:
            columns = decode_instances(document["instances"], specs)
        else:
            columns = decode_columns(_tensors(document, raw, "inputs"), specs, by_name)
    except EventRejected:
        raise
    except (InvalidInput, TypeError, ValueError) as err:
        raise EventRejected("bad_request", f"request: {err}") from err
    ids = columns.pop(ID_COLUMN, None)
    return DecodedRequest(columns, ids)


def decode_response(body: bytes) -> DecodedResponse:
    """A logged v2 response: the churn probability and decision per customer.

    Raises:
        EventRejected: `bad_body` or `bad_response` naming what is missing.
    """
    document, raw = _split_body(body)
    outputs = {t.name: t for t in _tensors(document, raw, "outputs")}
    missing = [n for n in (OUTPUT_PROBABILITY, OUTPUT_DECISION) if n not in outputs]
    if missing:
        raise EventRejected(
            "bad_response", f"response: output(s) {', '.join(missing)} missing (not a churn model)"
        )
    try:
        probability = np.asarray(outputs[OUTPUT_PROBABILITY].data, dtype=np.float64).reshape(-1)
        decision = np.asarray(outputs[OUTPUT_DECISION].data, dtype=bool).reshape(-1)
    except (TypeError, ValueError) as err:
        raise EventRejected("bad_response", f"response: outputs are not numbers: {err}") from err
    if probability.shape != decision.shape:
        raise EventRejected(
            "bad_response",
            f"response: {probability.size} probabilities but {decision.size} decisions",
        )
    if not np.all((probability >= 0) & (probability <= 1)):
        raise EventRejected("bad_response", "response: a churn probability outside [0, 1]")
    ids = None
    if OUTPUT_ID in outputs:
        ids = np.asarray(
            [
                v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v)
                for v in (outputs[OUTPUT_ID].data or [])
            ],
            dtype=object,
        )
    return DecodedResponse(
        model_name=str(document.get("model_name") or ""),
        model_version=str(document.get("model_version") or ""),
        probability=probability,
        decision=decision,
        ids=ids,
    )


def feature_rows(columns: Mapping[str, np.ndarray]) -> list[dict[str, Any]]:
    """Column arrays as one plain dict of the contract's attributes per customer (NaN as None)."""
    names = [c.name for c in FEATURE_COLUMNS]
    lists = [[None if v != v else v for v in columns[n].tolist()] for n in names]  # NaN: null
    return [dict(zip(names, values, strict=True)) for values in zip(*lists, strict=True)]


def check_pair(request: DecodedRequest, response: DecodedResponse) -> None:
    """Request and response of one ce-id must describe the same customers."""
    if request.rows != response.probability.size:
        raise EventRejected(
            "mismatch",
            f"the request has {request.rows} customers, its response "
            f"{response.probability.size} predictions",
        )
    if request.ids is not None and response.ids is not None:
        if list(request.ids) != list(response.ids):
            raise EventRejected("mismatch", "the response's customer ids differ from the request's")
