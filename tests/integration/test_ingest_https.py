"""Ingest over real servers: an HTTP server on 127.0.0.1 in a thread, and Azurite (Azure Blob)."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from churn_components.data import steps as stages
from churn_components.data.ingest import ingest
from churn_core.errors import DataContractError, NotFound, StoreError
from tests.fixtures.http_files import serve_folder
from tests.fixtures.ports import free_port

pytestmark = pytest.mark.integration


@pytest.fixture
def http_root(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A real http.server serving tmp_path/www on 127.0.0.1; yields (base URL, folder)."""
    root = tmp_path / "www"
    root.mkdir()
    with serve_folder(root) as base:
        yield base, root


def test_ingest_over_http_records_sha_rows_and_synthetic(http_root, synthetic_csv_bytes, tmp_path):
    base, root = http_root
    (root / "telco.csv").write_bytes(synthetic_csv_bytes)
    url = f"{base}/telco.csv"
    meta = stages.run_ingest(url, tmp_path / "out")
    assert (tmp_path / "out" / stages.RAW).read_bytes() == synthetic_csv_bytes
    assert meta["source_uri"] == url
    assert meta["sha256"] == hashlib.sha256(synthetic_csv_bytes).hexdigest()
    assert meta["rows"] == 600 and meta["synthetic"] is True
    # and the next stage judges it like any local file
    assert stages.run_validate(tmp_path / "out", tmp_path / "val", 0.01)["accepted_rows"] == 600


def test_http_404_is_not_found_naming_the_url(http_root):
    base, _ = http_root
    with pytest.raises(NotFound, match=f"{base}/missing.csv"):
        ingest(f"{base}/missing.csv")


def test_unreachable_server_is_a_store_error_naming_the_url():
    url = f"http://127.0.0.1:{free_port()}/telco.csv"  # nothing listens there
    with pytest.raises(StoreError, match=url.replace(".", r"\.")):
        ingest(url)


def test_http_file_that_is_not_csv_fails_at_ingest(http_root):
    base, root = http_root
    (root / "logo.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)))
    with pytest.raises(DataContractError, match="logo.png: not a CSV file: not UTF-8 text"):
        ingest(f"{base}/logo.png")


def test_ingest_from_azure_blob_both_uri_forms(azurite, synthetic_csv_bytes, tmp_path):
    from azure.storage.blob import BlobServiceClient

    service = BlobServiceClient.from_connection_string(azurite.connection_string)
    container = azurite.new_container("ingest")
    service.get_blob_client(container, "raw/telco.csv").upload_blob(synthetic_csv_bytes)
    digest = hashlib.sha256(synthetic_csv_bytes).hexdigest()
    for uri in (
        f"az://{container}/raw/telco.csv",
        f"https://devstoreaccount1.blob.core.windows.net/{container}/raw/telco.csv",
    ):
        got = ingest(uri, connection_string=azurite.connection_string)
        assert got.data == synthetic_csv_bytes
        assert got.metadata["sha256"] == digest and got.metadata["rows"] == 600
        assert got.metadata["source_uri"] == uri
    with pytest.raises(NotFound, match="raw/absent.csv"):
        ingest(f"az://{container}/raw/absent.csv", connection_string=azurite.connection_string)
