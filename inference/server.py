"""KServe's ModelServer, bound to a chosen host, with three small extensions.

KServe 0.20's `ModelServer` binds REST (uvicorn) and gRPC to every address
(0.0.0.0 / [::]) with no option to change it. `ChurnModelServer` builds the
same `RESTServer` and `GRPCServer` but binds them to `host` (127.0.0.1 by
default), and:

* registers every model, ready or not, so a refused bundle answers 503
  "not ready" instead of 404 or a server that refuses to start, and server
  readiness (`/v2/health/ready`, gRPC ServerReady) is true only when every
  model is ready, as the Open Inference Protocol says;
* adds the model versions to the v2 model metadata, and answers the
  versioned v2 routes (`/v2/models/{name}/versions/{version}`, `.../ready`,
  `.../infer`) for the version it serves: KServe 0.20's own metadata and
  ready routes answer any version with 501 "not supported", and its infer
  route ignores the version; here a version the model does not serve is a
  404 naming the served ones. `/v2/` (the Open Inference Protocol spec's
  server-metadata path) is served like `/v2`, not redirected;
* (`fast_rest`, on by default) serves the v2 REST `infer` route with a lean
  handler in front of KServe's own: the same URL, protocol, `InferRequest`
  parsing (`InferRequest.from_bytes`, which handles JSON and the binary
  tensor extension), `DataPlane.infer` (the model's pre/predict/post with
  KServe's latency histograms) and `DataPlane.encode`, but without the
  pydantic round trip of the request and the response that costs KServe's
  route more than the model itself. `fast_rest=False` serves KServe's route
  unchanged (the benchmark measures both).

* refuses what a server on the internet must refuse, before parsing
  (`churn_inference.limits`): a body over `max_body_bytes` (413; gRPC:
  `grpc.max_receive_message_length`, RESOURCE_EXHAUSTED), a batch over
  `max_batch_rows` (413 / RESOURCE_EXHAUSTED), JSON nested deeper than 32
  levels or not UTF-8 (400), on every REST route, KServe's included; gRPC
  bytes that are not the method's protobuf message are INVALID_ARGUMENT
  naming it (gRPC's own answer is UNKNOWN).

Per-request log lines (uvicorn's access log, the gRPC method log, KServe's
timing middleware) are off unless `access_log` is set.
"""

from __future__ import annotations

import asyncio
import logging
import struct
import uuid
from concurrent import futures
from typing import Any

import orjson
from fastapi import FastAPI, Request, Response
from kserve import ModelServer
from kserve.errors import InferenceError, ModelNotReady, NoModelReady
from kserve.errors import InvalidInput as KInvalidInput
from kserve.model import BaseKServeModel
from kserve.protocol.dataplane import DataPlane
from kserve.protocol.grpc import grpc_predict_v2_pb2 as pb
from kserve.protocol.grpc.interceptors import ExceptionToStatusInterceptor, LoggingInterceptor
from kserve.protocol.grpc.server import GRPCServer
from kserve.protocol.grpc.servicer import InferenceServicer, to_headers
from kserve.protocol.infer_type import InferRequest, InferResponse
from kserve.protocol.rest.server import RESTServer

from churn_inference.errors import install_rest_handlers, model_not_found
from churn_inference.limits import (
    DEFAULT_MAX_BATCH_ROWS,
    DEFAULT_MAX_BODY_BYTES,
    BodyLimits,
    RequestTooLarge,
    check_batch_rows,
)
from churn_inference.payload_log import (
    REQUEST_TYPE,
    RESPONSE_TYPE,
    PayloadLogger,
    grpc_as_json,
    request_id_of,
)

logger = logging.getLogger(__name__)

_JSON = "application/json"
_BINARY = "application/octet-stream"
_HEADER_LENGTH = "inference-header-content-length"


class ChurnDataPlane(DataPlane):
    """KServe's data plane; server readiness = every model ready; versions in metadata."""

    payload_logger: PayloadLogger | None = None

    async def ready(self) -> bool:  # noqa: D102
        if not await super().ready():
            return False
        models = self.model_registry.get_models()
        if not models:
            return False
        for model in models.values():
            if not await model.healthy():
                return False
        return True

    async def model_metadata(self, model_name: str) -> dict[str, Any]:  # noqa: D102
        meta: dict[str, Any] = await super().model_metadata(model_name)
        versions = getattr(self.get_model_from_registry(model_name), "versions", None)
        if versions:
            meta["versions"] = list(versions)
        return meta


def _cut(text: str, keep: int = 60) -> str:
    """`text` itself when short, else its start and "..." (error messages stay short)."""
    return text if len(text) <= keep + 20 else f"{text[:keep]}..."


def _check_request_json(body: Any, max_rows: int = DEFAULT_MAX_BATCH_ROWS) -> None:
    """What KServe's pydantic `InferenceRequest` checks, as 400s naming the field.

    A tensor of more than `max_rows` rows is a 413 (`RequestTooLarge`) here,
    before its values are decoded.
    """
    if not isinstance(body, dict):
        raise KInvalidInput("inference request must be a JSON object")
    inputs = body.get("inputs")
    if not isinstance(inputs, list):
        raise KInvalidInput('inference request needs "inputs": a list of input tensors')
    for i, tensor in enumerate(inputs):
        if not isinstance(tensor, dict):
            raise KInvalidInput(f"inputs[{i}] must be an object")
        name = tensor.get("name")
        where = f"input {_cut(name)!r}" if isinstance(name, str) else f"inputs[{i}]"
        if not isinstance(name, str):
            raise KInvalidInput(f'{where}: "name" must be a string')
        shape = tensor.get("shape")
        if not isinstance(shape, list) or not all(
            isinstance(d, int) and not isinstance(d, bool) for d in shape
        ):
            raise KInvalidInput(
                f'{where}: "shape" must be a list of integers, got {_cut(repr(shape))}'
            )
        if not isinstance(tensor.get("datatype"), str):
            raise KInvalidInput(f'{where}: "datatype" must be a string')
        params = tensor.get("parameters")
        if params is not None and not isinstance(params, dict):
            raise KInvalidInput(f'{where}: "parameters" must be an object')
        data = tensor.get("data")
        if data is None:
            if not (params and "binary_data_size" in params):
                raise KInvalidInput(f'{where}: "data" is missing')
        elif not isinstance(data, list):
            raise KInvalidInput(f'{where}: "data" must be a list, got {str(data)[:80]!r}')
        check_batch_rows(where, shape, len(data) if data is not None else 0, max_rows)
    outputs = body.get("outputs")
    if outputs is not None:
        if not isinstance(outputs, list) or not all(
            isinstance(o, dict) and isinstance(o.get("name"), str) for o in outputs
        ):
            raise KInvalidInput('"outputs" must be a list of objects with a "name"')
    if body.get("id") is not None and not isinstance(body["id"], str):
        raise KInvalidInput('"id" must be a string')
    if body.get("parameters") is not None and not isinstance(body["parameters"], dict):
        raise KInvalidInput('"parameters" must be an object')


def _binary_culprit(parsed: dict[str, Any], body: bytes, offset: int) -> str:
    """Name the binary input whose bytes do not decode (for the error message)."""
    for tensor in parsed["inputs"]:
        size = (tensor.get("parameters") or {}).get("binary_data_size")
        if not isinstance(size, int):
            continue
        chunk, offset = body[offset : offset + size], offset + size
        if tensor.get("datatype") != "BYTES":
            continue
        pos = 0
        try:
            while pos < len(chunk):
                (length,) = struct.unpack_from("<I", chunk, pos)
                chunk[pos + 4 : pos + 4 + length].decode("utf-8")
                pos += 4 + length
        except (struct.error, UnicodeDecodeError) as err:
            return f" in input {tensor.get('name')!r} ({type(err).__name__})"
    return ""


def _check_version(dataplane: DataPlane, model_name: str, version: str | None) -> None:
    """404 unless `model_name` serves `version` (None: no version asked; [] versions: unknown).

    A model without a bundle (refused, loading) knows no version; it answers
    503 "not ready" on the routes that follow instead of a 404 here.
    """
    model = dataplane.get_model_from_registry(model_name)  # unknown model: 404
    if version is None:
        return
    served = [str(v) for v in getattr(model, "versions", None) or []]
    if served and version not in served:
        raise model_not_found(
            f"model {model_name!r} has no version {version!r}; it serves {', '.join(served)}"
        )


def _register_versioned_routes(app: FastAPI, dataplane: DataPlane) -> None:
    """The v2 model metadata and readiness routes with a version, and `/v2/`."""

    async def metadata(request: Request) -> Response:
        model_name = request.path_params["model_name"]
        _check_version(dataplane, model_name, request.path_params["model_version"])
        meta = await dataplane.model_metadata(model_name)
        return Response(orjson.dumps(meta), media_type=_JSON)

    async def ready(request: Request) -> Response:
        model_name = request.path_params["model_name"]
        _check_version(dataplane, model_name, request.path_params["model_version"])
        if not await dataplane.model_ready(model_name):
            raise ModelNotReady(model_name)
        return Response(orjson.dumps({"name": model_name, "ready": True}), media_type=_JSON)

    async def server_metadata(_: Request) -> Response:
        return Response(orjson.dumps(dataplane.metadata()), media_type=_JSON)

    app.add_route("/v2/", server_metadata, methods=["GET"])
    app.add_route("/v2/models/{model_name}/versions/{model_version}", metadata, methods=["GET"])
    app.add_route("/v2/models/{model_name}/versions/{model_version}/ready", ready, methods=["GET"])


def _register_fast_infer(
    app: FastAPI, dataplane: DataPlane, max_rows: int = DEFAULT_MAX_BATCH_ROWS
) -> None:
    async def infer(request: Request) -> Response:
        model_name = request.path_params["model_name"]
        _check_version(dataplane, model_name, request.path_params.get("model_version"))
        if not await dataplane.model_ready(model_name, True):
            raise ModelNotReady(model_name)
        body = await request.body()
        headers = dict(request.headers)
        length = headers.get(_HEADER_LENGTH)
        try:
            json_length = int(length) if length is not None else len(body)
        except ValueError:
            json_length = -1
        parsed: Any = None
        parse_error: Exception | None = None
        if 0 < json_length <= len(body):
            try:
                parsed = orjson.loads(body[:json_length])
            except orjson.JSONDecodeError as err:
                parse_error = err
        request_id = request_id_of(parsed) or str(uuid.uuid4())
        payload_logger: PayloadLogger | None = getattr(dataplane, "payload_logger", None)
        content_type = headers.get("content-type", _JSON)
        if payload_logger is not None:  # as received, even when it is refused below
            payload_logger.emit(REQUEST_TYPE, model_name, request_id, body, content_type)
        if json_length == -1:
            raise KInvalidInput(f"{_HEADER_LENGTH} {_cut(str(length))!r} is not an integer")
        if not 0 < json_length <= len(body):
            raise KInvalidInput(f"{_HEADER_LENGTH} {json_length} outside the body's {len(body)}")
        if parse_error is not None:
            raise KInvalidInput(f"request body is not valid JSON: {parse_error}") from parse_error
        _check_request_json(parsed, max_rows)
        try:
            infer_request = InferRequest.from_bytes(body, json_length, model_name)
        except (InferenceError, KeyError, TypeError, ValueError, IndexError, struct.error) as err:
            # decoding the client's tensors failed (e.g. BYTES that are not UTF-8): a 400
            where = _binary_culprit(parsed, body, json_length)
            raise KInvalidInput(f"malformed inference request{where}: {err}") from err
        if not infer_request.id:
            infer_request.id = request_id
        response, response_headers = await dataplane.infer(
            model_name=model_name, request=infer_request, headers=headers
        )
        encoded, res_headers = dataplane.encode(
            model_name=model_name, response=response, headers=headers, req_attributes={}
        )
        response_headers.update(res_headers)
        response_headers.pop("content-length", None)
        media = response_headers.pop("content-type", _JSON)
        if isinstance(encoded, bytes):
            out, media = encoded, _BINARY
        else:
            out = orjson.dumps(encoded)
        if payload_logger is not None:
            payload_logger.emit(RESPONSE_TYPE, model_name, request_id, out, content_type)
        return Response(out, media_type=media, headers=response_headers)

    # plain Starlette routes: no FastAPI dependency solving per request; they come
    # before KServe's routes for the same paths, so they answer
    app.add_route("/v2/models/{model_name}/infer", infer, methods=["POST"])
    app.add_route("/v2/models/{model_name}/versions/{model_version}/infer", infer, methods=["POST"])


class ChurnRESTServer(RESTServer):
    """KServe's REST server bound to `host`; optional lean v2 infer route."""

    def __init__(
        self,
        *args: Any,
        host: str,
        fast_rest: bool,
        access_log: bool,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
        max_batch_rows: int = DEFAULT_MAX_BATCH_ROWS,
        **kwargs: Any,
    ) -> None:
        self.max_body_bytes = max_body_bytes
        self.max_batch_rows = max_batch_rows
        super().__init__(*args, **kwargs)
        self.config.host = host
        self.config.access_log = access_log
        if not access_log:
            # uvicorn logs access whenever the logger has handlers (ours, via the root)
            access = logging.getLogger("uvicorn.access")
            access.handlers = []
            access.propagate = False
        self.fast_rest = fast_rest
        self.access_log = access_log

    def _add_middlewares(self, app: FastAPI) -> None:
        if self.access_log:
            super()._add_middlewares(app)
        app.add_middleware(BodyLimits, max_body_bytes=self.max_body_bytes)  # the outermost

    def _register_endpoints(self, app: FastAPI) -> None:
        _register_versioned_routes(app, self.dataplane)
        if self.fast_rest:
            _register_fast_infer(app, self.dataplane, self.max_batch_rows)
        super()._register_endpoints(app)

    def _add_exception_handlers(self, app: FastAPI) -> None:
        super()._add_exception_handlers(app)
        install_rest_handlers(app)


class _Undecodable:
    """A gRPC request whose bytes are not the method's protobuf message."""

    def __init__(self, message: str, err: Exception) -> None:
        self.message = message
        self.err = err


_GRPC_METHODS = (
    "ServerLive",
    "ServerReady",
    "ModelReady",
    "ServerMetadata",
    "ModelMetadata",
    "ModelInfer",
    "RepositoryModelLoad",
    "RepositoryModelUnload",
)


def _lenient(request_type: Any) -> Any:
    """A deserializer that hands undecodable bytes on as `_Undecodable` instead of failing.

    gRPC answers a deserializer's exception with UNKNOWN ("Unexpected
    DecodeError"); handed on, the method answers INVALID_ARGUMENT naming it.
    """
    from google.protobuf.message import DecodeError

    def parse(data: bytes) -> Any:
        try:
            return request_type.FromString(data)
        except (DecodeError, ValueError, RuntimeError) as err:
            return _Undecodable(request_type.DESCRIPTOR.full_name, err)

    return parse


def _checked(method: Any) -> Any:
    async def behaviour(request: Any, context: Any) -> Any:
        if isinstance(request, _Undecodable):
            raise KInvalidInput(
                f"the request is not a valid {request.message} protobuf message: {request.err}"
            )
        return await method(request, context)

    return behaviour


def add_servicer(servicer: Any, server: Any) -> None:
    """Register `servicer` as the generated code does, but with lenient deserializers."""
    import grpc

    handlers = {
        name: grpc.unary_unary_rpc_method_handler(
            _checked(getattr(servicer, name)),
            request_deserializer=_lenient(getattr(pb, f"{name}Request")),
            response_serializer=getattr(pb, f"{name}Response").SerializeToString,
        )
        for name in _GRPC_METHODS
    }
    service = "inference.GRPCInferenceService"
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(service, handlers),))
    server.add_registered_method_handlers(service, handlers)


_V2_DATATYPES = frozenset(
    {"BOOL", "UINT8", "UINT16", "UINT32", "UINT64", "INT8", "INT16", "INT32", "INT64"}
    | {"FP16", "FP32", "FP64", "BYTES"}
)


def _check_grpc_request(request: Any) -> None:
    """What KServe's gRPC decoding refuses without naming it, as errors that name it."""
    if not request.model_name:
        raise KInvalidInput("ModelInfer request has no model_name")
    for i, tensor in enumerate(request.inputs):
        where = f"input {_cut(tensor.name)!r}" if tensor.name else f"inputs[{i}] (no name)"
        if tensor.datatype not in _V2_DATATYPES:
            raise KInvalidInput(
                f"{where}: datatype {_cut(tensor.datatype)!r} is not a v2 datatype "
                f"({', '.join(sorted(_V2_DATATYPES))})"
            )


class ChurnInferenceServicer(InferenceServicer):
    """KServe's servicer; with a payload logger, each ModelInfer is logged as v2 JSON.

    A ModelInfer without a model name is INVALID_ARGUMENT saying so (KServe:
    NOT_FOUND "Model with name  does not exist").
    """

    async def ModelInfer(self, request: Any, context: Any) -> Any:  # noqa: D102, N802
        _check_grpc_request(request)
        payload_logger: PayloadLogger | None = getattr(self._data_plane, "payload_logger", None)
        if payload_logger is None:
            return await super().ModelInfer(request, context)
        # KServe's ModelInfer, with the decoded request and the answer logged as they are
        # (decoding the protobuf messages a second time for the log cost ~50 us a call).
        if not request.id:
            request.id = str(uuid.uuid4())
        model_name = request.model_name
        try:
            infer_request = InferRequest.from_grpc(request)
        except Exception:  # noqa: BLE001 - undecodable: logged as sent, KServe answers the error
            payload_logger.emit(
                REQUEST_TYPE, model_name, request.id, request.SerializeToString(), _JSON
            )
            return await super().ModelInfer(request, context)
        try:
            logged = grpc_as_json(infer_request, "inputs")
        except Exception:  # noqa: BLE001 - not JSON-able: log the request as sent, in protobuf
            logged = request.SerializeToString()
        payload_logger.emit(REQUEST_TYPE, model_name, request.id, logged, _JSON)
        headers = to_headers(context)
        self.validate_grpc_request(request)
        body, _ = await self._data_plane.infer(  # an error: no response event
            request=infer_request, headers=headers, model_name=model_name
        )
        if isinstance(body, InferResponse):
            response, decoded = body.to_grpc(), body
        else:  # what KServe's servicer accepts besides: a message, or a dict of one
            response = body if isinstance(body, pb.ModelInferResponse) else (
                pb.ModelInferResponse(
                    id=body["id"], model_name=body["model_name"], outputs=body["outputs"]
                )
            )  # fmt: skip
            decoded = None
        try:
            answer = grpc_as_json(decoded or InferResponse.from_grpc(response), "outputs")
        except Exception:  # noqa: BLE001
            answer = response.SerializeToString()
        payload_logger.emit(RESPONSE_TYPE, model_name, request.id, answer, _JSON)
        return response


class ChurnExceptionInterceptor(ExceptionToStatusInterceptor):
    """KServe's error interceptor; a request beyond a limit is RESOURCE_EXHAUSTED."""

    async def handle_exception(  # noqa: D102
        self, ex: Exception, request_or_iterator: Any, context: Any, method_name: str
    ) -> None:
        if isinstance(ex, RequestTooLarge):
            from grpc import StatusCode

            logger.info("refused gRPC request: %s", ex)
            await context.abort(StatusCode.RESOURCE_EXHAUSTED, ex.reason)
        await super().handle_exception(ex, request_or_iterator, context, method_name)


class ChurnGRPCServer(GRPCServer):
    """KServe's gRPC server (its servicer and error interceptor) bound to `host`.

    A message larger than `max_body_bytes` is refused by gRPC itself
    (`grpc.max_receive_message_length`: RESOURCE_EXHAUSTED) before it is decoded.
    """

    def __init__(
        self,
        *args: Any,
        host: str,
        access_log: bool,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self._host = host
        self._access_log = access_log
        self._max_body_bytes = max_body_bytes

    async def start(self, max_workers: int) -> None:  # noqa: D102
        from grpc import aio

        servicer = ChurnInferenceServicer(self._data_plane, self._model_repository_extension)
        interceptors: list[Any] = [ChurnExceptionInterceptor()]
        if self._access_log:
            interceptors.insert(0, LoggingInterceptor())
        self._server = aio.server(
            futures.ThreadPoolExecutor(max_workers=max_workers),
            interceptors=interceptors,
            options=[
                ("grpc.max_send_message_length", self._kwargs["grpc_max_send_message_length"]),
                ("grpc.max_receive_message_length", self._max_body_bytes),
            ],
        )
        add_servicer(servicer, self._server)
        host = f"[{self._host}]" if ":" in self._host else self._host
        address = f"{host}:{self._port}"
        self._server.add_insecure_port(address)
        logger.info("gRPC server listening on %s", address)
        await self._server.start()
        await self._server.wait_for_termination()


class ChurnModelServer(ModelServer):
    """KServe's ModelServer bound to `host` (see the module docstring)."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        http_port: int = 8080,
        grpc_port: int = 8081,
        enable_grpc: bool = True,
        fast_rest: bool = True,
        access_log: bool = False,
        grace_period: int = 5,
        payload_logger: PayloadLogger | None = None,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
        max_batch_rows: int = DEFAULT_MAX_BATCH_ROWS,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            http_port=http_port,
            grpc_port=grpc_port,
            workers=1,
            enable_grpc=enable_grpc,
            enable_docs_url=False,
            enable_latency_logging=False,
            grace_period=grace_period,
            **kwargs,
        )
        self.host = host
        self.fast_rest = fast_rest
        self.access_log = access_log
        self.max_body_bytes = max_body_bytes
        self.max_batch_rows = max_batch_rows
        self.dataplane = ChurnDataPlane(model_registry=self.registered_models)
        self.payload_logger = payload_logger
        self.dataplane.payload_logger = payload_logger  # read by the lean route and gRPC

    def start(self, models: list[BaseKServeModel]) -> None:
        """Register every model (ready or not) and serve REST and gRPC until stopped."""
        from kserve.model_server import FASTAPI_APP_IMPORT_STRING, args

        for model in models:
            self.register_model(model)
            model.enable_latency_logging = False
        if models and not any(m.ready for m in models):
            logger.error("%s; serving anyway: they answer 503 until fixed", NoModelReady(models))
        self._rest_server = ChurnRESTServer(
            FASTAPI_APP_IMPORT_STRING,
            self.dataplane,
            self.model_repository_extension,
            self.http_port,
            host=self.host,
            fast_rest=self.fast_rest,
            access_log=self.access_log,
            max_body_bytes=self.max_body_bytes,
            max_batch_rows=self.max_batch_rows,
            access_log_format=None,
            workers=1,
            grace_period=self.grace_period,
            event_loop=self.event_loop,
            timeout_keep_alive=self.timeout_keep_alive,
        )
        self.servers.append(self._rest_server.start())
        if self.enable_grpc:
            self._grpc_server = ChurnGRPCServer(
                self.grpc_port,
                self.dataplane,
                self.model_repository_extension,
                host=self.host,
                access_log=self.access_log,
                max_body_bytes=self.max_body_bytes,
                kwargs=vars(args),
                grace_period=self.grace_period,
            )
            self.servers.append(self._grpc_server.start(self.max_threads))
        self.setup_event_loop()
        self.register_signal_handler()
        logger.info(
            "serving %s on http://%s:%d (gRPC %s)",
            ", ".join(m.name for m in models),
            self.host,
            self.http_port,
            f"{self.host}:{self.grpc_port}" if self.enable_grpc else "off",
        )
        asyncio.run(self._serve_and_flush())

    async def _serve_and_flush(self) -> None:
        try:
            await self._serve()
        finally:
            if self.payload_logger is not None:
                await self.payload_logger.aclose()
