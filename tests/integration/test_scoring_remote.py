"""A remote customer file is scored streamed, with the local file's answer.

In Azure Blob (a real Azurite): CSV is read front to back through the SDK's
chunked download (`blob_stream`), Parquet through ranged reads
(`blob_range_file`: the footer, then the row groups); the blob's recorded
sha256 is still checked once a CSV is read. Over http (a real server on
127.0.0.1): CSV as the body arrives, Parquet by ``Range`` requests, or whole
from a server that serves no ranges; a truncated body is refused.
"""

from __future__ import annotations

import io
from pathlib import Path

import pandas as pd
import pytest

from churn_components.scoring import sources, steps
from churn_core.config import load_config
from churn_core.errors import DataContractError, NotFound, StoreError
from churn_core.store import open_store
from churn_model.contract import LABEL_COLUMN
from churn_model.synthetic import generate_frame
from tests.fixtures.http_files import QuietHandler, serve_folder

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


def _score(uri, scorer, connection_string="", workers=1):
    return steps.score_file(
        uri,
        scorer,
        CONFIG.economics,
        max_rejected_share=0.01,
        chunk_rows=700,
        workers=workers,
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
    stream = sources.blob_stream(store, "c.csv")
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
        io.BufferedReader(sources.blob_stream(store, "c.csv")).read()


def test_ranged_reads_give_the_blob_byte_for_byte(azurite, customers):
    data = customers[1].read_bytes()
    container = azurite.new_container()
    store = open_store(f"az://{container}", azurite.connection_string)
    store.put_bytes("c.parquet", data)
    view = sources.blob_range_file(store, "c.parquet", block=4096)
    view.seek(-100, io.SEEK_END)
    assert view.read(100) == data[-100:]
    view.seek(5000)
    assert view.read(10_000) == data[5000:15_000]
    assert view.tell() == 15_000


def test_a_missing_blob_is_named(azurite, scorer):
    container = azurite.new_container()
    with pytest.raises(NotFound, match="nothing.csv"):
        _score(f"az://{container}/nothing.csv", scorer, azurite.connection_string)


class _Files(QuietHandler):
    """http.server's files, plus single byte ranges (``Range: bytes=a-b``) when `ranges`."""

    ranges = True
    requests: list[str] = []

    def do_GET(self) -> None:  # noqa: N802
        wanted = self.headers.get("Range")
        type(self).requests.append(f"{self.path} {wanted or 'whole'}")
        path = Path(self.translate_path(self.path))
        if path.name == "truncated.csv":  # declares more than it sends
            body = path.read_bytes()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body) + 1000))
            self.end_headers()
            self.wfile.write(body)
            self.close_connection = True
            return
        if not (self.ranges and wanted and path.is_file()):
            super().do_GET()
            return
        data = path.read_bytes()
        first, _, last = wanted.removeprefix("bytes=").partition("-")
        lo, hi = int(first), min(int(last), len(data) - 1)
        self.send_response(206)
        self.send_header("Content-Range", f"bytes {lo}-{hi}/{len(data)}")
        self.send_header("Content-Length", str(hi - lo + 1))
        self.end_headers()
        self.wfile.write(data[lo : hi + 1])


@pytest.fixture
def http_files(customers, tmp_path):
    """(base URL, handler class) of a real http server on 127.0.0.1 serving the customer files."""
    root = tmp_path / "www"
    root.mkdir()
    for path in customers:
        (root / path.name).write_bytes(path.read_bytes())
    (root / "truncated.csv").write_bytes(customers[0].read_bytes())
    handler = type("Files", (_Files,), {"requests": []})
    with serve_folder(root, handler) as base:
        yield base, handler


@pytest.mark.parametrize("ranges", [True, False], ids=["ranges", "no-ranges"])
@pytest.mark.parametrize("suffix", ["csv", "parquet"])
def test_an_http_file_is_scored_exactly_like_the_local_file(
    http_files, scorer, customers, suffix, ranges
):
    base, handler = http_files
    handler.ranges = ranges
    local = customers[0] if suffix == "csv" else customers[1]
    remote = _score(f"{base}/customers.{suffix}", scorer)
    alone = _score(str(local), scorer)
    pd.testing.assert_frame_equal(remote.scores, alone.scores)
    pd.testing.assert_frame_equal(remote.rejected, alone.rejected)
    if suffix == "parquet" and ranges:
        # the footer and row groups by ranges, never the whole file in one answer
        assert len(handler.requests) > 1 and all("bytes=" in r for r in handler.requests)
    else:
        # a CSV streams in one answer; without ranges, the Parquet probe is answered whole
        assert len(handler.requests) == 1


def test_a_parquet_shard_over_http_reads_only_its_row_groups(http_files, customers):
    base, handler = http_files
    size = customers[1].stat().st_size
    uri = f"{base}/customers.parquet"
    frames = list(steps.read_chunks_at(uri, 400, start=2400, stop=2800))
    assert [first for first, _ in frames] == [2400]
    fetched = sum(
        int(hi) - int(lo) + 1
        for r in handler.requests
        for lo, hi in [r.rpartition("bytes=")[2].split("-")]
    )
    assert fetched < size  # one row group of 7 and the footer, not the file


def test_a_truncated_http_body_and_a_missing_url_are_named(http_files, scorer):
    base, _ = http_files
    with pytest.raises((StoreError, DataContractError), match="truncated.csv"):
        _score(f"{base}/truncated.csv", scorer)
    with pytest.raises(NotFound, match="nothing.parquet"):
        _score(f"{base}/nothing.parquet", scorer)


@pytest.mark.parametrize("suffix", ["csv", "parquet"])
def test_workers_download_a_remote_csv_once_and_read_parquet_by_ranges(
    http_files, scorer, customers, suffix
):
    base, handler = http_files
    local = customers[0] if suffix == "csv" else customers[1]
    remote = _score(f"{base}/customers.{suffix}", scorer, workers=2)
    alone = _score(str(local), scorer)
    pd.testing.assert_frame_equal(remote.scores, alone.scores)
    pd.testing.assert_frame_equal(remote.rejected, alone.rejected)
    if suffix == "csv":
        assert handler.requests == ["/customers.csv whole"]  # once, not once per worker
    else:
        assert len(handler.requests) > 1 and all("bytes=" in r for r in handler.requests)


def test_a_spooled_csv_is_still_named_by_its_url(http_files, scorer, tmp_path):
    base, _ = http_files
    raw = generate_frame(rows=2000, seed=4).astype(str).drop(columns=["MonthlyCharges"])
    www = tmp_path / "www"  # the folder http_files serves
    raw.to_csv(www / "narrow.csv", index=False)
    with pytest.raises(DataContractError, match=rf"{base}/narrow.csv") as caught:
        _score(f"{base}/narrow.csv", scorer, workers=2)
    assert "churn-score-input-" not in str(caught.value)
