"""KServe model classes: the churn predictor and its v2 explainer twin.

Both are thin lifecycles around one verified bundle (`ServedBundle`): the
predictor answers v2 `infer` (REST and gRPC) and v1 `:predict`/`:explain`;
`ChurnExplainerModel`, registered as ``<name>-explainer``, answers v2 `infer`
with attributions and reasons, so pure v2 clients get explanations too.

The hot path never builds a data frame: input tensors become numpy columns
(`schema.decode_columns`), the fitted transform's column path computes the
matrix, and the outputs go back as numpy arrays that KServe encodes.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping
from typing import Any

import numpy as np
from kserve import InferOutput, InferRequest, InferResponse, Model

from churn_core.config import ExplainerConfig
from churn_core.errors import ChurnError, InvalidInput, NotReady
from churn_inference.errors import kserve_errors
from churn_inference.limits import DEFAULT_MAX_BATCH_ROWS, check_batch_rows
from churn_inference.loading import ServedBundle, open_bundle
from churn_inference.metrics import churn_metrics
from churn_inference.schema import (
    OUTPUT_DECISION,
    OUTPUT_ID,
    OUTPUT_PROBABILITY,
    PREDICTOR_OUTPUTS,
    InputSpec,
    column_of,
    decode_columns,
    decode_instances,
)
from churn_model.explain import Explanation

logger = logging.getLogger(__name__)

BASE_OUTPUT = "base_log_odds"
REASONS_OUTPUT = "reasons"
SUGGESTIONS_OUTPUT = "suggestions"
WHAT_IF_OUTPUT = "what_if"
WHAT_IF_PROBABILITY_OUTPUT = "what_if_probability"
WHAT_IF_CHANGE_OUTPUT = "what_if_change"
NO_WHAT_IF = -1.0  # what_if_probability of a slot without a what-if
ATTRIBUTION_PREFIX = "attribution_"


def _parameter(params: Any, key: str) -> Any:
    """A request parameter from REST (dict) or gRPC (map of InferParameter)."""
    if not params or key not in params:
        return None
    value = params[key]
    if hasattr(value, "WhichOneof"):
        field = value.WhichOneof("parameter_choice")
        return getattr(value, field) if field else None
    return value


def _requested(request: InferRequest, available: list[str]) -> list[str]:
    """Names of the outputs to return: the requested ones (checked), else all."""
    wanted = request.request_outputs
    if not wanted:
        return available
    names = []
    for out in wanted:
        if out.name not in available:
            raise InvalidInput(
                f"requested output {out.name!r} does not exist; outputs: {', '.join(available)}"
            )
        names.append(out.name)
    return names


def _json_body(body: bytes | str) -> Any:
    import orjson

    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as err:
        raise InvalidInput(f"request body is not JSON: {err}") from err


def _encoding(request: InferRequest) -> str:
    """How outputs are handed to KServe's encoder.

    REST: numpy arrays (KServe encodes JSON or binary per requested output).
    gRPC: lists (contents fields), or raw bytes when the request came raw;
    KServe's `to_grpc` cannot take arrays when answering raw requests.
    """
    if not request.from_grpc:
        return "array"
    return "raw" if request.use_binary_outputs else "list"


def _tensor(name: str, datatype: str, arr: np.ndarray, encoding: str) -> InferOutput:
    shape = list(arr.shape)
    if encoding == "list":
        return InferOutput(name=name, shape=shape, datatype=datatype, data=arr.reshape(-1).tolist())
    out = InferOutput(name=name, shape=shape, datatype=datatype, data=arr)
    if encoding == "raw":
        out.set_data_from_numpy(arr, binary_data=True)
    return out


def _response(
    request: InferRequest, model_name: str, version: str, outputs: list[InferOutput]
) -> InferResponse:
    """The v2 answer to `request`: its id (or a new one), its binary and requested outputs."""
    return InferResponse(
        response_id=request.id or str(uuid.uuid4()),
        model_name=model_name,
        model_version=version,
        infer_outputs=outputs,
        use_binary_outputs=request.use_binary_outputs,
        requested_outputs=request.request_outputs,
    )


class _SyncModel(Model):
    """A KServe model whose preprocess and postprocess are synchronous identities.

    KServe awaits only coroutine functions: plain ones spare a coroutine per request.
    """

    def preprocess(self, payload: Any, headers: Mapping[str, str] | None = None) -> Any:
        """Identity (kept synchronous: no coroutine per request)."""
        return payload

    def postprocess(
        self,
        result: Any,
        headers: Mapping[str, str] | None = None,
        response_headers: Mapping[str, str] | None = None,
    ) -> Any:
        """Identity (kept synchronous)."""
        return result


class ChurnPredictor(_SyncModel):
    """The churn model: v2 infer over REST and gRPC, v1 predict and explain.

    Args:
        name: the served model name (``churn`` by default).
        model_uri: bundle path, Azure Blob URI or ``models:/<name>@<alias>``.
        explainer_config: top-k and the retention catalogue.
        connection_string: Azure Storage connection string for blob URIs.
        tracking_uri: the MLflow registry for a ``models:/`` URI.
        max_batch_rows: a request of more customers is refused (413 / RESOURCE_EXHAUSTED).
    """

    def __init__(
        self,
        name: str,
        model_uri: str,
        explainer_config: ExplainerConfig | None = None,
        connection_string: str = "",
        *,
        tracking_uri: str = "",
        max_batch_rows: int = DEFAULT_MAX_BATCH_ROWS,
    ) -> None:
        super().__init__(name)
        self.max_batch_rows = max_batch_rows
        self.ready: bool = False
        self.model_uri = model_uri
        self.explainer_config = explainer_config
        self.connection_string = connection_string
        self.tracking_uri = tracking_uri
        self.bundle: ServedBundle | None = None
        self.load_error: str | None = None
        self._attempted = False
        self._specs: tuple[InputSpec, ...] = ()
        self._by_name: dict[str, InputSpec] = {}
        self._names: list[str] = []

    # -- lifecycle -------------------------------------------------------------
    def load(self) -> bool:
        """Fetch, verify and load the bundle once; a refused bundle leaves the model not ready."""
        if self._attempted:
            return bool(self.ready)
        self._attempted = True
        try:
            bundle = open_bundle(
                self.model_uri,
                self.explainer_config,
                self.connection_string,
                tracking_uri=self.tracking_uri,
            )
        except ChurnError as err:
            self.load_error = str(err)
            self.ready = False
            logger.error(
                "model %s NOT READY: refusing bundle %s: %s", self.name, self.model_uri, err
            )
            return False
        self.bundle = bundle
        self._specs = bundle.specs
        self._by_name = {s.name: s for s in bundle.specs}
        self._names = [s.name for s in bundle.specs]
        churn_metrics().set_model_info(self.name, bundle.version, bundle.kind, bundle.sha256)
        self.ready = True
        logger.info(
            "model %s ready: %s v%s (%s, threshold %.4f) from %s",
            self.name,
            bundle.metadata.get("name", self.name),
            bundle.version,
            bundle.kind,
            bundle.threshold,
            self.model_uri,
        )
        return True

    def start(self) -> None:
        """Nothing to start; unlike KServe's default this never marks a refused model ready."""

    @property
    def version(self) -> str:
        """Version of the served bundle."""
        return self.bundle.version if self.bundle else ""

    @property
    def versions(self) -> list[str]:
        """For the model metadata."""
        return [self.version] if self.bundle else []

    def _loaded(self) -> ServedBundle:
        if self.bundle is None or not self.ready:
            raise NotReady(f"bundle refused: {self.load_error}" if self.load_error else "loading")
        return self.bundle

    # -- metadata --------------------------------------------------------------
    def get_input_types(self) -> list[dict[str, Any]]:
        """Every customer attribute as a v2 input."""
        return [s.metadata() for s in self._specs]

    def get_output_types(self) -> list[dict[str, Any]]:
        """churn_probability (FP32) and churn (BOOL)."""
        return [dict(o) for o in PREDICTOR_OUTPUTS]

    # -- request handling ---------------------------------------------------------
    def columns(
        self, payload: Any, outputs: list[str] | None = None
    ) -> tuple[dict[str, np.ndarray], list[str]]:
        """Checked column arrays and requested outputs (v2); counts validation errors."""
        self._check_rows(payload)
        try:
            if isinstance(payload, InferRequest):
                names = _requested(payload, outputs or [])
                content_type = _parameter(payload.parameters, "content_type")
                if content_type not in (None, "pd"):
                    raise InvalidInput(
                        f'parameters.content_type {content_type!r} is not supported; use "pd" '
                        "(one input per customer attribute)"
                    )
                return decode_columns(payload.inputs, self._specs, self._by_name), names
            if isinstance(payload, bytes | str):  # a v1 body sent without a JSON content type
                payload = _json_body(payload)
            if isinstance(payload, Mapping):
                if "instances" not in payload:
                    raise InvalidInput(
                        'v1 request needs "instances": a list of objects, one per customer'
                    )
                return decode_instances(payload["instances"], self._specs), []
            raise InvalidInput(f"unsupported request body of type {type(payload).__name__}")
        except InvalidInput as err:
            churn_metrics().record_validation_error(self.name, column_of(str(err), self._names))
            raise

    def _check_rows(self, payload: Any) -> None:
        """Refuse a batch beyond `max_batch_rows` before any value is decoded."""
        limit = self.max_batch_rows
        if isinstance(payload, InferRequest):
            for tensor in payload.inputs:
                data = tensor.data
                count = len(data) if isinstance(data, list | tuple) else 0
                check_batch_rows(f"input {tensor.name!r}", list(tensor.shape or ()), count, limit)
        elif isinstance(payload, Mapping) and isinstance(payload.get("instances"), list):
            check_batch_rows('"instances"', None, len(payload["instances"]), limit)

    def predict(self, payload: Any, headers: Mapping[str, str] | None = None) -> Any:
        """Churn probability and decision for every customer in the request."""
        with kserve_errors(self.name):
            bundle = self._loaded()
            cols, names = self.columns(payload, [OUTPUT_PROBABILITY, OUTPUT_DECISION])
            ids = cols.pop(OUTPUT_ID, None)
            proba = np.asarray(bundle.model.predict_proba_columns(cols), dtype=np.float64)
            decision = proba >= bundle.threshold
            churn_metrics().record_predictions(self.name, proba, decision)
            if not isinstance(payload, InferRequest):
                return {
                    "model_name": self.name,
                    "model_version": bundle.version,
                    "predictions": [
                        {OUTPUT_PROBABILITY: p, OUTPUT_DECISION: d}
                        for p, d in zip(
                            proba.astype(np.float32).tolist(), decision.tolist(), strict=True
                        )
                    ],
                }
            encoding = _encoding(payload)
            made = {
                OUTPUT_PROBABILITY: lambda: _tensor(
                    OUTPUT_PROBABILITY, "FP32", proba.astype(np.float32), encoding
                ),
                OUTPUT_DECISION: lambda: _tensor(OUTPUT_DECISION, "BOOL", decision, encoding),
            }
            outputs = [made[n]() for n in names]
            if ids is not None:
                outputs.append(_tensor(OUTPUT_ID, "BYTES", ids, "list"))
            return _response(payload, self.name, bundle.version, outputs)

    def explain(self, payload: Any, headers: Mapping[str, str] | None = None) -> Any:
        """v1 `:explain`: per-customer attributions, reasons and suggestions."""
        with kserve_errors(self.name):
            bundle = self._loaded()
            cols, _ = self.columns(payload)
            cols.pop(OUTPUT_ID, None)
            explanation = bundle.explainer.explain_columns(cols)
            churn_metrics().explanations.labels(self.name).inc(len(explanation.probability))
            return {
                "model_name": self.name,
                "model_version": bundle.version,
                "method": _method(bundle.kind),
                "additivity": bundle.explainer.additivity,
                "explanations": explanation.as_dicts(),
            }


WHAT_IFS = (WHAT_IF_OUTPUT, WHAT_IF_PROBABILITY_OUTPUT, WHAT_IF_CHANGE_OUTPUT)


def _reason_slots(exp: Explanation, k: int) -> dict[str, tuple[str, np.ndarray]]:
    """The per-reason outputs, shape [n, k]: texts, suggestions and what-ifs."""
    import orjson

    n = len(exp.probability)
    reasons = np.full((n, k), "", dtype=object)
    suggestions = np.full((n, k), "", dtype=object)
    what_if = np.full((n, k), "", dtype=object)
    what_if_change = np.full((n, k), "", dtype=object)
    what_if_probability = np.full((n, k), NO_WHAT_IF, dtype=np.float32)
    for i, row in enumerate(exp.reasons):
        for j, reason in enumerate(row):
            reasons[i, j] = reason.text
            suggestions[i, j] = reason.suggestion
            if reason.what_if is not None:
                what_if[i, j] = reason.what_if.text
                what_if_probability[i, j] = reason.what_if.probability
                what_if_change[i, j] = orjson.dumps(reason.what_if.change).decode()
    return {
        REASONS_OUTPUT: ("BYTES", reasons),
        SUGGESTIONS_OUTPUT: ("BYTES", suggestions),
        WHAT_IF_OUTPUT: ("BYTES", what_if),
        WHAT_IF_PROBABILITY_OUTPUT: ("FP32", what_if_probability),
        WHAT_IF_CHANGE_OUTPUT: ("BYTES", what_if_change),
    }


def _method(kind: str) -> str:
    return {
        "xgboost": "exact TreeSHAP on the log-odds",
        "logistic": "exact linear attributions coef * (x - background mean) on the log-odds",
        "mlp": "integrated gradients from the background mean on the log-odds",
    }.get(kind, kind)


class ChurnExplainerModel(_SyncModel):
    """``<name>-explainer``: explanations as v2 outputs, from the predictor's bundle.

    Outputs per customer: churn_probability (FP32), base_log_odds (FP32), one
    ``attribution_<attribute>`` (FP32, log-odds of the raw scorer) per customer
    attribute, and per reason slot (shape [n, k], k = top_k): ``reasons`` and
    ``suggestions`` (BYTES), ``what_if`` (BYTES, e.g. "Contract = One year:
    52.8% -> 21.4%"), ``what_if_probability`` (FP32: the model's probability
    with the suggestion's change applied) and ``what_if_change`` (BYTES: the
    change as a JSON object). A slot without a reason, or whose reason has no
    what-if, holds "" and NO_WHAT_IF (-1: never a probability; JSON has no
    NaN and the protocol's tensor data no null).
    """

    def __init__(self, predictor: ChurnPredictor) -> None:
        super().__init__(f"{predictor.name}-explainer")
        self.predictor = predictor

    @property
    def ready(self) -> bool:
        """Ready exactly when the predictor is."""
        predictor = getattr(self, "predictor", None)
        return bool(predictor is not None and predictor.ready)

    @ready.setter
    def ready(self, value: bool) -> None:
        pass  # readiness follows the predictor

    def load(self) -> bool:
        """Loads the predictor's bundle (once)."""
        return self.predictor.load()

    def start(self) -> None:
        """Nothing to start."""

    @property
    def versions(self) -> list[str]:
        """For the model metadata."""
        return self.predictor.versions

    def _output_names(self) -> list[str]:
        attrs = [f"{ATTRIBUTION_PREFIX}{s.name}" for s in self.predictor._specs]
        return [
            OUTPUT_PROBABILITY,
            BASE_OUTPUT,
            *attrs,
            REASONS_OUTPUT,
            SUGGESTIONS_OUTPUT,
            *WHAT_IFS,
        ]

    def get_input_types(self) -> list[dict[str, Any]]:
        """Same inputs as the predictor."""
        return self.predictor.get_input_types()

    def get_output_types(self) -> list[dict[str, Any]]:
        """Probability, base value, one attribution per attribute, then the per-reason slots."""
        out = [
            {"name": OUTPUT_PROBABILITY, "datatype": "FP32", "shape": [-1]},
            {"name": BASE_OUTPUT, "datatype": "FP32", "shape": [-1]},
        ]
        out += [
            {"name": f"{ATTRIBUTION_PREFIX}{s.name}", "datatype": "FP32", "shape": [-1]}
            for s in self.predictor._specs
        ]
        k = self.predictor.explainer_config.top_k if self.predictor.explainer_config else 3
        out += [
            {"name": REASONS_OUTPUT, "datatype": "BYTES", "shape": [-1, k]},
            {"name": SUGGESTIONS_OUTPUT, "datatype": "BYTES", "shape": [-1, k]},
            {"name": WHAT_IF_OUTPUT, "datatype": "BYTES", "shape": [-1, k]},
            {"name": WHAT_IF_PROBABILITY_OUTPUT, "datatype": "FP32", "shape": [-1, k]},
            {"name": WHAT_IF_CHANGE_OUTPUT, "datatype": "BYTES", "shape": [-1, k]},
        ]
        return out

    def predict(self, payload: Any, headers: Mapping[str, str] | None = None) -> Any:
        """v2 infer (or v1 predict): the explanations as outputs."""
        if not isinstance(payload, InferRequest):
            return self.explain(payload, headers)
        with kserve_errors(self.name):
            bundle = self.predictor._loaded()
            cols, names = self.predictor.columns(payload, self._output_names())
            ids = cols.pop(OUTPUT_ID, None)
            exp = bundle.explainer.explain_columns(cols)
            churn_metrics().explanations.labels(self.predictor.name).inc(len(exp.probability))
            encoding = _encoding(payload)
            arrays: dict[str, tuple[str, np.ndarray]] = {
                OUTPUT_PROBABILITY: ("FP32", exp.probability.astype(np.float32)),
                BASE_OUTPUT: ("FP32", exp.base.astype(np.float32)),
                **_reason_slots(exp, bundle.explainer.top_k),
            }
            for j, attr in enumerate(exp.attributes):
                arrays[f"{ATTRIBUTION_PREFIX}{attr}"] = (
                    "FP32",
                    np.ascontiguousarray(exp.attributions[:, j], dtype=np.float32),
                )
            outputs = [_tensor(n, arrays[n][0], arrays[n][1], encoding) for n in names]
            if ids is not None:
                outputs.append(_tensor(OUTPUT_ID, "BYTES", ids, "list"))
            return _response(payload, self.name, bundle.version, outputs)

    def explain(self, payload: Any, headers: Mapping[str, str] | None = None) -> Any:
        """v1 `:explain` on the explainer name: same answer as the predictor's."""
        return self.predictor.explain(payload, headers)
