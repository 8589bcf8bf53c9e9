"""The registry against a real MLflow server: aliases, the bundle behind them, the gate."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from churn_components.data.steps import read_dataset, write_dataset
from churn_model.bundle import load_model, verify_bundle
from churn_model.registry import CHALLENGER, CHAMPION, download_bundle
from tests.fixtures.training import prepare_data, small_config, train_and_register

pytestmark = pytest.mark.integration


def test_registry_aliases_bundle_and_gate(
    mlflow_server: str, synthetic_training_csv: Path, tmp_path: Path
) -> None:
    config = small_config()
    config = config.model_copy(
        update={
            "models": config.models.model_copy(update={"enabled": ("logistic", "xgboost")}),
            "registry": config.registry.model_copy(update={"model_name": "churn-registry-test"}),
        }
    )
    name = config.registry.model_name
    store = tmp_path / "store"
    data = prepare_data(synthetic_training_csv, tmp_path / "data", config)
    process_state = _mlflow_process_state()

    first = train_and_register(
        data, config, tmp_path / "run1", tracking_uri=mlflow_server, artifact_store=str(store)
    )
    client = MlflowClient(tracking_uri=mlflow_server, registry_uri=mlflow_server)
    assert first["version"] == "1" and first["promote"] is True
    assert client.get_model_version_by_alias(name, CHAMPION).version == "1"
    assert client.get_model_version_by_alias(name, CHALLENGER).version == "1"
    run1 = client.get_run(first["run_id"])
    assert run1.data.tags["gate_decision"] == "promote"
    assert run1.data.tags["synthetic"] == "true"
    assert "cv_roc_auc" in run1.data.metrics and "test_f1" in run1.data.metrics
    artifacts = {a.path for a in client.list_artifacts(first["run_id"], "plots")}
    assert {
        "plots/roc.png",
        "plots/pr.png",
        "plots/calibration.png",
        "plots/confusion_matrix.png",
        "plots/feature_importance.png",
    } <= artifacts
    # the same bundle is in the artifact store under bundles/<name>/<version>/
    assert verify_bundle(store / "bundles" / name / "1")["version"] == "1"

    # a second run on shuffled labels produces a clearly worse model
    worse = tmp_path / "data-worse"
    worse.mkdir()
    train = read_dataset(data.train)
    rng = np.random.default_rng(0)
    train["Churn"] = train["Churn"].to_numpy()[rng.permutation(len(train))]
    write_dataset(train, worse / "train.parquet")
    data_worse = type(data)(
        root=worse,
        raw_meta=data.raw_meta,
        train=worse / "train.parquet",
        test=data.test,
        transform=data.transform,
    )
    second = train_and_register(
        data_worse, config, tmp_path / "run2", tracking_uri=mlflow_server, artifact_store=str(store)
    )
    assert second["version"] == "2"
    assert second["promote"] is False
    assert "kept champion v1" in second["reason"]
    assert client.get_model_version_by_alias(name, CHAMPION).version == "1"
    assert client.get_model_version_by_alias(name, CHALLENGER).version == "2"
    run2 = client.get_run(second["run_id"])
    assert run2.data.tags["gate_decision"] == "keep_champion"
    decision = json.loads(
        Path(
            client.download_artifacts(second["run_id"], "decision.json", str(tmp_path))
        ).read_text()
    )
    assert decision["gate"]["promote"] is False
    assert decision["gate"]["champion_version"] == "1"

    # models:/<name>@champion resolves to the first bundle, verified and loadable
    local = download_bundle(
        f"models:/{name}@{CHAMPION}", tmp_path / "dl", tracking_uri=mlflow_server
    )
    model, meta = load_model(local)
    assert meta["version"] == "1" and meta["name"] == name
    test = read_dataset(data.test)
    served, _ = load_model(first["bundle"])
    np.testing.assert_array_equal(model.predict_proba(test), served.predict_proba(test))
    by_number = download_bundle(f"models:/{name}/2", tmp_path / "dl2", tracking_uri=mlflow_server)
    assert load_model(by_number)[1]["version"] == "2"
    # two registrations and two downloads changed nothing in this process's MLflow state
    assert _mlflow_process_state() == process_state

    # and as an MLflow pyfunc model: the registered folder as downloaded ...
    source = client.get_model_version_download_uri(name, "1")
    folder = mlflow.artifacts.download_artifacts(
        artifact_uri=source, dst_path=str(tmp_path / "pyfunc"), tracking_uri=mlflow_server
    )
    for pyfunc in (mlflow.pyfunc.load_model(folder), _load_as_mlflow_user(name, mlflow_server)):
        out = pyfunc.predict(test.drop(columns=["Churn"]))
        assert isinstance(out, pd.DataFrame)
        np.testing.assert_allclose(out["churn_probability"].to_numpy(), model.predict_proba(test))
        assert (out["churn"].to_numpy() == (model.predict_proba(test) >= model.threshold)).all()


def _load_as_mlflow_user(name: str, tracking_uri: str) -> Any:
    """... and by URI, as an MLflow user does: their process points MLflow at the registry."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLFLOW_TRACKING_URI", tracking_uri)
        mp.setenv("MLFLOW_REGISTRY_URI", tracking_uri)
        return mlflow.pyfunc.load_model(f"models:/{name}@{CHAMPION}")


def _mlflow_process_state() -> tuple[str, str, str | None]:
    active = mlflow.active_run()
    return (
        mlflow.get_tracking_uri(),
        mlflow.get_registry_uri(),
        active.info.run_id if active is not None else None,
    )


def test_registering_and_downloading_leave_the_callers_mlflow_alone(
    mlflow_server: str, bundle_dir: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A caller with its own tracking store and active run keeps both, untouched."""
    from churn_components.registry.register import client_for, log_run, register_bundle, start_run

    own = f"sqlite:///{tmp_path / 'callers-own.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", own)
    monkeypatch.setenv("MLFLOW_REGISTRY_URI", own)
    name = "churn-process-state-test"
    # a bundle folder under any name (MLflow names a logged folder after itself)
    bundle = Path(shutil.copytree(bundle_dir("logistic"), tmp_path / "logistic-v7"))
    with mlflow.start_run(run_name="the caller's run") as callers_run:
        before = _mlflow_process_state()
        assert before == (own, own, callers_run.info.run_id)

        client = client_for(mlflow_server)
        with start_run(client, "process-state-tests", None, "registration") as run:
            assert _mlflow_process_state() == before  # our run never becomes the active one
            log_run(
                client,
                run.info.run_id,
                params={"kind": "logistic"},
                metrics={"cv_f1": 0.5},
                tags={"synthetic": "true"},
                plots={"roc.png": b"not really a png"},
                documents={"decision.json": {"promote": True}},
                texts={"report.md": "# report"},
            )
            registration = register_bundle(
                client, run.info.run_id, bundle, name, 1, True, {"kind": "logistic"}
            )
        local = download_bundle(
            f"models:/{name}@{CHAMPION}", tmp_path / "dl", tracking_uri=mlflow_server
        )

        assert _mlflow_process_state() == before
        caller = mlflow.get_run(callers_run.info.run_id).data
        assert (caller.params, caller.metrics) == ({}, {})  # nothing went to the caller's run
    logged = client.get_run(registration.run_id)
    assert logged.info.status == "FINISHED"
    assert logged.data.params == {"kind": "logistic"} and logged.data.metrics == {"cv_f1": 0.5}
    assert {a.path for a in client.list_artifacts(registration.run_id)} >= {
        "decision.json",
        "report.md",
        "plots",
        "model",
    }
    assert client.get_model_version(name, "1").run_id == registration.run_id
    assert verify_bundle(local) == verify_bundle(bundle)


def test_a_failed_registration_leaves_its_run_failed(mlflow_server: str, bundle_dir: Any) -> None:
    from churn_components.registry.register import client_for, register_bundle, start_run
    from churn_core.errors import StoreError

    client = client_for(mlflow_server)
    name = "churn-failed-registration-test"
    with pytest.raises(StoreError, match="version 1, the bundle says 5"):
        with start_run(client, "process-state-tests", None, "fails") as run:
            register_bundle(client, run.info.run_id, bundle_dir("logistic"), name, 5, True, {})
    assert client.get_run(run.info.run_id).info.status == "FAILED"
    # the version the registry gave was never made champion
    assert client.get_registered_model(name).aliases == {}


def test_download_bundle_unknown_alias_is_not_found(mlflow_server: str, tmp_path: Path) -> None:
    from churn_core.errors import NotFound

    with pytest.raises(NotFound, match=f"models:/no-such-model@champion.*{mlflow_server}"):
        download_bundle("models:/no-such-model@champion", tmp_path, tracking_uri=mlflow_server)


def test_download_bundle_bad_uri_or_unreachable_registry(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from churn_core.errors import InvalidInput, StoreError
    from tests.fixtures.ports import free_port

    down = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(InvalidInput, match="models:/churn/Production"):
        download_bundle("models:/churn/Production", tmp_path, tracking_uri=down)
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "5")
    with pytest.raises(StoreError, match=f"models:/churn@champion: cannot read .* at {down}"):
        download_bundle("models:/churn@champion", tmp_path, tracking_uri=down)


def test_no_champion_only_when_the_registry_says_so(
    mlflow_server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from churn_components.registry.register import champion_metrics, client_for
    from churn_core.errors import StoreError
    from tests.fixtures.ports import free_port

    client = client_for(mlflow_server)
    assert champion_metrics(client, "churn-never-registered") == (None, None)
    client.create_registered_model("churn-without-champion")
    assert champion_metrics(client, "churn-without-champion") == (None, None)

    # an unreachable registry is an error, not "no champion" (which would promote anything)
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "5")
    down = f"http://127.0.0.1:{free_port()}"
    offline = MlflowClient(tracking_uri=down, registry_uri=down)  # no global URI changed
    with pytest.raises(StoreError, match=f"registry {down}: cannot read the champion"):
        champion_metrics(offline, "churn")
