"""The limits a server on the internet needs, checked before a request is parsed.

* `max_body_bytes` (CHURN_MAX_BODY_BYTES): a REST body (by its Content-Length,
  and again while it streams in, so a body without one or with a false one is
  cut off at the limit, never read whole) and a gRPC message
  (`grpc.max_receive_message_length`) larger than this is refused: REST 413,
  gRPC RESOURCE_EXHAUSTED.
* `max_batch_rows` (CHURN_MAX_BATCH_ROWS): a request of more customers is
  refused the same way, from the tensors' shapes and lengths, before the
  values are decoded.
* `MAX_JSON_DEPTH`: a JSON body nested deeper (a v2 request needs 5 levels)
  is a 400, found by a scan of the bytes before any parser builds objects.

`BodyLimits` is a plain ASGI middleware in front of every REST route (the lean
infer route, KServe's own routes, v1); `RequestTooLarge` is the KServe
exception that answers 413 / RESOURCE_EXHAUSTED.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import numpy as np
import orjson
from kserve.errors import InvalidInput as KInvalidInput

logger = logging.getLogger(__name__)

DEFAULT_MAX_BODY_BYTES = 8 * 1024 * 1024
DEFAULT_MAX_BATCH_ROWS = 10_000
MAX_JSON_DEPTH = 32
HEADER_LENGTH = "inference-header-content-length"

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

_QUOTE = ord('"')
_STEP = np.zeros(256, dtype=np.int32)  # +1 opens, -1 closes, per byte value
_STEP[[ord("["), ord("{")]] = 1
_STEP[[ord("]"), ord("}")]] = -1
_MARKED = _STEP != 0
_MARKED[_QUOTE] = True


class RequestTooLarge(KInvalidInput):
    """A request beyond a configured limit: REST 413, gRPC RESOURCE_EXHAUSTED.

    A KServe `InvalidInput`, so any handler that does not know it still
    answers 400, never 500.
    """


def body_too_large(size: int | str, limit: int) -> RequestTooLarge:
    """The answer to a body of `size` bytes over `limit` (CHURN_MAX_BODY_BYTES)."""
    return RequestTooLarge(
        f"request body of {size} bytes exceeds the limit of {limit} bytes "
        "(max_body_bytes, CHURN_MAX_BODY_BYTES)"
    )


def rows_too_many(where: str, rows: int, limit: int) -> RequestTooLarge:
    """The answer to a batch of `rows` customers over `limit` (CHURN_MAX_BATCH_ROWS)."""
    return RequestTooLarge(
        f"{where}: {rows} rows exceed the batch limit of {limit} rows "
        "(max_batch_rows, CHURN_MAX_BATCH_ROWS)"
    )


def json_depth(text: bytes) -> int:
    """The deepest nesting of arrays and objects in JSON `text` (brackets in strings ignored).

    A vectorised scan, no parsing: escaped backslashes and quotes are dropped,
    the quotes then toggle in/out of strings, and the brackets outside strings
    are summed. For text that is not JSON the figure is approximate; the
    parser refuses such text anyway.
    """
    if b"\\" in text:
        text = text.replace(b"\\\\", b"").replace(b'\\"', b"")
    arr = np.frombuffer(text, dtype=np.uint8)
    marks = arr[_MARKED[arr]]  # only brackets and quotes: usually a small fraction
    if marks.size == 0:
        return 0
    outside = (np.cumsum(marks == _QUOTE) & 1) == 0
    step = _STEP[marks] * outside
    return int(np.cumsum(step).max(initial=0))


def check_json_depth(text: bytes, limit: int = MAX_JSON_DEPTH) -> None:
    """Refuse JSON nested deeper than `limit` (a 400 naming the limit).

    Raises:
        kserve.errors.InvalidInput: the nesting is deeper than `limit`.
    """
    # fewer brackets than the limit cannot nest beyond it: no scan (most small requests)
    if text.count(b"[") + text.count(b"{") <= limit:
        return
    depth = json_depth(text)
    if depth > limit:
        raise KInvalidInput(
            f"request JSON nests {depth} levels deep, beyond the limit of {limit} levels"
        )


def check_utf8(text: bytes) -> None:
    """Refuse JSON text that is not UTF-8 (RFC 8259), naming the first bad byte.

    Python's `json` decodes bytes with "surrogatepass": encoded surrogates would
    reach KServe's route as strings that cannot be encoded again (a 500).

    Raises:
        kserve.errors.InvalidInput: the text is not UTF-8.
    """
    try:
        text.decode("utf-8")
    except UnicodeDecodeError as err:
        bad = text[err.start : err.end]
        raise KInvalidInput(
            f"request JSON is not valid UTF-8 text: byte(s) {bad!r} at offset {err.start}"
        ) from err


def _json_part(headers: dict[bytes, bytes], body: bytes) -> bytes:
    """The JSON part of a body: its first inference-header-content-length bytes, else all.

    Raises:
        kserve.errors.InvalidInput: the header is not a length within the body.
    """
    length = headers.get(HEADER_LENGTH.encode())
    if length is None:
        return body
    try:
        size = int(length)
    except ValueError:
        raise KInvalidInput(
            f"{HEADER_LENGTH} {length.decode('latin-1')[:60]!r} is not an integer"
        ) from None
    if not 0 < size <= len(body):
        raise KInvalidInput(f"{HEADER_LENGTH} {size} outside the body's {len(body)}")
    return body[:size]


class BodyLimits:
    """ASGI middleware: a body over `max_body_bytes` is a 413, deep JSON a 400, before routing.

    The body is read here (up to the limit, chunk by chunk, so a huge one is
    cut off, not buffered whole) and handed to the app as one message.
    """

    def __init__(self, app: ASGIApp, max_body_bytes: int, max_json_depth: int = MAX_JSON_DEPTH):
        """Wrap `app`."""
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.max_json_depth = max_json_depth

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Check the body of an HTTP request with one, then call the app."""
        if scope["type"] != "http" or scope.get("method") not in ("POST", "PUT", "PATCH"):
            await self.app(scope, receive, send)
            return
        headers = {k.lower(): v for k, v in scope.get("headers", ())}
        declared = headers.get(b"content-length")
        if declared is not None:
            try:
                size = int(declared)
            except ValueError:
                await _answer(
                    send, 400, f"Content-Length {declared.decode('latin-1')!r} is not an integer"
                )
                return
            if size > self.max_body_bytes:
                await _refuse(send, body_too_large(size, self.max_body_bytes))
                return
        chunks: list[bytes] = []
        received = 0
        more = True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return  # the client went away: nothing to answer
            chunk = message.get("body", b"")
            received += len(chunk)
            if received > self.max_body_bytes:
                await _refuse(
                    send, body_too_large(f"more than {self.max_body_bytes}", self.max_body_bytes)
                )
                return
            chunks.append(chunk)
            more = message.get("more_body", False)
        body = b"".join(chunks)
        try:
            text = _json_part(headers, body)
            check_json_depth(text, self.max_json_depth)
            check_utf8(text)
        except KInvalidInput as err:
            await _answer(send, 400, str(err))
            return
        delivered = False

        async def replay() -> Message:
            nonlocal delivered
            if not delivered:
                delivered = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)


async def _refuse(send: Send, err: RequestTooLarge) -> None:
    logger.info("refused request: %s", err)
    await _answer(send, 413, str(err))


async def _answer(send: Send, status: int, message: str) -> None:
    body = orjson.dumps({"error": message})
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def check_batch_rows(where: str, shape: Any, count: int, limit: int) -> None:
    """Refuse a tensor of more than `limit` rows, by its shape's first dimension or its length.

    Raises:
        RequestTooLarge: naming the tensor, its rows and the limit.
    """
    rows = count
    if isinstance(shape, list | tuple) and shape:
        first = shape[0]
        if isinstance(first, int) and not isinstance(first, bool) and first > rows:
            rows = first
    if rows > limit:
        raise rows_too_many(where, rows, limit)
