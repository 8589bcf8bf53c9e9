"""The one sha256, the one atomic write and the one pickle protocol of the platform."""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path

PICKLE_PROTOCOL = 5
TMP_MARK = ".churn-tmp-"
_CHUNK = 1 << 20


def sha256_bytes(data: bytes) -> str:
    """Hex sha256 of bytes."""
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: str | Path) -> str:
    """Hex sha256 of a file, streamed."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(_CHUNK), b""):
            h.update(chunk)
    return h.hexdigest()


def write_atomic(path: str | Path, chunks: Iterable[bytes]) -> str:
    """Write `chunks` to a temporary file beside `path`, fsync, rename onto it; the sha256.

    A reader sees the old file or the new one, never half of either; on any
    failure the temporary file is removed and the old file stays as it was.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}{TMP_MARK}", dir=target.parent)
    h = hashlib.sha256()
    try:
        with os.fdopen(fd, "wb") as fh:
            for chunk in chunks:
                h.update(chunk)
                fh.write(chunk)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return h.hexdigest()


def write_bytes_atomic(path: str | Path, data: bytes) -> str:
    """`write_atomic` of one bytes object; its sha256."""
    return write_atomic(path, (bytes(data),))
