"""The one place where platform errors become REST and gRPC answers.

KServe's ModelServer already turns its own exception classes into answers:
`kserve.errors.InvalidInput` is HTTP 400 and gRPC INVALID_ARGUMENT,
`ModelNotFound` 404 / NOT_FOUND, `ModelNotReady` 503 / UNAVAILABLE and
anything else 500 / INTERNAL. Our model classes raise `churn_core.errors`;
`to_kserve` maps them onto KServe's classes (keeping the cause chained), so
both protocols answer with the right code and a `{"error": ...}` body, and
`install_rest_handlers` makes FastAPI's own request-validation errors (a body
that is not an inference request at all) a 400 `{"error": ...}` instead of a
422 in FastAPI's format.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from churn_core.errors import ChurnError, InvalidInput, NotFound, NotReady

logger = logging.getLogger(__name__)


def status_of(err: BaseException) -> int:
    """HTTP status of a platform error (500 for anything that is not one)."""
    return int(getattr(err, "status_code", 500)) if isinstance(err, ChurnError) else 500


_LONG_QUOTED = re.compile(r"""(['"])([^'"]{60})[^'"]{20,}\1""")
MAX_MESSAGE = 1000


def shorten(message: str) -> str:
    """`message` with long quoted values cut (a reason, never the request echoed back)."""
    if len(message) <= 200:
        return message
    message = _LONG_QUOTED.sub(lambda m: f"{m.group(1)}{m.group(2)}...{m.group(1)} (cut)", message)
    return message if len(message) <= MAX_MESSAGE else message[:MAX_MESSAGE] + "... (cut)"


def to_kserve(err: ChurnError, model_name: str) -> Exception:
    """The KServe exception that answers `err` with the same status on REST and gRPC.

    Client errors are `shorten`ed: a 50 kB category echoed back is no reason.
    """
    from kserve import errors as kerr

    if isinstance(err, InvalidInput):
        return kerr.InvalidInput(shorten(str(err)))
    if isinstance(err, NotReady):
        not_ready = kerr.ModelNotReady(model_name, str(err))
        not_ready.reason = str(not_ready)  # KServe's gRPC interceptor reads .reason
        return not_ready
    if isinstance(err, NotFound):
        return kerr.InvalidInput(str(err)) if status_of(err) == 400 else model_not_found(str(err))
    return kerr.InferenceError(str(err))


def model_not_found(message: str) -> Exception:
    """KServe's 404 (REST) / NOT_FOUND (gRPC) answer, with `message` as its text."""
    from kserve import errors as kerr

    found = kerr.ModelNotFound()
    found.reason = message
    return found


@contextmanager
def kserve_errors(model_name: str) -> Iterator[None]:
    """Re-raise platform errors raised inside the block as their KServe equivalents."""
    try:
        yield
    except ChurnError as err:
        if status_of(err) >= 500:
            logger.exception("model %s failed", model_name)
        raise to_kserve(err, model_name) from err


def _validation_message(errors: Any) -> str:
    parts = []
    for e in errors if isinstance(errors, list | tuple) else []:
        loc = ".".join(str(p) for p in e.get("loc", ()) if p != "body")
        parts.append(f"{loc or 'body'}: {e.get('msg', 'invalid')}")
    return "invalid inference request: " + ("; ".join(parts) or str(errors))


def install_rest_handlers(app: Any) -> None:
    """Answer FastAPI request-validation errors with 400 {"error": ...} naming the field.

    A request beyond a configured limit (`limits.RequestTooLarge`) is a 413;
    FastAPI's own HTTP errors (a body it cannot parse, an unknown route) answer
    {"error": ...} too, not {"detail": ...}.
    """
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse
    from starlette.exceptions import HTTPException as StarletteHTTPException

    from churn_inference.limits import RequestTooLarge

    async def too_large(_: Any, exc: RequestTooLarge) -> JSONResponse:
        logger.info("refused request: %s", exc)
        return JSONResponse(status_code=413, content={"error": str(exc)})

    app.add_exception_handler(RequestTooLarge, too_large)

    async def http_error(_: Any, exc: StarletteHTTPException) -> JSONResponse:
        detail = str(exc.detail)
        if detail == "There was an error parsing the body":  # FastAPI's JSON body failure
            detail = f"request body is not valid JSON ({detail})"
        return JSONResponse(
            status_code=exc.status_code, content={"error": detail}, headers=exc.headers
        )

    app.add_exception_handler(StarletteHTTPException, http_error)

    async def invalid_request(_: Any, exc: RequestValidationError) -> JSONResponse:
        message = _validation_message(exc.errors())
        logger.info("rejected request: %s", message)
        return JSONResponse(status_code=400, content={"error": message})

    app.add_exception_handler(RequestValidationError, invalid_request)
