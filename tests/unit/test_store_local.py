"""The artifact store on a local folder, and read_uri for paths, file:// and plain http(s)."""

from __future__ import annotations

import hashlib
import http.server
import os
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from churn_core.errors import InvalidInput, NotFound, StoreError
from churn_core.store import LocalStore, open_store, read_uri
from tests.fixtures.ports import free_port


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_bytes_round_trip_records_sha256(tmp_path):
    store = open_store(str(tmp_path / "store"))
    assert isinstance(store, LocalStore)
    digest = store.put_bytes("reports/validation.json", b'{"ok": true}')
    assert digest == _sha(b'{"ok": true}')
    assert store.get_bytes("reports/validation.json") == b'{"ok": true}'
    assert store.recorded_sha256("reports/validation.json") == digest
    assert store.exists("reports/validation.json")
    assert not store.exists("reports/missing.json")
    # The sidecar and no temp file sit beside the artifact; list() shows only the artifact.
    names = sorted(p.name for p in (tmp_path / "store" / "reports").iterdir())
    assert names == [".validation.json.sha256", "validation.json"]
    assert store.list() == ["reports/validation.json"]
    assert store.uri("reports/validation.json") == str(tmp_path / "store/reports/validation.json")


def test_file_uri_form(tmp_path):
    store = open_store((tmp_path / "s").as_uri())
    store.put_bytes("a/b.bin", b"x")
    assert store.uri("a/b.bin") == (tmp_path / "s/a/b.bin").as_uri()
    assert (tmp_path / "s/a/b.bin").read_bytes() == b"x"
    assert read_uri(store.uri("a/b.bin")) == b"x"


def test_file_and_dir_round_trip(tmp_path):
    src = tmp_path / "bundle"
    (src / "drift").mkdir(parents=True)
    files = {"model.pkl": os.urandom(3000), "drift/ref.csv": b"a,b\n1,2\n", "metadata.json": b"{}"}
    for name, data in files.items():
        (src / name).write_bytes(data)
    store = open_store(str(tmp_path / "store"))
    written = store.put_dir(src, "models/v1")
    assert written == {f"models/v1/{n}": _sha(d) for n, d in files.items()}
    assert store.list("models") == sorted(written)
    assert store.list("model") == []
    out = store.get_dir("models/v1", tmp_path / "copy")
    assert {p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()} == set(files)
    for name, data in files.items():
        assert (out / name).read_bytes() == data
    got = store.get_file("models/v1/model.pkl", tmp_path / "one" / "m.pkl")
    assert got.read_bytes() == files["model.pkl"]
    assert store.put_file(got, "copy.pkl") == _sha(files["model.pkl"])


def test_put_dir_writes_metadata_json_last(tmp_path):
    order: list[str] = []

    class Recording(LocalStore):
        def put_file(self, local_path, relpath):
            order.append(relpath)
            return super().put_file(local_path, relpath)

    src = tmp_path / "b"
    (src / "z").mkdir(parents=True)
    for name in ("metadata.json", "a.pkl", "z/zz.bin"):
        (src / name).write_bytes(b"1")
    Recording(tmp_path / "s").put_dir(src, "v1")
    assert order[-1] == "v1/metadata.json"
    assert sorted(order) == ["v1/a.pkl", "v1/metadata.json", "v1/z/zz.bin"]


def test_missing_object_is_not_found_naming_the_path(tmp_path):
    store = open_store(str(tmp_path))
    with pytest.raises(NotFound, match=f"{tmp_path}/nope.bin"):
        store.get_bytes("nope.bin")
    with pytest.raises(NotFound, match="nope.bin"):
        store.get_file("nope.bin", tmp_path / "x")
    with pytest.raises(NotFound, match="empty"):
        store.get_dir("empty", tmp_path / "y")
    with pytest.raises(NotFound, match="no-such-file"):
        store.put_file(tmp_path / "no-such-file", "a")


@pytest.mark.parametrize("bad", ["../escape.bin", "a/../../b", ""])
def test_paths_outside_the_store_are_rejected(tmp_path, bad):
    with pytest.raises(InvalidInput, match="path"):
        open_store(str(tmp_path / "s")).put_bytes(bad, b"x")
    assert not (tmp_path / "escape.bin").exists()


def test_unwritable_location_is_a_store_error_and_keeps_old_content(tmp_path):
    store = open_store(str(tmp_path / "s"))
    store.put_bytes("blocker", b"a file where a folder is expected")
    with pytest.raises(StoreError, match="blocker/model.pkl"):
        store.put_bytes("blocker/model.pkl", b"x")
    assert store.get_bytes("blocker") == b"a file where a folder is expected"


def test_write_interrupted_midway_leaves_old_version_and_no_temp(tmp_path):
    store = open_store(str(tmp_path / "s"))
    store.put_bytes("model.pkl", b"version 1")

    def failing() -> Iterator[bytes]:
        yield b"half of version 2"
        raise OSError("disk went away")

    with pytest.raises(StoreError, match="model.pkl.*disk went away"):
        store._atomic_write("model.pkl", failing())
    assert store.get_bytes("model.pkl") == b"version 1"
    assert store.recorded_sha256("model.pkl") == _sha(b"version 1")
    assert sorted(p.name for p in (tmp_path / "s").iterdir()) == [".model.pkl.sha256", "model.pkl"]


def test_concurrent_reader_sees_old_or_new_never_half(tmp_path):
    versions = [os.urandom(4 << 20), os.urandom(4 << 20)]
    digests = {_sha(v): i for i, v in enumerate(versions)}
    store = open_store(str(tmp_path))
    store.put_bytes("big.bin", versions[0])
    done = threading.Event()

    def write() -> None:
        try:
            for i in range(20):
                store.put_bytes("big.bin", versions[(i + 1) % 2])
        finally:
            done.set()

    thread = threading.Thread(target=write)
    thread.start()
    seen = []
    while not done.is_set():
        data = (tmp_path / "big.bin").read_bytes()
        assert _sha(data) in digests, "reader saw a mixture of two versions"
        seen.append(digests[_sha(data)])
    thread.join()
    assert seen, "the reader never read during the writes"


def test_read_uri_local_forms(tmp_path):
    f = tmp_path / "d.csv"
    f.write_bytes(b"a,b\n")
    assert read_uri(str(f)) == b"a,b\n"
    assert read_uri(f.as_uri()) == b"a,b\n"
    with pytest.raises(NotFound, match="missing.csv"):
        read_uri(str(tmp_path / "missing.csv"))
    with pytest.raises(StoreError, match="directory"):
        read_uri(str(tmp_path))


def test_unsupported_scheme_is_rejected():
    with pytest.raises(InvalidInput, match="s3://bucket/x"):
        open_store("s3://bucket/x")


def test_az_uri_without_connection_string_says_what_is_missing(monkeypatch):
    monkeypatch.delenv("CHURN_AZURE_STORAGE_CONNECTION_STRING", raising=False)
    with pytest.raises(StoreError, match="az://c/p.*connection string"):
        open_store("az://c/p")


@pytest.fixture
def http_root(tmp_path) -> Iterator[tuple[str, Path]]:
    root = tmp_path / "www"
    root.mkdir()

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *a, **kw):
            super().__init__(*a, directory=str(root), **kw)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", root
    server.shutdown()
    server.server_close()


def test_read_uri_http(http_root):
    base, root = http_root
    (root / "data.csv").write_bytes(b"x,y\n1,2\n")
    assert read_uri(f"{base}/data.csv") == b"x,y\n1,2\n"
    with pytest.raises(NotFound, match="missing.csv.*404"):
        read_uri(f"{base}/missing.csv")


def test_read_uri_unreachable_http_is_a_store_error():
    with pytest.raises(StoreError, match=r"127\.0\.0\.1.*unreachable"):
        read_uri(f"http://127.0.0.1:{free_port()}/data.csv", timeout=2)


def test_https_blob_url_without_connection_string_uses_default_credential():
    """Opening builds the client only; no request is sent until a method is called."""
    from azure.identity import DefaultAzureCredential

    from churn_core.store import BlobStore

    url = "https://acct123.blob.core.windows.net/models/churn/v3"
    store = open_store(url, connection_string="")
    assert isinstance(store, BlobStore)
    assert store.container_name == "models"
    assert store.prefix == "churn/v3"
    assert store.uri("metadata.json") == f"{url}/metadata.json"
    assert isinstance(store._container.credential, DefaultAzureCredential)
    assert store._container.account_name == "acct123"
