"""A small v2 (Open Inference Protocol) REST client of a running `churn serve`.

Customers travel as the server expects them: one input per customer
attribute, with the datatype the data contract gives it (BYTES for
categoricals, INT64 for integer attributes, FP64 for the others), a blank
number as JSON null, and `parameters.content_type: "pd"`. The client only
types the values; it never encodes features and never judges the values:
the server validates and answers a 400 naming the column and the value,
which the client raises as `InvalidInput` with the server's message.

Explanations come from the `<model>-explainer` v2 model (the v2 protocol has
no explain endpoint): its `reasons`, `suggestions` and `what_if` outputs, one
slot per reason (a what-if is the model's probability for the customer with
the suggestion's change applied).
"""

from __future__ import annotations

import io
import logging
import math
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import pandas as pd
import requests

from churn_core.errors import ChurnError, InvalidInput, NotFound, NotReady
from churn_model.contract import FEATURE_COLUMNS, ID_COLUMN, LABEL_COLUMN, Categorical

logger = logging.getLogger(__name__)

BATCH_ROWS = 1000  # customers per request
EXPLAINER_SUFFIX = "-explainer"
EXPLANATION_OUTPUTS = ("reasons", "suggestions", "what_if")
_STATUS_ERRORS: dict[int, type[ChurnError]] = {400: InvalidInput, 404: NotFound, 503: NotReady}


# -- customers in --------------------------------------------------------------------------


def read_customers(data: bytes, source: str = "<bytes>") -> pd.DataFrame:
    """A CSV table of customers, every value kept as the text it is (blanks stay blank)."""
    try:
        frame = pd.read_csv(io.BytesIO(data), dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
        raise InvalidInput(f"{source}: not a CSV table of customers: {err}") from err
    if frame.empty:
        raise InvalidInput(f"{source}: no customers (a header and no rows)")
    return frame


def sent_columns(frame: pd.DataFrame) -> list[str]:
    """The customer attributes of `frame` that are sent, in the contract's order.

    The id and the label stay on the client; other unknown columns are not
    sent (logged). A missing attribute is not sent either: the server names it.
    """
    known = {c.name for c in FEATURE_COLUMNS}
    ignored = [c for c in frame.columns if c not in known and c not in (ID_COLUMN, LABEL_COLUMN)]
    if ignored:
        logger.warning("columns not sent (not customer attributes): %s", ", ".join(ignored))
    return [c.name for c in FEATURE_COLUMNS if c.name in frame.columns]


def _plain(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else value


def _number(value: Any) -> Any:
    """A number from CSV text (blank or NaN: None); text that is no number is sent as is."""
    value = _plain(value)
    if isinstance(value, int):  # bool too: the server names it
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if value is None:
        return None
    text = str(value).strip()
    if not text:
        return None
    try:
        return int(text)
    except ValueError:
        pass
    try:
        number = float(text)
    except ValueError:
        return value  # the server answers which column and value
    return number if math.isfinite(number) else None


def v2_inputs(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """One v2 input tensor per customer attribute present in `frame`, typed by the contract."""
    by_name = {c.name: c for c in FEATURE_COLUMNS}
    inputs = []
    for name in sent_columns(frame):
        col = by_name[name]
        values = frame[name].tolist()
        if isinstance(col, Categorical):
            datatype, data = "BYTES", [_plain(v) for v in values]
        else:
            datatype = "INT64" if col.integer else "FP64"
            data = [_number(v) for v in values]
        inputs.append({"name": name, "shape": [len(data)], "datatype": datatype, "data": data})
    return inputs


def v2_request(
    frame: pd.DataFrame, outputs: Sequence[str] = (), request_id: str | None = None
) -> dict[str, Any]:
    """The v2 inference request body for the customers of `frame`.

    The customer ids (the `customerID` column, when there is one) travel as
    the `customerID` input, which the server answers back; `request_id` is the
    request's `id`, so a logged prediction can be joined to the label later.
    """
    inputs = v2_inputs(frame)
    if ID_COLUMN in frame.columns:
        ids = [str(_plain(v)) for v in frame[ID_COLUMN].tolist()]
        inputs.append({"name": ID_COLUMN, "shape": [len(ids)], "datatype": "BYTES", "data": ids})
    body: dict[str, Any] = {"parameters": {"content_type": "pd"}, "inputs": inputs}
    if request_id is not None:
        body["id"] = request_id
    if outputs:
        body["outputs"] = [{"name": name} for name in outputs]
    return body


# -- answers out ---------------------------------------------------------------------------


@dataclass
class Scored:
    """What the server said about a batch of customers."""

    model_name: str
    model_version: str
    probability: list[float]
    churn: list[bool]
    reasons: list[list[str]] = field(default_factory=list)
    suggestions: list[list[str]] = field(default_factory=list)
    what_ifs: list[list[str]] = field(default_factory=list)  # slot by slot with suggestions
    ids: list[str] = field(default_factory=list)  # as the server answered them back
    request_ids: list[str] = field(default_factory=list)  # one per request sent


def _outputs(body: dict[str, Any], names: Sequence[str]) -> dict[str, list[Any]]:
    """Output data by name; each as a list of rows when its shape is [n, k]."""
    found = {o.get("name"): o for o in body.get("outputs") or []}
    missing = [n for n in names if n not in found]
    if missing:
        raise ChurnError(f"the server's answer lacks output(s) {', '.join(missing)}")
    out: dict[str, list[Any]] = {}
    for name in names:
        tensor = found[name]
        data = list(tensor.get("data") or [])
        shape = list(tensor.get("shape") or [len(data)])
        if len(shape) == 2:
            width = int(shape[1])
            data = [data[i : i + width] for i in range(0, len(data), width)] if width else []
        out[name] = data
    return out


class V2Client:
    """Plain-HTTP v2 client of the churn predictor and its explainer.

    Args:
        url: base URL of the server, e.g. ``http://127.0.0.1:8080``.
        model: the predictor's name; the explainer is ``<model>-explainer``.
        timeout: seconds per request.
    """

    def __init__(self, url: str, model: str = "churn", timeout: float = 30.0) -> None:
        parsed = urlsplit(url)
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise InvalidInput(f"server URL must be http(s)://<host>:<port>, got {url!r}")
        if not timeout > 0:
            raise InvalidInput(f"timeout must be a positive number of seconds, got {timeout!r}")
        self.url = url.rstrip("/")
        self.model = model
        self.timeout = timeout
        self.session = requests.Session()

    def infer(self, model: str, body: dict[str, Any]) -> dict[str, Any]:
        """POST /v2/models/<model>/infer; a non-200 answer raises with the server's message."""
        endpoint = f"{self.url}/v2/models/{model}/infer"
        try:
            r = self.session.post(endpoint, json=body, timeout=self.timeout)
        except requests.ConnectionError as err:
            raise NotReady(
                f"no server answers at {self.url} (start one with `churn serve`): {err}"
            ) from err
        except requests.Timeout as err:
            raise NotReady(f"{endpoint} did not answer within {self.timeout:g} s") from err
        if r.status_code != 200:
            raise _status_error(r, model)
        try:
            answer: dict[str, Any] = r.json()
        except ValueError as err:
            raise ChurnError(f"{endpoint} answered 200 with a body that is not JSON") from err
        return answer

    def score(self, frame: pd.DataFrame, explain: bool = False) -> Scored:
        """Churn probability and decision (and with `explain` the reasons) for every row."""
        result = Scored(self.model, "", [], [])
        for start in range(0, len(frame), BATCH_ROWS):
            batch = frame.iloc[start : start + BATCH_ROWS]
            request_id = str(uuid.uuid4())
            answer = self.infer(self.model, v2_request(batch, request_id=request_id))
            if answer.get("id") != request_id:
                raise ChurnError(
                    f"the server answered request {request_id} with id {answer.get('id')!r}"
                )
            result.request_ids.append(request_id)
            names = ("churn_probability", "churn") + (
                (ID_COLUMN,) if ID_COLUMN in batch.columns else ()
            )
            outs = _outputs(answer, names)
            result.ids += [str(i) for i in outs.get(ID_COLUMN, [])]
            result.model_version = str(answer.get("model_version") or "")
            result.probability += [float(p) for p in outs["churn_probability"]]
            result.churn += [bool(d) for d in outs["churn"]]
            if explain:
                explainer = f"{self.model}{EXPLAINER_SUFFIX}"
                request_id = str(uuid.uuid4())
                answer = self.infer(
                    explainer, v2_request(batch, EXPLANATION_OUTPUTS, request_id=request_id)
                )
                result.request_ids.append(request_id)
                outs = _outputs(answer, EXPLANATION_OUTPUTS)
                result.reasons += [[str(t) for t in row if t] for row in outs["reasons"]]
                result.suggestions += [[str(t) for t in row] for row in outs["suggestions"]]
                result.what_ifs += [[str(t or "") for t in row] for row in outs["what_if"]]
        return result


def _status_error(r: requests.Response, model: str) -> ChurnError:
    try:
        message = str(r.json().get("error") or r.text)
    except ValueError:
        message = r.text.strip()[:500] or r.reason
    cls = _STATUS_ERRORS.get(r.status_code, ChurnError)
    return cls(f"model {model!r} answered {r.status_code}: {message}")


# -- the table -----------------------------------------------------------------------------


def format_table(
    ids: Sequence[str],
    scored: Scored,
    actual: Sequence[str] | None = None,
) -> str:
    """customerID, churn probability, churn decision (and the actual label, reasons).

    Under each customer with reasons: one numbered line per reason, its
    retention suggestion (``-> ...``) and that suggestion's what-if
    (``what if Contract = One year: 52.8% -> 21.4%``).
    """
    header = ["customerID", "churn probability", "churn"] + (["actual"] if actual else [])
    rows = []
    for i, customer in enumerate(ids):
        row = [str(customer), f"{scored.probability[i]:.3f}", "yes" if scored.churn[i] else "no"]
        if actual:
            row.append(str(actual[i]))
        rows.append(row)
    widths = [max(len(h), *(len(r[j]) for r in rows)) for j, h in enumerate(header)]

    def line(cells: Sequence[str]) -> str:
        first = cells[0].ljust(widths[0])
        rest = [c.rjust(w) for c, w in zip(cells[1:], widths[1:], strict=True)]
        return "  ".join([first, *rest]).rstrip()

    out = [line(header), line(["-" * w for w in widths])]
    for i, row in enumerate(rows):
        out.append(line(row))
        if scored.reasons:
            suggestions = scored.suggestions[i] if i < len(scored.suggestions) else []
            what_ifs = scored.what_ifs[i] if i < len(scored.what_ifs) else []
            for j, reason in enumerate(scored.reasons[i]):
                out.append(f"    {j + 1}. {reason}")
                if j < len(suggestions) and suggestions[j]:
                    out.append(f"       -> {suggestions[j]}")
                if j < len(what_ifs) and what_ifs[j]:
                    out.append(f"          what if {what_ifs[j]}")
    return "\n".join(out)
