"""MLflow through clients only: a registration and a download leave the caller's process alone."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
import pytest

from churn_model.bundle import load_model, verify_bundle
from churn_model.registry import CHAMPION, download_bundle

pytestmark = pytest.mark.integration


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


def test_the_champion_loads_as_an_mlflow_pyfunc_model(
    mlflow_server: str, bundle_dir: Any, tmp_path: Path
) -> None:
    """From the registered folder as downloaded, and by URI as an MLflow user does."""
    from churn_components.registry.register import client_for, register_bundle, start_run
    from tests.fixtures.bundles import customers, split

    client = client_for(mlflow_server)
    name = "churn-pyfunc-load-test"
    bundle = bundle_dir("xgboost")
    with start_run(client, "pyfunc-load-tests", None, "registration") as run:
        register_bundle(client, run.info.run_id, bundle, name, 1, True, {})
    model, _ = load_model(bundle)
    _, held_out = split(customers(rows=600, seed=3))
    frame = held_out.drop(columns=["Churn"])
    expected = model.predict_proba(held_out)
    by_number = download_bundle(f"models:/{name}/1", tmp_path / "dl", tracking_uri=mlflow_server)
    assert verify_bundle(by_number) == verify_bundle(bundle)
    source = client.get_model_version_download_uri(name, "1")
    folder = mlflow.artifacts.download_artifacts(
        artifact_uri=source, dst_path=str(tmp_path / "pyfunc"), tracking_uri=mlflow_server
    )
    for pyfunc in (mlflow.pyfunc.load_model(folder), _load_as_mlflow_user(name, mlflow_server)):
        out = pyfunc.predict(frame)
        assert isinstance(out, pd.DataFrame)
        np.testing.assert_allclose(out["churn_probability"].to_numpy(), expected)
        assert (out["churn"].to_numpy() == (expected >= model.threshold)).all()
