"""Faults: the artifact store, the registry and the bundle fail; the platform fails closed.

* Azurite (the artifact store) is stopped in the middle of a local pipeline run
  (`churn pipeline run --local --artifact-store az://...`), after the data
  stages published their outputs: the run fails with the store's error, no
  version is registered, the champion stays.
* The MLflow server that holds the champion is stopped before the gate: the
  gate raises `GateError` (it never treats "cannot read" as "no champion"),
  nothing is registered, the champion stays.
* A corrupted bundle (truncated model file, metadata that is not JSON) is
  refused by `churn serve`: not ready (503) on every route, and the log says why.

Each component is a real process this module starts and stops itself.
"""

from __future__ import annotations

import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests

from churn_core.errors import GateError
from churn_core.settings import Settings
from tests.fixtures.training import DataPaths, prepare_data, small_config, train_and_evaluate

pytestmark = pytest.mark.integration


def _config() -> Any:
    """The quick configuration, logistic only (the faults are not about the model)."""
    config = small_config()
    models = config.models.model_copy(update={"enabled": ("logistic",)})
    data = config.data.model_copy(update={"synthetic_rows": 1500})
    return config.model_copy(update={"models": models, "data": data})


@dataclass
class Trained:
    """One training, shared: the data stages' outputs and the evaluated candidates."""

    config: Any
    data: DataPaths
    candidates: dict[str, Path]
    evaluation: Path
    root: Path


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Trained:
    from churn_model.synthetic import write_synthetic_csv

    config = _config()
    root = tmp_path_factory.mktemp("faults")
    csv = write_synthetic_csv(root / "telco.csv", rows=config.data.synthetic_rows, seed=0)
    data = prepare_data(csv, root / "data", config)
    candidates, evaluation, _ = train_and_evaluate(data, config, root / "train")
    return Trained(config, data, candidates, evaluation, root)


def register_champion(trained: Trained, tracking_uri: str, out: Path) -> str:
    """Select and register the trained model (no champion yet: it becomes champion)."""
    from tests.fixtures.training import select_and_register

    result = select_and_register(
        trained.data,
        trained.candidates,
        trained.evaluation,
        trained.config,
        out,
        tracking_uri=tracking_uri,
    )
    assert result["promote"] is True
    return str(result["version"])


def registry_state(tracking_uri: str, name: str = "churn") -> tuple[list[str], str | None]:
    """(every registered version, the champion's version)."""
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri, tracking_uri)
    versions = sorted(str(v.version) for v in client.search_model_versions(f"name='{name}'"))
    try:
        champion: str | None = str(client.get_model_version_by_alias(name, "champion").version)
    except MlflowException:
        champion = None
    return versions, champion


# -- the artifact store stops mid-run ----------------------------------------------------


@dataclass
class OwnAzurite:
    """An Azurite this module starts and stops (the session's one stays up for others)."""

    process: subprocess.Popen[bytes]
    port: int
    connection_string: str

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)


@pytest.fixture
def own_azurite(tmp_path: Path) -> Iterator[OwnAzurite]:
    from tests.ci import missing
    from tests.fixtures.azurite import (
        AZURITE_BIN,
        _wait_started,
        azurite_command,
        connection_string,
    )
    from tests.fixtures.ports import free_port

    if not AZURITE_BIN.exists():
        missing(f"{AZURITE_BIN} is missing: run `make install` (npm ci) to get Azurite")
    port = free_port()
    log_path = tmp_path / "azurite.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            azurite_command(port),
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=tmp_path,
        )
    server = OwnAzurite(process, port, connection_string(port))
    try:
        _wait_started(process, port, log_path)
        yield server
    finally:
        server.stop()


def _published(connection_string: str, container: str, prefix: str) -> bool:
    from azure.storage.blob import BlobServiceClient

    client = BlobServiceClient.from_connection_string(connection_string)
    blobs = client.get_container_client(container).list_blobs(name_starts_with=prefix)
    return any(b.name.endswith("/metadata.json") for b in blobs)


def test_artifact_store_stopped_mid_run_registers_nothing(
    trained: Trained,
    own_azurite: OwnAzurite,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from azure.storage.blob import BlobServiceClient

    from churn_pipelines.cli import run_local

    tracking_uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    champion = register_champion(trained, tracking_uri, tmp_path / "champion")
    container = "artifacts"
    BlobServiceClient.from_connection_string(own_azurite.connection_string).create_container(
        container
    )
    # the pipeline's components read the store's connection string from the environment
    monkeypatch.setenv("CHURN_AZURE_STORAGE_CONNECTION_STRING", own_azurite.connection_string)
    settings = Settings(
        data_uri=str(tmp_path / "missing.csv"),
        artifact_root=str(tmp_path / "artifacts"),
        mlflow_tracking_uri=tracking_uri,
    )

    # stop the store once the last data stage has published: the training stages go on
    # without it, and the register stage finds it gone
    stopped: dict[str, float] = {}

    def stop_when_the_data_stages_are_done() -> None:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and own_azurite.process.poll() is None:
            try:
                if _published(own_azurite.connection_string, container, "data/features/"):
                    own_azurite.stop()
                    stopped["at"] = time.monotonic()
                    return
            except Exception:  # noqa: BLE001 - not there yet
                pass
            time.sleep(0.2)

    watcher = threading.Thread(target=stop_when_the_data_stages_are_done, daemon=True)
    watcher.start()
    with pytest.raises(Exception) as failed:  # noqa: PT011 - kfp.local's own error type
        run_local(settings, trained.config, artifact_store=f"az://{container}")
    watcher.join(timeout=10)
    assert "at" in stopped, "the run ended before the data stages published"

    # a clean failure: the register stage failed on the store, and says so
    err = capsys.readouterr().err
    log = (tmp_path / "artifacts" / "kfp" / "last-run.log").read_text(errors="replace")
    assert "register" in str(failed.value) or "register FAILED" in err, (failed.value, err[-2000:])
    assert "StoreError" in log and f"az://{container}/bundles/churn/" in log, log[-3000:]
    # nothing registered, the champion stays, the failed MLflow run is marked FAILED
    versions, now = registry_state(tracking_uri)
    assert versions == [champion] and now == champion
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri)
    runs = client.search_runs(
        [e.experiment_id for e in client.search_experiments()], order_by=["start_time DESC"]
    )
    assert runs[0].info.status == "FAILED"


# -- the registry goes down before the gate ----------------------------------------------


@pytest.fixture
def own_mlflow(tmp_path: Path) -> Iterator[dict[str, Any]]:
    from tests.fixtures.mlflow_server import _stop, _wait_healthy, mlflow_command
    from tests.fixtures.ports import free_port, wait_for_port

    port = free_port()
    db = tmp_path / "mlflow-server.db"
    log_path = tmp_path / "mlflow-server.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            mlflow_command(db, tmp_path / "mlflow-artifacts", port),
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=tmp_path,
            start_new_session=True,
        )
    uri = f"http://127.0.0.1:{port}"
    handle = {"uri": uri, "db": f"sqlite:///{db}", "stop": lambda: _stop(process, signal.SIGTERM)}
    try:
        wait_for_port(port, timeout=90)
        _wait_healthy(uri, process, timeout=60)
        yield handle
    finally:
        _stop(process, signal.SIGTERM)


def test_registry_down_at_the_gate_fails_closed(
    trained: Trained, own_mlflow: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.fixtures.training import select_and_register

    champion = register_champion(trained, own_mlflow["uri"], tmp_path / "champion")
    assert registry_state(own_mlflow["uri"]) == ([champion], champion)
    own_mlflow["stop"]()
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "5")

    with pytest.raises(GateError) as raised:
        select_and_register(
            trained.data,
            trained.candidates,
            trained.evaluation,
            trained.config,
            tmp_path / "challenger",
            tracking_uri=own_mlflow["uri"],
        )
    message = str(raised.value)
    assert f"registry {own_mlflow['uri']}: cannot read the champion" in message
    assert "selection.replace_unreadable_champion" in message
    assert not (tmp_path / "challenger").exists()  # no bundle written
    # the server's own store: still one version, the same champion
    assert registry_state(own_mlflow["db"]) == ([champion], champion)


# -- a corrupted bundle is refused ----------------------------------------------------------


def _truncate_model(bundle: Path) -> str:
    from tests.fixtures.bundles import MODEL

    path = bundle / MODEL
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    return "sha256"


def _garble_metadata(bundle: Path) -> str:
    (bundle / "metadata.json").write_bytes(b'{"version": "7", "files": {')
    return "metadata.json"


@pytest.mark.parametrize("corrupt", [_truncate_model, _garble_metadata], ids=["model", "metadata"])
def test_corrupted_bundle_is_refused_and_not_ready(
    corrupt: Any, bundle_dir: Any, tmp_path: Path
) -> None:
    import shutil

    from tests.fixtures.bundles import customers
    from tests.fixtures.model_server import serve_bundle, v2_body

    bundle = tmp_path / "bundle"
    shutil.copytree(bundle_dir("xgboost"), bundle)
    clue = corrupt(bundle)
    server = serve_bundle(bundle, tmp_path / "serve")
    try:
        assert requests.get(f"{server.url}/v2/health/live", timeout=5).status_code == 200
        assert requests.get(f"{server.url}/v2/health/ready", timeout=5).status_code == 503
        ready = requests.get(f"{server.url}/v2/models/churn/ready", timeout=5)
        assert ready.status_code == 503 and "not ready" in ready.json()["error"]
        body = v2_body(customers(rows=2, seed=1))
        for path in ("/v2/models/churn/infer", "/v2/models/churn-explainer/infer"):
            r = requests.post(f"{server.url}{path}", json=body, timeout=10)
            assert r.status_code == 503, r.text
        assert server.alive()
        log = server.log()
        assert "NOT READY" in log and "refusing bundle" in log and clue in log, log[-2000:]
    finally:
        server.stop()
