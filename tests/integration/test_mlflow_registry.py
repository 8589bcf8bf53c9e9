"""The registry against a real MLflow server: aliases, the bundle behind them, the gate."""

from __future__ import annotations

from pathlib import Path

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
    decision = mlflow.artifacts.load_dict(f"{run2.info.artifact_uri}/decision.json")
    assert decision["gate"]["promote"] is False
    assert decision["gate"]["champion_version"] == "1"

    # models:/<name>@champion resolves to the first bundle, verified and loadable
    local = download_bundle(f"models:/{name}@{CHAMPION}", tmp_path / "dl", mlflow_server)
    model, meta = load_model(local)
    assert meta["version"] == "1" and meta["name"] == name
    test = read_dataset(data.test)
    served, _ = load_model(first["bundle"])
    np.testing.assert_array_equal(model.predict_proba(test), served.predict_proba(test))

    # and as an MLflow pyfunc model
    mlflow.set_registry_uri(mlflow_server)
    pyfunc = mlflow.pyfunc.load_model(f"models:/{name}@{CHAMPION}")
    out = pyfunc.predict(test.drop(columns=["Churn"]))
    assert isinstance(out, pd.DataFrame)
    np.testing.assert_allclose(out["churn_probability"].to_numpy(), model.predict_proba(test))
    assert (out["churn"].to_numpy() == (model.predict_proba(test) >= model.threshold)).all()


def test_download_bundle_unknown_alias_is_not_found(mlflow_server: str, tmp_path: Path) -> None:
    from churn_core.errors import NotFound

    with pytest.raises(NotFound, match="models:/no-such-model@champion"):
        download_bundle("models:/no-such-model@champion", tmp_path, mlflow_server)


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
