"""Ingest: read the source table from a URI and describe exactly what was read.

Sources: a local path, ``file://``, an ``http(s)://`` URL, ``az://<container>/<path>``
or ``https://<account>.blob.core.windows.net/<container>/<path>`` (Azure Blob),
all through `churn_core.store.read_uri`. The bytes are kept unchanged; the
metadata records their sha256, size, row count, header and whether the data is
synthetic (customer ids with the ``SYNTH-`` prefix, see
`churn_model.synthetic`). Ingest does not judge the contract (validate
does), but it refuses what cannot be a CSV table at all: an empty file or
bytes that are not UTF-8 text.
"""

from __future__ import annotations

import csv
import io
import logging
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from churn_core.errors import DataContractError, NotFound
from churn_core.io import sha256_bytes
from churn_model.contract import ID_COLUMN
from churn_model.synthetic import SYNTHETIC_ID_PREFIX, announce

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Ingested:
    """The bytes read and their description (JSON-ready `metadata`)."""

    data: bytes
    metadata: dict[str, Any]


def redact_uri(uri: str) -> str:
    """The URI without credentials: no user:password, no query string (SAS tokens)."""
    parts = urlsplit(uri)
    if not parts.scheme or len(parts.scheme) == 1:
        return uri
    netloc = parts.netloc.rpartition("@")[2]
    query = "<redacted>" if parts.query else ""
    return urlunsplit((parts.scheme, netloc, parts.path, query, ""))


def csv_text(data: bytes, source: str) -> str:
    """CSV bytes as text (UTF-8, a byte-order mark dropped).

    Raises:
        DataContractError: empty, or not UTF-8 text; names the source.
    """
    if not data.strip():
        raise DataContractError(f"{source}: empty file (no header, no rows)")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise DataContractError(
            f"{source}: not a CSV file: not UTF-8 text (byte {err.start}: "
            f"{data[err.start : err.start + 1]!r})"
        ) from err


def describe_csv(data: bytes, source: str) -> dict[str, Any]:
    """sha256, size, rows, columns and the synthetic flag of CSV bytes.

    Raises:
        DataContractError: empty, not UTF-8 text, or not parseable as CSV; names the source.
    """
    text = csv_text(data, source)
    rows = 0
    synthetic_rows = 0
    try:
        reader = csv.reader(io.StringIO(text, newline=""))
        header = next(reader)
        id_at = header.index(ID_COLUMN) if ID_COLUMN in header else None
        for record in reader:
            if not record:  # a blank line is not a row (the CSV readers skip it too)
                continue
            rows += 1
            if id_at is not None and id_at < len(record):
                synthetic_rows += record[id_at].startswith(SYNTHETIC_ID_PREFIX)
    except csv.Error as err:
        raise DataContractError(f"{source}: not a CSV file: {err}") from err
    return {
        "source_uri": source,
        "sha256": sha256_bytes(data),
        "bytes": len(data),
        "rows": rows,
        "columns": header,
        "synthetic": synthetic_rows > 0,
        "synthetic_rows": synthetic_rows,
    }


def ingest(uri: str, connection_string: str = "") -> Ingested:
    """Read `uri` (path, file://, http(s)://, az://, Azure Blob https) and describe it.

    Args:
        uri: where the table is.
        connection_string: Azure Storage connection string for blob URIs (empty:
            DefaultAzureCredential); the entry point reads it from the settings.

    Raises:
        NotFound: nothing at `uri`.
        StoreError: unreachable, denied, unreadable; the message names the URI.
        DataContractError: empty or not a text CSV.
    """
    from churn_core.store import read_uri

    shown = redact_uri(uri)
    logger.info("ingest: reading %s", shown)
    try:
        data = read_uri(uri, connection_string=connection_string)
    except NotFound as err:
        raise NotFound(
            f"{err} (set CHURN_DATA_URI, `dvc pull` the real data, or generate a SYNTHETIC "
            "stand-in: churn data synthesize --out data/synthetic/telco.csv)"
        ) from err
    meta = describe_csv(data, shown)
    logger.info(
        "ingest: %s: %d bytes, %d rows, sha256 %s",
        shown,
        meta["bytes"],
        meta["rows"],
        meta["sha256"],
    )
    if meta["synthetic"]:
        announce(
            f"ingested from {shown}: {meta['synthetic_rows']} of {meta['rows']} rows synthetic"
        )
    return Ingested(data=data, metadata=meta)
