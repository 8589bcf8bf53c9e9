"""Where a customer file is read from: a local path, a blob, an http(s) URL; never held whole.

A CSV is read front to back (`ChunkStream`): a blob through the SDK's
chunked download, its recorded sha256 checked once the last byte is read; an
http(s) file as the response body arrives, its length checked against
``Content-Length``. A Parquet file is read by ranges (`RangeFile`): its footer,
then only the row groups wanted; an http server that does not serve ranges
(answers 200 to a ``Range`` request) gets the file read whole, logged.
"""

from __future__ import annotations

import hashlib
import io
import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from churn_core.errors import DataContractError, StoreError

logger = logging.getLogger(__name__)

BLOCK = 4 << 20  # bytes per ranged read
HTTP_TIMEOUT = 60.0  # seconds between bytes (connecting: the store's own limit)


class ChunkStream(io.RawIOBase):
    """A file read front to back from an iterator of byte chunks.

    `finished(sha256_hex, size)` is called once, after the last chunk: it
    raises when what arrived is not what the source recorded.
    """

    def __init__(self, chunks: Iterator[bytes], finished: Callable[[str, int], None]) -> None:
        self._chunks = chunks
        self._finished: Callable[[str, int], None] | None = finished
        self._pending = memoryview(b"")
        self._hash = hashlib.sha256()
        self._size = 0

    def readable(self) -> bool:  # noqa: D102
        return True

    def readinto(self, buffer: Any) -> int:  # noqa: D102
        while not self._pending:
            chunk = next(self._chunks, None)
            if chunk is None:
                if self._finished is not None:
                    finished, self._finished = self._finished, None  # checked once
                    finished(self._hash.hexdigest(), self._size)
                return 0
            self._hash.update(chunk)
            self._size += len(chunk)
            self._pending = memoryview(chunk)
        n = min(len(buffer), len(self._pending))
        buffer[:n] = self._pending[:n]
        self._pending = self._pending[n:]
        return n


class RangeFile(io.RawIOBase):
    """A seekable view of a remote file of `size` bytes: `fetch(offset, length)` per block."""

    def __init__(self, size: int, fetch: Callable[[int, int], bytes], block: int = BLOCK) -> None:
        self._size, self._fetch, self._block = size, fetch, block
        self._pos = 0
        self._cache: tuple[int, bytes] = (0, b"")

    def readable(self) -> bool:  # noqa: D102
        return True

    def seekable(self) -> bool:  # noqa: D102
        return True

    def tell(self) -> int:  # noqa: D102
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:  # noqa: D102
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._size}[whence]
        self._pos = max(0, base + offset)
        return self._pos

    def readinto(self, buffer: Any) -> int:  # noqa: D102
        if self._pos >= self._size:
            return 0
        start, data = self._cache
        if not start <= self._pos < start + len(data):
            length = min(max(len(buffer), self._block), self._size - self._pos)
            data = self._fetch(self._pos, length)
            start = self._pos
            self._cache = (start, data)
        piece = data[self._pos - start : self._pos - start + len(buffer)]
        buffer[: len(piece)] = piece
        self._pos += len(piece)
        return len(piece)


# -- blobs -------------------------------------------------------------------------


def blob_stream(store: Any, name: str) -> ChunkStream:
    """A blob front to back through the SDK's chunked download; its recorded sha256 checked."""
    download = store.open_read(name)
    recorded = (download.properties.metadata or {}).get("sha256")
    uri = store.uri(name)

    def finished(actual: str, _size: int) -> None:
        if recorded and recorded != actual:
            raise StoreError(
                f"cannot read {uri}: content sha256 {actual} does not match the recorded {recorded}"
            )

    return ChunkStream(iter(download.chunks()), finished)


def blob_range_file(store: Any, name: str, block: int = BLOCK) -> RangeFile:
    """A blob by ranged downloads (Parquet reads its footer, then the row groups it needs)."""
    first = store.open_read(name, 0, 1).properties  # "bytes 0-0/<size>"; size: the range
    size = int(str(first.content_range).rpartition("/")[2])
    return RangeFile(size, lambda offset, n: store.open_read(name, offset, n).readall(), block)


# -- http(s) -----------------------------------------------------------------------


def _get(uri: str, headers: dict[str, str] | None = None, *, stream: bool = False) -> Any:
    from churn_core.store import http_get

    return http_get(uri, headers=headers, stream=stream, timeout=HTTP_TIMEOUT)


def http_stream(uri: str) -> ChunkStream:
    """An http(s) file as its body arrives (1 MiB pieces); truncation caught by its length."""
    import requests

    resp = _get(uri, stream=True)
    declared = resp.headers.get("Content-Length")
    encoded = resp.headers.get("Content-Encoding", "identity") != "identity"

    def pieces() -> Iterator[bytes]:
        try:
            yield from resp.iter_content(1 << 20)
        except requests.RequestException as err:
            raise StoreError(f"cannot read {uri}: {err}") from err
        finally:
            resp.close()

    def finished(_sha: str, size: int) -> None:
        if declared is not None and not encoded and int(declared) != size:
            raise StoreError(f"cannot read {uri}: {size} bytes arrived of {declared} declared")

    return ChunkStream(pieces(), finished)


def http_range_file(uri: str, block: int = BLOCK) -> Any:
    """An http(s) file by ``Range`` requests, or read whole where the server serves none."""
    import pyarrow as pa

    probe = _get(uri, {"Range": "bytes=0-0"}, stream=True)
    if probe.status_code != 206:
        logger.info("%s: the server does not serve byte ranges; reading the file whole", uri)
        return pa.BufferReader(probe.content)
    probe.close()
    size = int(probe.headers["Content-Range"].rpartition("/")[2])

    def fetch(offset: int, n: int) -> bytes:
        resp = _get(uri, {"Range": f"bytes={offset}-{offset + n - 1}"})
        if resp.status_code != 206 or len(resp.content) != n:
            raise StoreError(
                f"cannot read {uri}: asked for bytes {offset}-{offset + n - 1}, got "
                f"HTTP {resp.status_code} with {len(resp.content)} bytes"
            )
        return resp.content

    return io.BufferedReader(RangeFile(size, fetch, block))


# -- any of them -------------------------------------------------------------------


def is_remote(uri: str) -> bool:
    """Whether the file is read over the network (a blob or an http(s) URL)."""
    from churn_core.store import is_blob_uri

    return is_blob_uri(uri) or uri.startswith(("http://", "https://"))


def spool(uri: str, dst: Path, connection_string: str) -> Path:
    """Copy a remote CSV to `dst` as it arrives (1 MiB at a time, checked as `open_source`)."""
    import shutil

    with open_source(uri, connection_string) as stream, dst.open("wb") as out:
        shutil.copyfileobj(stream, out, 1 << 20)
    return dst


def is_parquet(uri: str) -> bool:
    """Whether the file is Parquet (by its name: .parquet or .pq), else CSV."""
    return uri.lower().split("?", 1)[0].endswith((".parquet", ".pq"))


def open_source(uri: str, connection_string: str) -> Any:
    """A local path, or a stream (CSV) / seekable view (Parquet) over a remote file.

    Raises:
        DataContractError: no local file at `uri`.
        NotFound, StoreError: a remote file missing or unreadable, naming it.
    """
    from churn_core.store import is_blob_uri, open_store

    if is_blob_uri(uri):
        head, _, name = uri.rstrip("/").rpartition("/")
        store = open_store(head, connection_string or None)
        if is_parquet(uri):
            return io.BufferedReader(blob_range_file(store, name))
        return io.BufferedReader(blob_stream(store, name), buffer_size=1 << 20)
    if uri.startswith(("http://", "https://")):
        if is_parquet(uri):
            return http_range_file(uri)
        return io.BufferedReader(http_stream(uri), buffer_size=1 << 20)
    path = Path(uri[len("file://") :] if uri.startswith("file://") else uri)
    if not path.is_file():
        raise DataContractError(f"customer file {uri} does not exist")
    return str(path)
