"""The artifact store against a real Azurite: round trips, both URI forms, atomicity, failures."""

from __future__ import annotations

import hashlib
import logging
import os
import socket
import threading
import time
from pathlib import Path

import pytest
from azure.storage.blob import BlobServiceClient

from churn_core.errors import NotFound, StoreError
from churn_core.store import BlobStore, open_store, read_uri
from tests.fixtures.azurite import ACCOUNT, connection_string
from tests.fixtures.ports import free_port

pytestmark = pytest.mark.integration


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _blob_names(conn: str, container: str) -> list[str]:
    client = BlobServiceClient.from_connection_string(conn).get_container_client(container)
    return sorted(b.name for b in client.list_blobs())


@pytest.fixture
def container(azurite):
    return azurite.new_container()


def test_bytes_round_trip_records_sha256(azurite, container):
    store = open_store(f"az://{container}/runs/r1", azurite.connection_string)
    assert isinstance(store, BlobStore)
    data = b"churn,0\n" * 1000
    digest = store.put_bytes("reports/validation.json", data)
    assert digest == _sha(data)
    assert store.get_bytes("reports/validation.json") == data
    assert store.recorded_sha256("reports/validation.json") == digest
    assert store.exists("reports/validation.json")
    assert not store.exists("reports/other.json")
    assert store.list() == ["reports/validation.json"]
    assert (
        store.uri("reports/validation.json") == f"az://{container}/runs/r1/reports/validation.json"
    )
    # The blob really sits at prefix/relpath with the sha256 in its metadata.
    blob = (
        BlobServiceClient.from_connection_string(azurite.connection_string)
        .get_blob_client(container, "runs/r1/reports/validation.json")
        .get_blob_properties()
    )
    assert blob.metadata["sha256"] == digest


def test_overwrite_replaces_content_and_sha(azurite, container):
    store = open_store(f"az://{container}", azurite.connection_string)
    store.put_bytes("x.bin", b"old")
    digest = store.put_bytes("x.bin", b"new content")
    assert store.get_bytes("x.bin") == b"new content"
    assert store.recorded_sha256("x.bin") == digest == _sha(b"new content")


def test_file_round_trip_1mb(azurite, container, tmp_path):
    src = tmp_path / "model.pkl"
    src.write_bytes(os.urandom(1 << 20))
    store = open_store(f"az://{container}/bundles", azurite.connection_string)
    digest = store.put_file(src, "v1/model.pkl")
    assert digest == _sha(src.read_bytes())
    out = store.get_file("v1/model.pkl", tmp_path / "down" / "model.pkl")
    assert out.read_bytes() == src.read_bytes()
    # No temporary files are left next to the download.
    assert [p.name for p in out.parent.iterdir()] == ["model.pkl"]


def test_dir_round_trip(azurite, container, tmp_path):
    src = tmp_path / "bundle"
    (src / "drift").mkdir(parents=True)
    files = {
        "model.pkl": os.urandom(5000),
        "drift/reference.parquet": os.urandom(3000),
        "metadata.json": b'{"name": "churn"}',
    }
    for name, data in files.items():
        (src / name).write_bytes(data)
    store = open_store(f"az://{container}/models/churn", azurite.connection_string)
    written = store.put_dir(src, "v7")
    assert written == {f"v7/{name}": _sha(data) for name, data in files.items()}
    assert store.list("v7") == sorted(written)
    assert store.list("v") == []  # directory semantics, not a string prefix
    out = store.get_dir("v7", tmp_path / "copy")
    for name, data in files.items():
        assert (out / name).read_bytes() == data
    with pytest.raises(NotFound, match=f"az://{container}/models/churn/v8"):
        store.get_dir("v8", tmp_path / "none")


def test_https_account_url_maps_to_azurite_via_connection_string(azurite, container):
    url = f"https://{ACCOUNT}.blob.core.windows.net/{container}/models"
    store = open_store(url, azurite.connection_string)
    digest = store.put_bytes("churn/metadata.json", b"{}")
    assert store.uri("churn/metadata.json") == f"{url}/churn/metadata.json"
    # Same object seen through the az:// form and by full URI in both forms.
    az = open_store(f"az://{container}/models", azurite.connection_string)
    assert az.get_bytes("churn/metadata.json") == b"{}"
    assert az.recorded_sha256("churn/metadata.json") == digest
    assert read_uri(f"{url}/churn/metadata.json", azurite.connection_string) == b"{}"
    assert read_uri(f"az://{container}/models/churn/metadata.json", azurite.connection_string) == (
        b"{}"
    )


def test_https_url_of_another_account_is_refused(azurite, container):
    with pytest.raises(StoreError, match="otheraccount.*devstoreaccount1"):
        open_store(
            f"https://otheraccount.blob.core.windows.net/{container}/x", azurite.connection_string
        )


def test_the_store_never_reads_the_environment(azurite, container, monkeypatch):
    """Only the connection string passed in counts: the entry point reads the settings."""
    monkeypatch.setenv("CHURN_AZURE_STORAGE_CONNECTION_STRING", azurite.connection_string)
    with pytest.raises(StoreError, match=f"az://{container}.*connection string"):
        open_store(f"az://{container}")
    with pytest.raises(StoreError, match=f"az://{container}.*connection string"):
        read_uri(f"az://{container}/a.txt")


def test_churn_data_reads_the_connection_string_from_the_settings(
    azurite, container, monkeypatch, tmp_path, capsys
):
    """`churn data ingest --store`: CHURN_AZURE_STORAGE_CONNECTION_STRING reaches the blob."""
    import json

    from churn_core.cli import main
    from churn_model.synthetic import write_synthetic_csv

    source = open_store(f"az://{container}", azurite.connection_string)
    csv = write_synthetic_csv(tmp_path / "telco.csv", rows=60, seed=3)
    source.put_file(csv, "raw/telco.csv")
    monkeypatch.setenv("CHURN_AZURE_STORAGE_CONNECTION_STRING", azurite.connection_string)
    monkeypatch.setenv("CHURN_CONFIG_PATH", str(Path(__file__).parents[2] / "model_config.yaml"))
    out = tmp_path / "ingest"
    argv = ["data", "ingest", "--source", f"az://{container}/raw/telco.csv", "--out", str(out)]
    assert main([*argv, "--store", f"az://{container}/snapshots"]) == 0
    meta = json.loads(capsys.readouterr().out)
    assert meta["sha256"] == _sha(csv.read_bytes()) and meta["rows"] == 60
    assert (out / "raw.csv").read_bytes() == csv.read_bytes()
    published = [n for n in _blob_names(azurite.connection_string, container) if "snapshots" in n]
    assert any(n.endswith("/raw.csv") for n in published), published


def test_missing_blob_is_not_found_naming_the_uri(azurite, container):
    store = open_store(f"az://{container}/p", azurite.connection_string)
    with pytest.raises(NotFound, match=f"az://{container}/p/missing.bin"):
        store.get_bytes("missing.bin")
    with pytest.raises(NotFound, match="missing.bin"):
        read_uri(f"az://{container}/p/missing.bin", azurite.connection_string)


def test_unknown_container_is_a_store_error(azurite, tmp_path):
    store = open_store("az://no-such-container/p", azurite.connection_string)
    with pytest.raises(
        StoreError, match="az://no-such-container/p/a.bin.*container does not exist"
    ):
        store.put_bytes("a.bin", b"x")
    with pytest.raises(StoreError, match="container does not exist"):
        store.get_bytes("a.bin")
    with pytest.raises(StoreError, match="container does not exist"):
        store.exists("a.bin")
    names = [
        c.name
        for c in BlobServiceClient.from_connection_string(
            azurite.connection_string
        ).list_containers()
    ]
    assert "no-such-container" not in names


def test_wrong_key_is_denied(azurite, container):
    bad = azurite.connection_string.replace("AccountKey=Eby8", "AccountKey=" + "A" * 4)
    store = open_store(f"az://{container}", bad)
    with pytest.raises(StoreError, match=f"az://{container}/a.bin.*denied"):
        store.put_bytes("a.bin", b"x")
    assert _blob_names(azurite.connection_string, container) == []


def test_unreachable_store_fails_fast_and_keeps_what_was_there(azurite, container):
    good = open_store(f"az://{container}/m", azurite.connection_string)
    good.put_bytes("model.pkl", b"version 1")
    dead_port = free_port()  # nothing listens there
    dead = open_store(f"az://{container}/m", connection_string(dead_port), retries=1, timeout=2)
    start = time.monotonic()
    with pytest.raises(StoreError, match=f"az://{container}/m/model.pkl.*unreachable"):
        dead.put_bytes("model.pkl", b"version 2")
    with pytest.raises(StoreError, match="unreachable"):
        dead.get_bytes("model.pkl")
    assert time.monotonic() - start < 10
    assert good.get_bytes("model.pkl") == b"version 1"
    assert _blob_names(azurite.connection_string, container) == ["m/model.pkl"]


class _CuttingProxy:
    """A loopback TCP proxy to Azurite that cuts every connection once `budget` bytes went up.

    After the cut it refuses all further traffic, like a network that went away mid-upload.
    """

    def __init__(self, upstream_port: int, budget: int) -> None:
        self.upstream_port = upstream_port
        self.budget = budget
        self.sent = 0
        self.broken = threading.Event()
        self.lock = threading.Lock()
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.sock.settimeout(0.2)
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while not self.stop.is_set():
            try:
                client, _ = self.sock.accept()
            except TimeoutError:
                continue
            if self.broken.is_set():
                client.close()
                continue
            upstream = socket.create_connection(("127.0.0.1", self.upstream_port))
            threading.Thread(target=self._pipe, args=(client, upstream, True), daemon=True).start()
            threading.Thread(target=self._pipe, args=(upstream, client, False), daemon=True).start()

    def _pipe(self, src: socket.socket, dst: socket.socket, counted: bool) -> None:
        try:
            while chunk := src.recv(65536):
                if counted:
                    with self.lock:
                        self.sent += len(chunk)
                        if self.sent > self.budget:
                            self.broken.set()
                if self.broken.is_set():
                    break
                dst.sendall(chunk)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                s.close()

    def close(self) -> None:
        self.stop.set()
        self.thread.join(timeout=2)
        self.sock.close()


def test_connection_lost_mid_upload_leaves_old_version_whole(azurite, container):
    old = os.urandom(300_000)
    good = open_store(f"az://{container}/m", azurite.connection_string)
    good.put_bytes("model.pkl", old)
    # 1 MB in 128 KB blocks; the network dies after ~400 KB, i.e. after some blocks were staged.
    proxy = _CuttingProxy(azurite.port, budget=400_000)
    try:
        flaky = open_store(
            f"az://{container}/m",
            connection_string(proxy.port),
            retries=1,
            timeout=2,
            chunk_size=128 * 1024,
        )
        start = time.monotonic()
        with pytest.raises(StoreError, match=f"az://{container}/m/model.pkl"):
            flaky.put_bytes("model.pkl", os.urandom(1 << 20))
        assert time.monotonic() - start < 15
        assert proxy.sent > 128 * 1024  # blocks really went up before the cut
    finally:
        proxy.close()
    assert good.get_bytes("model.pkl") == old
    assert good.recorded_sha256("model.pkl") == _sha(old)
    assert _blob_names(azurite.connection_string, container) == ["m/model.pkl"]


def test_concurrent_reader_sees_old_or_new_never_half(azurite, container, caplog):
    """A writer replaces a 1 MB blob in 64 KB blocks while a reader reads it in 64 KB ranges.

    Every read must be one whole version. That reads really overlapped writes shows as
    either both versions being read or a read restarted because the blob changed under it.
    """
    caplog.set_level(logging.DEBUG, logger="churn_core.store")
    size, chunk = 1 << 20, 64 * 1024
    versions = [os.urandom(size) for _ in range(2)]
    digests = {_sha(v): i for i, v in enumerate(versions)}
    uri = f"az://{container}/atomic"
    writer_store = open_store(uri, azurite.connection_string, chunk_size=chunk)
    reader_store = open_store(uri, azurite.connection_string, chunk_size=chunk)
    writer_store.put_bytes("obj.bin", versions[0])
    done = threading.Event()
    errors: list[BaseException] = []

    def write() -> None:
        try:
            for i in range(10):
                writer_store.put_bytes("obj.bin", versions[(i + 1) % 2])
                time.sleep(0.15)
        except BaseException as err:  # surfaced by the assertion below
            errors.append(err)
        finally:
            done.set()

    seen: list[int] = []
    thread = threading.Thread(target=write)
    thread.start()
    while not done.is_set() or len(seen) < 3:
        data = reader_store.get_bytes("obj.bin")
        assert _sha(data) in digests, "reader saw a mixture of two versions"
        seen.append(digests[_sha(data)])
    thread.join()
    assert not errors
    restarts = sum("changed during a read" in r.getMessage() for r in caplog.records)
    assert set(seen) == {0, 1} or restarts, f"the reader never overlapped a write: {seen}"


def test_store_round_trip_timing(azurite, container, record_property):
    """Round trip of a 1 MB object; the figure is recorded as a test property."""
    store = open_store(f"az://{container}", azurite.connection_string)
    data = os.urandom(1 << 20)
    timings = []
    for i in range(5):
        t0 = time.perf_counter()
        store.put_bytes(f"t{i}.bin", data)
        t1 = time.perf_counter()
        assert store.get_bytes(f"t{i}.bin") == data
        timings.append((t1 - t0, time.perf_counter() - t1))
    put_ms = sorted(t[0] for t in timings)[2] * 1000
    get_ms = sorted(t[1] for t in timings)[2] * 1000
    record_property("azurite_1mb_put_ms", round(put_ms, 1))
    record_property("azurite_1mb_get_ms", round(get_ms, 1))


def test_put_dir_reports_local_paths_not_found(azurite, container, tmp_path):
    store = open_store(f"az://{container}", azurite.connection_string)
    with pytest.raises(NotFound, match="nothing-here"):
        store.put_dir(tmp_path / "nothing-here", "x")
    with pytest.raises(NotFound, match="nope.bin"):
        store.put_file(Path(tmp_path / "nope.bin"), "x")
