"""A customer file in Azure Blob (a real Azurite) is scored streamed, with the local file's answer.

CSV is read front to back through the SDK's chunked download (`BlobStream`),
Parquet through ranged reads (`BlobRangeFile`: the footer, then the row
groups); the blob's recorded sha256 is still checked once a CSV is read.
"""

from __future__ import annotations

import io

import pandas as pd
import pytest

from churn_components.scoring import steps
from churn_core.config import load_config
from churn_core.errors import NotFound, StoreError
from churn_core.store import open_store
from churn_model.contract import LABEL_COLUMN
from churn_model.synthetic import generate_frame

pytestmark = pytest.mark.integration

CONFIG = load_config("model_config.yaml")


@pytest.fixture(scope="module")
def scorer(bundle_dir):
    return steps.load_scorer(bundle_dir("xgboost"), CONFIG.explainer)


@pytest.fixture(scope="module")
def customers(tmp_path_factory):
    root = tmp_path_factory.mktemp("remote")
    raw = generate_frame(rows=3000, seed=9).astype(str).drop(columns=[LABEL_COLUMN])
    raw.loc[17, "TotalCharges"] = "abc"  # one rejected row, so the rejected cells compare too
    csv, parquet = root / "customers.csv", root / "customers.parquet"
    raw.to_csv(csv, index=False)
    raw.to_parquet(parquet, index=False, row_group_size=400)
    return csv, parquet


def _score(uri, scorer, connection_string=""):
    return steps.score_file(
        uri,
        scorer,
        CONFIG.economics,
        max_rejected_share=0.01,
        chunk_rows=700,
        connection_string=connection_string,
    )


@pytest.mark.parametrize("suffix", ["csv", "parquet"])
def test_a_blob_file_is_scored_exactly_like_the_local_file(azurite, scorer, customers, suffix):
    local = customers[0] if suffix == "csv" else customers[1]
    container = azurite.new_container()
    store = open_store(f"az://{container}/in", azurite.connection_string)
    store.put_file(local, f"customers.{suffix}")
    remote = _score(f"az://{container}/in/customers.{suffix}", scorer, azurite.connection_string)
    here = _score(str(local), scorer)
    pd.testing.assert_frame_equal(remote.scores, here.scores)
    pd.testing.assert_frame_equal(remote.rejected, here.rejected)
    assert len(remote.scores) == 2999 and remote.report["rejected_rows"] == 1
    assert (
        steps.count_rows(f"az://{container}/in/customers.{suffix}", azurite.connection_string)
        == 3000
    )


def test_a_csv_blob_streams_in_pieces_and_its_sha256_is_checked(azurite, customers):
    data = customers[0].read_bytes()
    container = azurite.new_container()
    # 16 KiB requests: the file (~ 0.4 MB) arrives in many pieces, never as one
    store = open_store(f"az://{container}", azurite.connection_string, chunk_size=16 * 1024)
    store.put_bytes("c.csv", data)
    stream = steps.BlobStream(store, "c.csv")
    pieces = list(iter(lambda: stream.read(1 << 20), b""))
    assert b"".join(pieces) == data
    assert len(data) > 8 * 16 * 1024 and max(len(p) for p in pieces) <= 16 * 1024

    # the same bytes under a wrong recorded digest: refused once the last byte is read
    from azure.storage.blob import BlobServiceClient

    blob = BlobServiceClient.from_connection_string(azurite.connection_string).get_blob_client(
        container, "c.csv"
    )
    blob.set_blob_metadata({"sha256": "0" * 64})
    with pytest.raises(StoreError, match="does not match the recorded"):
        io.BufferedReader(steps.BlobStream(store, "c.csv")).read()


def test_ranged_reads_give_the_blob_byte_for_byte(azurite, customers):
    data = customers[1].read_bytes()
    container = azurite.new_container()
    store = open_store(f"az://{container}", azurite.connection_string)
    store.put_bytes("c.parquet", data)
    view = steps.BlobRangeFile(store, "c.parquet", block=4096)
    view.seek(-100, io.SEEK_END)
    assert view.read(100) == data[-100:]
    view.seek(5000)
    assert view.read(10_000) == data[5000:15_000]
    assert view.tell() == 15_000


def test_a_missing_blob_is_named(azurite, scorer):
    container = azurite.new_container()
    with pytest.raises(NotFound, match="nothing.csv"):
        _score(f"az://{container}/nothing.csv", scorer, azurite.connection_string)
