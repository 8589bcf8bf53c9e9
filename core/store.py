"""The artifact store: one interface for a local folder and Azure Blob Storage.

`open_store(uri)` returns an `ArtifactStore` rooted at `uri`:

* a local path or ``file://`` URI -> `LocalStore`;
* ``az://<container>/<prefix>`` or
  ``https://<account>.blob.core.windows.net/<container>/<prefix>`` -> `BlobStore`.

Paths given to the methods (``relpath``, ``relprefix``) are relative to that root and use
``/``. `read_uri(uri)` reads one object given by its full URI (also a plain http(s) URL).

Atomicity: a reader never sees half an object.

* Local: the bytes go to a temporary file in the destination's own directory, are
  flushed and fsynced, then ``os.replace``-d onto the final name (an atomic rename on
  POSIX): a reader opens either the old inode or the new one.
* Blob: a block blob's content changes only when the service commits it: a single
  Put Blob for small objects, or Put Block (invisible, uncommitted) followed by one
  Put Block List for large ones; both replace the whole blob at once, and the content
  and its ``sha256`` metadata are committed in the same request. So no temporary blob
  name or server-side copy is needed. A reader that downloads in several ranged GETs
  pins the first response's ETag (``If-Match``); if a writer commits in between, the
  service answers 412 and `BlobStore` restarts the read, so the reader still gets one
  whole version.
* A directory (`put_dir`) is not one object: its files are written one by one, each
  atomically, with any ``metadata.json`` written LAST. Readers that treat a bundle as
  present only once its ``metadata.json`` exists (as `churn_model.bundle` does) never
  see half a bundle.

Integrity: every put returns the content's sha256 and records it: in the blob's
``sha256`` metadata, or locally in a sidecar ``.<name>.sha256`` beside the file (written
right after the file). Blob reads verify the content against the recorded sha256;
`recorded_sha256(relpath)` returns it for either kind.

Authentication (blob): the connection string passed to `open_store` / `read_uri` when it
is not empty (how tests reach Azurite), otherwise ``DefaultAzureCredential`` (workload
identity on AKS, ``az login`` on a laptop). Nothing here reads the environment: an entry
point reads `Settings.azure_storage_connection_string`
(``CHURN_AZURE_STORAGE_CONNECTION_STRING``) once and passes it down.

Mapping of an https blob URL when a connection string is given: the account, endpoint
and key come from the connection string (for Azurite its ``BlobEndpoint``, e.g.
``http://127.0.0.1:10000/devstoreaccount1``); the URL contributes only the container
and the path. The URL's account must equal the connection string's ``AccountName``,
otherwise `StoreError` (so a URL is never silently sent to another account). Thus
``https://devstoreaccount1.blob.core.windows.net/models/churn/v3`` with the Azurite
connection string means container ``models``, prefix ``churn/v3`` on Azurite.
``az://`` URIs name no account, so they need a connection string.

Errors: an unreachable store, denied access, an unknown container or a failed write
raise `StoreError` naming the URI and the cause; a missing object raises `NotFound`
naming the URI. Timeouts and retries are small and configurable (`open_store`).
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import tempfile
import time
from abc import ABC, abstractmethod
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlparse

from churn_core.errors import InvalidInput, NotFound, StoreError
from churn_core.io import TMP_MARK, sha256_bytes, sha256_file, write_atomic, write_bytes_atomic

if TYPE_CHECKING:
    from azure.storage.blob import BlobServiceClient, ContainerClient

logger = logging.getLogger(__name__)

SHA256_METADATA_KEY = "sha256"
BUNDLE_LAST = "metadata.json"
DEFAULT_TIMEOUT = 5.0
DEFAULT_READ_TIMEOUT = 60.0
DEFAULT_RETRIES = 2
_CHUNK = 1 << 20
_BLOB_HOST = re.compile(r"^(?P<account>[a-z0-9]{3,24})\.blob\.core\.(?P<suffix>[a-z0-9.]+)$")


def _clean_relpath(relpath: str, *, allow_empty: bool = False) -> str:
    """Normalise a store-relative path; reject absolute paths and `..`."""
    text = str(relpath).replace("\\", "/").strip("/")
    if not text:
        if allow_empty:
            return ""
        raise InvalidInput(f"empty relative path {relpath!r} for the artifact store")
    parts = [p for p in PurePosixPath(text).parts if p not in ("", ".")]
    if any(p == ".." for p in parts):
        raise InvalidInput(f"relative path {relpath!r} may not contain '..'")
    return "/".join(parts)


def _join(prefix: str, relpath: str) -> str:
    return f"{prefix}/{relpath}" if prefix and relpath else (prefix or relpath)


def _under(name: str, prefix: str) -> bool:
    """Whether `name` is `prefix` itself or lies below it (directory semantics)."""
    return not prefix or name == prefix or name.startswith(prefix + "/")


def _ordered_for_upload(names: list[str]) -> list[str]:
    """Sorted, with any metadata.json last (it marks a bundle as complete)."""
    return sorted(names, key=lambda n: (PurePosixPath(n).name == BUNDLE_LAST, n))


class ArtifactStore(ABC):
    """Where artifacts live: a local folder or an Azure Blob container prefix."""

    @abstractmethod
    def uri(self, relpath: str = "") -> str:
        """The full URI of `relpath` in the form this store was opened with."""

    @abstractmethod
    def put_bytes(self, relpath: str, data: bytes) -> str:
        """Write `data` atomically at `relpath`; return and record its sha256."""

    @abstractmethod
    def get_bytes(self, relpath: str) -> bytes:
        """Read the object at `relpath`; `NotFound` when absent."""

    @abstractmethod
    def put_file(self, local_path: str | Path, relpath: str) -> str:
        """Copy a local file atomically to `relpath`; return and record its sha256."""

    @abstractmethod
    def get_file(self, relpath: str, local_path: str | Path) -> Path:
        """Copy the object at `relpath` to `local_path` (atomically there too)."""

    @abstractmethod
    def exists(self, relpath: str) -> bool:
        """Whether an object exists at `relpath`."""

    @abstractmethod
    def list(self, prefix: str = "") -> list[str]:
        """Sorted relpaths of the objects at or below `prefix` (directory semantics)."""

    @abstractmethod
    def recorded_sha256(self, relpath: str) -> str | None:
        """The sha256 recorded when `relpath` was written, None if none was recorded."""

    def put_dir(self, local_dir: str | Path, relprefix: str) -> dict[str, str]:
        """Upload every file below `local_dir` to `relprefix`, metadata.json last.

        Returns:
            Store relpath (``relprefix/name``) -> sha256, for every file written.
        """
        root = Path(local_dir)
        if not root.is_dir():
            raise NotFound(f"local directory {root} does not exist")
        prefix = _clean_relpath(relprefix, allow_empty=True)
        names = [p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()]
        written: dict[str, str] = {}
        for name in _ordered_for_upload(names):
            rel = _join(prefix, name)
            written[rel] = self.put_file(root / name, rel)
        logger.info("stored %d files under %s", len(written), self.uri(prefix))
        return written

    def get_dir(self, relprefix: str, local_dir: str | Path) -> Path:
        """Download every object below `relprefix` into `local_dir`; `NotFound` if none."""
        prefix = _clean_relpath(relprefix, allow_empty=True)
        names = self.list(prefix)
        if not names:
            raise NotFound(f"no artifacts under {self.uri(prefix)}")
        target = Path(local_dir)
        for name in names:
            inner = name[len(prefix) :].lstrip("/") if prefix else name
            self.get_file(name, target / (inner or PurePosixPath(name).name))
        return target


# --------------------------------------------------------------------------- local


class LocalStore(ArtifactStore):
    """A folder on the local file system (the embedded default)."""

    def __init__(self, root: str | Path, *, as_file_uri: bool = False) -> None:
        self.root = Path(root).expanduser().absolute()
        self._as_file_uri = as_file_uri

    def __repr__(self) -> str:
        return f"LocalStore({str(self.root)!r})"

    def _path(self, relpath: str, *, allow_empty: bool = False) -> Path:
        return self.root / _clean_relpath(relpath, allow_empty=allow_empty)

    def uri(self, relpath: str = "") -> str:
        """The path (or file:// URI, if opened with one) of `relpath`."""
        path = self._path(relpath, allow_empty=True)
        return path.as_uri() if self._as_file_uri else str(path)

    @staticmethod
    def _sidecar(path: Path) -> Path:
        return path.with_name(f".{path.name}.sha256")

    def _atomic_write(self, relpath: str, chunks: Iterator[bytes], *, record: bool = True) -> str:
        """Write chunks atomically (`churn_core.io.write_atomic`); record and return the sha256."""
        target = self._path(relpath)
        try:
            digest = write_atomic(target, chunks)
        except OSError as err:
            raise StoreError(f"cannot write {self.uri(relpath)}: {err}") from err
        if record:
            self._write_sidecar(target, digest)
        return digest

    def _write_sidecar(self, target: Path, digest: str) -> None:
        try:
            write_bytes_atomic(self._sidecar(target), f"{digest}\n".encode())
        except OSError as err:
            raise StoreError(f"cannot write the sha256 of {target}: {err}") from err

    def put_bytes(self, relpath: str, data: bytes) -> str:
        """Write `data` atomically; return and record its sha256."""
        return self._atomic_write(relpath, iter([bytes(data)]))

    def put_file(self, local_path: str | Path, relpath: str) -> str:
        """Copy a local file atomically; return and record its sha256."""
        src = Path(local_path)
        try:
            fh = open(src, "rb")
        except FileNotFoundError as err:
            raise NotFound(f"local file {src} does not exist") from err
        with fh:
            return self._atomic_write(relpath, iter(lambda: fh.read(_CHUNK), b""))

    def get_bytes(self, relpath: str) -> bytes:
        """Read the file at `relpath`."""
        path = self._path(relpath)
        try:
            return path.read_bytes()
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError) as err:
            raise NotFound(f"no artifact at {self.uri(relpath)}") from err
        except OSError as err:
            raise StoreError(f"cannot read {self.uri(relpath)}: {err}") from err

    def get_file(self, relpath: str, local_path: str | Path) -> Path:
        """Copy the file at `relpath` to `local_path` atomically."""
        src = self._path(relpath)
        if not src.is_file():
            raise NotFound(f"no artifact at {self.uri(relpath)}")
        dest = Path(local_path)
        LocalStore(dest.parent)._atomic_copy_from(src, dest.name, self.uri(relpath))
        return dest

    def _atomic_copy_from(self, src: Path, name: str, src_uri: str) -> None:
        try:
            fh = open(src, "rb")
        except OSError as err:
            raise StoreError(f"cannot read {src_uri}: {err}") from err
        with fh:
            self._atomic_write(name, iter(lambda: fh.read(_CHUNK), b""), record=False)

    def exists(self, relpath: str) -> bool:
        """Whether a file exists at `relpath`."""
        return self._path(relpath).is_file()

    def list(self, prefix: str = "") -> list[str]:
        """Sorted relpaths of the files at or below `prefix` (sidecars/temp files hidden)."""
        clean = _clean_relpath(prefix, allow_empty=True)
        base = self._path(clean, allow_empty=True)
        if base.is_file():
            return [clean]
        if not base.is_dir():
            return []
        out = []
        for p in base.rglob("*"):
            if not p.is_file() or self._is_internal(p.name):
                continue
            out.append(p.relative_to(self.root).as_posix())
        return sorted(out)

    @staticmethod
    def _is_internal(name: str) -> bool:
        return name.startswith(".") and (name.endswith(".sha256") or TMP_MARK in name)

    def recorded_sha256(self, relpath: str) -> str | None:
        """The sha256 in the sidecar written with `relpath`, None if absent."""
        side = self._sidecar(self._path(relpath))
        try:
            return side.read_text().strip() or None
        except FileNotFoundError:
            return None


# --------------------------------------------------------------------------- blob


def _azure_error(uri: str, action: str, err: Exception) -> Exception:
    """Map an azure-core exception to NotFound (missing blob) or StoreError (the rest)."""
    from azure.core.exceptions import ClientAuthenticationError, HttpResponseError

    code = getattr(err, "error_code", None)
    status = getattr(err, "status_code", None)
    if isinstance(err, HttpResponseError) and code == "BlobNotFound":
        return NotFound(f"no artifact at {uri}")
    if isinstance(err, ClientAuthenticationError) or status in (401, 403):
        cause = f"authentication failed or access denied ({code or status}): {_short(err)}"
    elif code == "ContainerNotFound":
        cause = "the container does not exist"
    elif isinstance(err, HttpResponseError) and status is not None:
        cause = f"HTTP {status} {code or ''}: {_short(err)}".strip()
    else:
        cause = f"unreachable: {_short(err)}"
    return StoreError(f"cannot {action} {uri}: {cause}")


def _short(err: Exception) -> str:
    return str(err).strip().splitlines()[0][:300] if str(err).strip() else type(err).__name__


class BlobStore(ArtifactStore):
    """A prefix inside one Azure Blob container."""

    def __init__(self, container: ContainerClient, prefix: str, base_uri: str) -> None:
        self._container = container
        self.container_name = container.container_name
        self.prefix = _clean_relpath(prefix, allow_empty=True)
        self._base_uri = base_uri.rstrip("/")

    def __repr__(self) -> str:
        return f"BlobStore({self._base_uri!r})"

    def uri(self, relpath: str = "") -> str:
        """The URI of `relpath`, in the form (az:// or https://) this store was opened with."""
        rel = _clean_relpath(relpath, allow_empty=True)
        return f"{self._base_uri}/{rel}" if rel else self._base_uri

    def _name(self, relpath: str) -> str:
        return _join(self.prefix, _clean_relpath(relpath))

    def _blob(self, relpath: str) -> Any:
        return self._container.get_blob_client(self._name(relpath))

    def _upload(self, relpath: str, data: Any, digest: str, length: int | None) -> str:
        from azure.core.exceptions import AzureError

        try:
            self._blob(relpath).upload_blob(
                data, length=length, overwrite=True, metadata={SHA256_METADATA_KEY: digest}
            )
        except AzureError as err:
            raise _azure_error(self.uri(relpath), "write", err) from err
        logger.debug("stored %s sha256=%s", self.uri(relpath), digest)
        return digest

    def put_bytes(self, relpath: str, data: bytes) -> str:
        """Upload `data` as one committed block blob with its sha256 as metadata."""
        data = bytes(data)
        return self._upload(relpath, data, sha256_bytes(data), len(data))

    def put_file(self, local_path: str | Path, relpath: str) -> str:
        """Upload a local file (streamed) with its sha256 as metadata."""
        src = Path(local_path)
        if not src.is_file():
            raise NotFound(f"local file {src} does not exist")
        digest = sha256_file(src)
        with open(src, "rb") as fh:
            return self._upload(relpath, fh, digest, src.stat().st_size)

    def _download(self, relpath: str, sink: Any, attempts: int = 6) -> None:
        """Stream one whole version of the blob into `sink(chunks, recorded_sha)`.

        A 412 (the blob was replaced between two ranged reads) restarts the read, up to
        `attempts` times with a short, growing pause.
        """
        from azure.core.exceptions import AzureError, ResourceModifiedError

        uri = self.uri(relpath)
        for attempt in range(attempts):
            try:
                stream = self._blob(relpath).download_blob()
                recorded = (stream.properties.metadata or {}).get(SHA256_METADATA_KEY)
                sink(stream.chunks(), recorded)
                return
            except ResourceModifiedError as err:
                if attempt == attempts - 1:
                    raise StoreError(f"cannot read {uri}: it kept changing while read") from err
                logger.debug("%s changed during a read; reading again", uri)
                time.sleep(0.05 * (attempt + 1))
            except AzureError as err:
                raise _azure_error(uri, "read", err) from err

    def _check(self, relpath: str, actual: str, recorded: str | None) -> None:
        if recorded and recorded != actual:
            raise StoreError(
                f"cannot read {self.uri(relpath)}: content sha256 {actual} does not match "
                f"the recorded {recorded}"
            )

    def get_bytes(self, relpath: str) -> bytes:
        """Download the blob, verified against its recorded sha256."""
        out: dict[str, bytes] = {}

        def sink(chunks: Iterator[bytes], recorded: str | None) -> None:
            data = b"".join(chunks)
            self._check(relpath, sha256_bytes(data), recorded)
            out["data"] = data

        self._download(relpath, sink)
        return out["data"]

    def get_file(self, relpath: str, local_path: str | Path) -> Path:
        """Download the blob to `local_path` (temp file + rename), verified."""
        dest = Path(local_path)
        dest.parent.mkdir(parents=True, exist_ok=True)

        def sink(chunks: Iterator[bytes], recorded: str | None) -> None:
            h = hashlib.sha256()
            fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}{TMP_MARK}", dir=dest.parent)
            try:
                with os.fdopen(fd, "wb") as fh:
                    for chunk in chunks:
                        h.update(chunk)
                        fh.write(chunk)
                self._check(relpath, h.hexdigest(), recorded)
                os.replace(tmp, dest)
            finally:
                Path(tmp).unlink(missing_ok=True)

        self._download(relpath, sink)
        return dest

    def open_read(self, relpath: str, offset: int | None = None, length: int | None = None) -> Any:
        """The SDK's streaming download of the blob or a byte range of it (read piece by piece).

        The caller reads `.chunks()` (or `.readall()` for a small range); the
        recorded sha256 is in `.properties.metadata` for whoever reads it all.
        """
        from azure.core.exceptions import AzureError

        try:
            return self._blob(relpath).download_blob(offset=offset, length=length)
        except AzureError as err:
            raise _azure_error(self.uri(relpath), "read", err) from err

    def _properties(self, relpath: str) -> Any | None:
        from azure.core.exceptions import AzureError

        try:
            return self._blob(relpath).get_blob_properties()
        except AzureError as err:
            mapped = _azure_error(self.uri(relpath), "read", err)
            if isinstance(mapped, NotFound):
                return None
            raise mapped from err

    def exists(self, relpath: str) -> bool:
        """Whether the blob exists; `StoreError` if the container itself is missing."""
        return self._properties(relpath) is not None

    def recorded_sha256(self, relpath: str) -> str | None:
        """The blob's sha256 metadata; `NotFound` if the blob is absent."""
        props = self._properties(relpath)
        if props is None:
            raise NotFound(f"no artifact at {self.uri(relpath)}")
        return (props.metadata or {}).get(SHA256_METADATA_KEY)

    def list(self, prefix: str = "") -> list[str]:
        """Sorted relpaths (relative to this store's prefix) at or below `prefix`."""
        from azure.core.exceptions import AzureError

        rel = _clean_relpath(prefix, allow_empty=True)
        full = _join(self.prefix, rel)
        try:
            names = [b.name for b in self._container.list_blobs(name_starts_with=full or None)]
        except AzureError as err:
            raise _azure_error(self.uri(rel), "list", err) from err
        strip = len(self.prefix) + 1 if self.prefix else 0
        return sorted(n[strip:] for n in names if _under(n, full))


def _service_from(
    connection_string: str | None,
    account_url: str | None,
    *,
    timeout: float,
    retries: int,
    chunk_size: int | None,
) -> BlobServiceClient:
    """A BlobServiceClient with short timeouts and a quick, bounded retry."""
    from azure.storage.blob import BlobServiceClient, LinearRetry

    kwargs: dict[str, Any] = {
        "connection_timeout": timeout,
        "read_timeout": max(timeout, DEFAULT_READ_TIMEOUT),
        "retry_policy": LinearRetry(backoff=1, random_jitter_range=1, retry_total=retries),
    }
    if chunk_size:
        kwargs.update(
            max_single_put_size=chunk_size,
            max_block_size=chunk_size,
            max_single_get_size=chunk_size,
            max_chunk_get_size=chunk_size,
        )
    if connection_string:
        return BlobServiceClient.from_connection_string(connection_string, **kwargs)
    from azure.identity import DefaultAzureCredential

    assert account_url is not None
    return BlobServiceClient(account_url, credential=DefaultAzureCredential(), **kwargs)


def is_blob_uri(uri: str) -> bool:
    """Whether `uri` names Azure Blob Storage (az:// or an https blob endpoint)."""
    parsed = urlparse(uri)
    if parsed.scheme == "az":
        return True
    return parsed.scheme == "https" and bool(_BLOB_HOST.match(parsed.hostname or ""))


def _open_blob(
    uri: str,
    connection_string: str | None,
    *,
    timeout: float,
    retries: int,
    chunk_size: int | None,
) -> BlobStore:
    parsed = urlparse(uri)
    account_url: str | None = None
    if parsed.scheme == "az":
        container = parsed.netloc
        path = unquote(parsed.path)
        if not connection_string:
            raise StoreError(
                f"cannot open {uri}: an az:// URI names no storage account, so it needs a "
                "connection string (CHURN_AZURE_STORAGE_CONNECTION_STRING); with "
                "DefaultAzureCredential use https://<account>.blob.core.windows.net/<container>/..."
            )
    else:
        match = _BLOB_HOST.match(parsed.hostname or "")
        assert match is not None
        account = match.group("account")
        container, _, path = unquote(parsed.path).lstrip("/").partition("/")
        account_url = f"https://{parsed.hostname}"
    if not container:
        raise InvalidInput(f"blob URI {uri!r} names no container")
    service = _service_from(
        connection_string, account_url, timeout=timeout, retries=retries, chunk_size=chunk_size
    )
    if parsed.scheme == "https" and connection_string and service.account_name != account:
        raise StoreError(
            f"cannot open {uri}: its account {account!r} differs from the connection "
            f"string's account {service.account_name!r}"
        )
    prefix = _clean_relpath(path, allow_empty=True)
    root = f"az://{container}" if parsed.scheme == "az" else f"{account_url}/{container}"
    base = f"{root}/{prefix}" if prefix else root
    return BlobStore(service.get_container_client(container), prefix, base)


def open_store(
    uri: str,
    connection_string: str | None = None,
    *,
    timeout: float = DEFAULT_TIMEOUT,
    retries: int = DEFAULT_RETRIES,
    chunk_size: int | None = None,
) -> ArtifactStore:
    """Open the artifact store rooted at `uri`.

    Args:
        uri: a local path, ``file://...``, ``az://<container>/<prefix>`` or
            ``https://<account>.blob.core.windows.net/<container>/<prefix>``.
        connection_string: Azure Storage connection string for blob URIs. Empty (or
            None) means none: DefaultAzureCredential, for https blob URLs only (an
            ``az://`` URI names no account). Never read from the environment here.
        timeout: connect timeout in seconds for blob requests.
        retries: how many times a failed blob request is retried (1 s apart).
        chunk_size: blob upload/download request size in bytes (None: SDK defaults).
            Small values force block uploads and ranged downloads (used by tests).

    Returns:
        A `LocalStore` or a `BlobStore`.
    """
    parsed = urlparse(uri)
    if parsed.scheme == "file":
        return LocalStore(unquote(parsed.path), as_file_uri=True)
    if is_blob_uri(uri):
        return _open_blob(
            uri, connection_string, timeout=timeout, retries=retries, chunk_size=chunk_size
        )
    if parsed.scheme == "" or len(parsed.scheme) == 1:  # a path (or a Windows drive)
        return LocalStore(uri)
    raise InvalidInput(
        f"unsupported artifact store URI {uri!r}: use a path, file://, az:// or "
        "https://<account>.blob.core.windows.net/..."
    )


def _split_parent(uri: str) -> tuple[str, str]:
    head, _, name = uri.rstrip("/").rpartition("/")
    return head, name


def read_uri(
    uri: str,
    connection_string: str | None = None,
    *,
    timeout: float = 30.0,
) -> bytes:
    """Read one object by its full URI: a path, file://, http(s):// URL, az:// or blob https.

    `connection_string` is used for blob URIs as in `open_store` (empty: none).

    Raises:
        NotFound: the object does not exist (HTTP 404, missing file or blob).
        StoreError: unreachable, denied, or any other failure, naming the URI.
    """
    parsed = urlparse(uri)
    if is_blob_uri(uri):
        head, name = _split_parent(uri)
        if parsed.scheme == "az" and head == "az:":
            raise InvalidInput(f"blob URI {uri!r} names a container, not an object")
        return open_store(head, connection_string, timeout=min(timeout, DEFAULT_TIMEOUT)).get_bytes(
            name
        )
    if parsed.scheme in ("http", "https"):
        return _read_http(uri, timeout)
    path = Path(unquote(parsed.path)) if parsed.scheme == "file" else Path(uri)
    try:
        return path.read_bytes()
    except (FileNotFoundError, NotADirectoryError) as err:
        raise NotFound(f"no file at {uri}") from err
    except IsADirectoryError as err:
        raise StoreError(f"cannot read {uri}: it is a directory") from err
    except OSError as err:
        raise StoreError(f"cannot read {uri}: {err}") from err


def http_get(
    uri: str,
    *,
    headers: dict[str, str] | None = None,
    stream: bool = False,
    timeout: float = 30.0,
) -> Any:
    """GET `uri` (a `requests` response, its body unread when `stream`).

    Raises:
        NotFound: HTTP 404.
        StoreError: unreachable, or any other HTTP error, naming the URI.
    """
    import requests

    try:
        resp = requests.get(
            uri, headers=headers, stream=stream, timeout=(min(timeout, DEFAULT_TIMEOUT), timeout)
        )
    except requests.RequestException as err:
        raise StoreError(f"cannot read {uri}: unreachable: {_short(err)}") from err
    if resp.status_code == 404:
        resp.close()
        raise NotFound(f"no object at {uri} (HTTP 404)")
    if resp.status_code >= 400:
        resp.close()
        raise StoreError(f"cannot read {uri}: HTTP {resp.status_code} {resp.reason}")
    return resp


def _read_http(uri: str, timeout: float) -> bytes:
    start = time.monotonic()
    resp = http_get(uri, timeout=timeout)
    logger.debug("read %d bytes from %s in %.2fs", len(resp.content), uri, time.monotonic() - start)
    return resp.content
