"""The registry against a real MLflow server: aliases, the bundle behind them, the gate.

The gate scores the champion's bundle (downloaded from ``models:/<name>@champion``)
and the challenger on the same held-out rows. Two trainings on synthetic data
are shared by the module: a good one and a clearly worse one (trained on
shuffled labels), both evaluated on the same test split; provenance is set
through the data's ``synthetic`` metadata, as the pipeline's artifacts carry it.
Each test uses its own registered model name on the session's server.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import pickle
import shutil
import tempfile
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from churn_components.data.steps import read_dataset, write_dataset
from churn_components.registry.steps import select_step
from churn_components.training.evaluate import classification_metrics
from churn_core.config import ChurnConfig
from churn_core.errors import GateError
from churn_model.bundle import load_model, verify_bundle
from churn_model.registry import CHALLENGER, CHAMPION, download_bundle
from tests.fixtures.training import (
    DataPaths,
    prepare_data,
    select_and_register,
    small_config,
    train_and_evaluate,
)

pytestmark = pytest.mark.integration


@dataclasses.dataclass
class Trained:
    """Candidates and their evaluation, ready for select_step / register_step."""

    data: DataPaths
    candidates: dict[str, Path]
    evaluation: Path


@dataclasses.dataclass
class Trainings:
    config: ChurnConfig
    good: Trained
    worse: Trained
    rows: int


def _config(name: str = "churn-registry-test", **selection: Any) -> ChurnConfig:
    config = small_config()
    return config.model_copy(
        update={
            "models": config.models.model_copy(update={"enabled": ("logistic", "xgboost")}),
            "registry": config.registry.model_copy(update={"model_name": name}),
            "selection": config.selection.model_copy(update=selection),
        }
    )


@pytest.fixture(scope="module")
def trainings(synthetic_training_csv: Path, tmp_path_factory: pytest.TempPathFactory) -> Trainings:
    """A good and a clearly worse training, evaluated on the same held-out split."""
    root = tmp_path_factory.mktemp("gate-trainings")
    config = _config()
    data = prepare_data(synthetic_training_csv, root / "data", config)
    good = Trained(data, *train_and_evaluate(data, config, root / "good")[:2])
    # a training split with shuffled labels: a clearly worse model, same test rows
    worse_dir = root / "data-worse"
    worse_dir.mkdir()
    train = read_dataset(data.train)
    train["Churn"] = train["Churn"].to_numpy()[np.random.default_rng(0).permutation(len(train))]
    write_dataset(train, worse_dir / "train.parquet")
    worse_data = dataclasses.replace(data, root=worse_dir, train=worse_dir / "train.parquet")
    worse = Trained(worse_data, *train_and_evaluate(worse_data, config, root / "worse")[:2])
    return Trainings(config, good, worse, rows=len(read_dataset(data.test)))


def _provenance(trained: Trained, synthetic: bool) -> Trained:
    """The same training, its data marked real (False) or synthetic (True)."""
    meta = {**trained.data.raw_meta, "synthetic": synthetic}
    return dataclasses.replace(trained, data=dataclasses.replace(trained.data, raw_meta=meta))


def _register(
    trained: Trained, config: ChurnConfig, bundle_dir: Path, uri: str, **kw: Any
) -> dict[str, Any]:
    # the registered pyfunc keeps the bundle under artifacts/<folder name>, and
    # download_bundle looks in artifacts/bundle: the folder must be named so
    return select_and_register(
        trained.data,
        trained.candidates,
        trained.evaluation,
        config,
        bundle_dir,
        tracking_uri=uri,
        **kw,
    )


def _select(trained: Trained, config: ChurnConfig, uri: str) -> dict[str, Any]:
    return select_step(
        trained.evaluation, trained.data.test, config, uri, data_metadata=trained.data.raw_meta
    )


def _decision(uri: str, run: Any) -> dict[str, Any]:
    """The decision.json a register step logged to `run`, read through a client."""
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    with tempfile.TemporaryDirectory() as tmp:
        return dict(
            json.loads(
                Path(client.download_artifacts(run.info.run_id, "decision.json", tmp)).read_text()
            )
        )


def test_registry_aliases_bundle_and_gate(
    mlflow_server: str, trainings: Trainings, tmp_path: Path
) -> None:
    config = trainings.config
    name = config.registry.model_name
    store = tmp_path / "store"

    first = _register(
        trainings.good, config, tmp_path / "r1" / "bundle", mlflow_server, artifact_store=str(store)
    )
    client = MlflowClient(tracking_uri=mlflow_server, registry_uri=mlflow_server)
    assert first["version"] == "1" and first["promote"] is True
    assert "no champion yet" in first["reason"]
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

    # the worse challenger is refused on the very rows it was evaluated on
    second = _register(
        trainings.worse,
        config,
        tmp_path / "r2" / "bundle",
        mlflow_server,
        artifact_store=str(store),
    )
    assert second["version"] == "2"
    assert second["promote"] is False
    assert "kept champion v1" in second["reason"]
    assert f"on the same {trainings.rows} held-out rows" in second["reason"]
    assert client.get_model_version_by_alias(name, CHAMPION).version == "1"
    assert client.get_model_version_by_alias(name, CHALLENGER).version == "2"
    run2 = client.get_run(second["run_id"])
    assert run2.data.tags["gate_decision"] == "keep_champion"
    decision = _decision(mlflow_server, run2)
    gate = decision["gate"]
    assert gate["promote"] is False and gate["basis"] == "score"
    assert gate["champion_version"] == "1" and gate["rows"] == trainings.rows
    assert gate["tolerance"] == 0.0 and gate["replace_unreadable_champion"] is False
    assert gate["challenger"]["score"] < gate["champion"]["score"]
    assert gate["challenger"]["synthetic"] is True and gate["champion"]["synthetic"] is True

    # models:/<name>@champion resolves to the first bundle, verified and loadable
    local = download_bundle(
        f"models:/{name}@{CHAMPION}", tmp_path / "dl", tracking_uri=mlflow_server
    )
    model, meta = load_model(local)
    assert meta["version"] == "1" and meta["name"] == name
    test = read_dataset(trainings.good.data.test)
    served, _ = load_model(first["bundle"])
    np.testing.assert_array_equal(model.predict_proba(test), served.predict_proba(test))
    # the gate's champion figures are that bundle's, on these rows, at its served threshold
    y = (test["Churn"] == "Yes").to_numpy().astype(int)
    m = classification_metrics(y, model.predict_proba(test), meta["threshold"])
    assert gate["champion"]["threshold"] == meta["threshold"]
    assert gate["champion"]["metrics"]["f1"] == pytest.approx(m["f1"], abs=1e-12)
    assert gate["champion"]["metrics"]["roc_auc"] == pytest.approx(m["roc_auc"], abs=1e-12)
    assert gate["champion"]["score"] == pytest.approx(0.5 * m["f1"] + 0.5 * m["roc_auc"])

    # and as an MLflow pyfunc model (the registered folder, fetched through a client)
    source = client.get_model_version_download_uri(name, "1")
    folder = mlflow.artifacts.download_artifacts(
        artifact_uri=source, dst_path=str(tmp_path / "pyfunc"), tracking_uri=mlflow_server
    )
    pyfunc = mlflow.pyfunc.load_model(folder)
    out = pyfunc.predict(test.drop(columns=["Churn"]))
    assert isinstance(out, pd.DataFrame)
    np.testing.assert_allclose(out["churn_probability"].to_numpy(), model.predict_proba(test))
    assert (out["churn"].to_numpy() == (model.predict_proba(test) >= model.threshold)).all()


def test_a_better_challenger_is_promoted_and_a_retrain_ties(
    mlflow_server: str, trainings: Trainings, tmp_path: Path
) -> None:
    config = _config("churn-gate-better")
    client = MlflowClient(tracking_uri=mlflow_server, registry_uri=mlflow_server)
    weak = _register(trainings.worse, config, tmp_path / "r1" / "bundle", mlflow_server)
    assert weak["promote"] is True  # no champion yet
    strong = _register(trainings.good, config, tmp_path / "r2" / "bundle", mlflow_server)
    assert strong["promote"] is True
    assert strong["reason"].startswith("promoted: challenger")
    assert "champion v1" in strong["reason"]
    assert client.get_model_version_by_alias("churn-gate-better", CHAMPION).version == "2"

    # the same training again: scored exactly like its own registered bundle on the same rows
    again = _select(trainings.good, config, mlflow_server)["gate"]
    assert again["champion_version"] == "2"
    assert again["difference"] == 0.0
    assert again["champion"]["metrics"] == again["challenger"]["metrics"]
    assert again["promote"] is True  # not worse: a tie promotes, with tolerance 0


def test_provenance_decides_between_real_and_synthetic_data(
    mlflow_server: str, trainings: Trainings, tmp_path: Path
) -> None:
    name = "churn-gate-provenance"
    config = _config(name)
    client = MlflowClient(tracking_uri=mlflow_server, registry_uri=mlflow_server)
    synthetic_champion = _register(
        trainings.good, config, tmp_path / "r1" / "bundle", mlflow_server
    )
    assert synthetic_champion["synthetic"] is True

    # a real-data challenger replaces the synthetic champion, though it scores worse
    real = _register(
        _provenance(trainings.worse, False), config, tmp_path / "r2" / "bundle", mlflow_server
    )
    assert real["promote"] is True and real["synthetic"] is False
    assert "a real-data challenger replaces a synthetic champion" in real["reason"]
    assert client.get_model_version_by_alias(name, CHAMPION).version == "2"
    meta = verify_bundle(real["bundle"])
    gate = meta["selection"]["gate"]
    assert meta["synthetic"] is False and gate["basis"] == "provenance"
    assert gate["challenger"]["score"] < gate["champion"]["score"]  # recorded all the same

    # a synthetic challenger never replaces the real-data champion, though it scores better
    synthetic = _register(trainings.good, config, tmp_path / "r3" / "bundle", mlflow_server)
    assert synthetic["promote"] is False
    assert "a synthetic-data challenger never replaces a real-data champion" in synthetic["reason"]
    assert client.get_model_version_by_alias(name, CHAMPION).version == "2"
    run = client.get_run(synthetic["run_id"])
    assert run.data.tags["gate_decision"] == "keep_champion"
    decision = _decision(mlflow_server, run)["gate"]
    assert decision["champion"]["synthetic"] is False and decision["challenger"]["synthetic"]
    assert decision["challenger"]["score"] > decision["champion"]["score"]


def test_no_champion_only_when_the_registry_says_so(
    mlflow_server: str,
    trainings: Trainings,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from churn_components.registry.champion import champion_version
    from churn_components.registry.register import client_for
    from tests.fixtures.ports import free_port

    client = client_for(mlflow_server)
    assert champion_version(client, "churn-never-registered") is None
    client.create_registered_model("churn-without-champion")
    assert champion_version(client, "churn-without-champion") is None
    first = _select(trainings.good, _config("churn-without-champion"), mlflow_server)["gate"]
    assert first["promote"] is True and first["basis"] == "no_champion"

    # an unreachable registry is an error, not "no champion" (which would promote anything)
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "5")
    down = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(GateError, match=f"registry {down}: cannot read the champion") as raised:
        _select(trainings.good, _config("churn"), down)
    assert "selection.replace_unreadable_champion" in str(raised.value)

    # the operator may let the challenger through; the decision says so
    decision = _select(trainings.good, _config("churn", replace_unreadable_champion=True), down)[
        "gate"
    ]
    assert decision["promote"] is True and decision["basis"] == "operator_override"
    assert decision["replace_unreadable_champion"] is True
    assert f"registry {down}: cannot read the champion" in decision["champion_error"]
    assert decision["reason"].startswith("OPERATOR OVERRIDE")


def test_the_gate_scores_the_rows_the_challenger_was_evaluated_on(
    trainings: Trainings, tmp_path: Path
) -> None:
    good, config = trainings.good, trainings.config
    with pytest.raises(GateError, match=r"is not the one the challenger was evaluated on"):
        select_step(good.evaluation, good.data.train, config, data_metadata=good.data.raw_meta)
    test = read_dataset(good.data.test)
    test["Churn"] = test["Churn"].to_numpy()[::-1]  # same rows count, other labels
    write_dataset(test, tmp_path / "relabelled.parquet")
    with pytest.raises(GateError, match=r"\(other labels\)"):
        select_step(good.evaluation, tmp_path / "relabelled.parquet", config)

    # without a synthetic flag in the metadata, the customer ids tell the provenance
    gate = select_step(good.evaluation, good.data.test, config, data_metadata={})["gate"]
    assert gate["challenger"]["synthetic"] is True and gate["basis"] == "no_registry"
    assert gate["rows"] == trainings.rows


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _broken_bundle(good: Path, dst: Path, how: str) -> Path:
    """A copy of a real bundle that cannot be used, in one of three ways."""
    dst.parent.mkdir(parents=True)
    shutil.copytree(good, dst)
    meta = json.loads((dst / "metadata.json").read_text())
    model_json = dst / "model.json"
    if how == "tampered":  # bytes changed after the bundle was written: sha256 mismatch
        model_json.write_bytes(model_json.read_bytes() + b" ")
        return dst
    if how == "older format":  # a format-1 bundle: the model pickled, no format key
        data = pickle.dumps({"weights": [1.0, 2.0]})
        (dst / "model.pkl").write_bytes(data)
        meta["files"]["model.pkl"] = _sha256(data)
        meta.pop("format", None)
    else:  # "not a churn model": a model.json this code cannot rebuild
        doc = json.loads(model_json.read_text())
        doc["estimator"]["kind"] = "random-forest"
        data = json.dumps(doc).encode()
        model_json.write_bytes(data)
        meta["files"]["model.json"] = _sha256(data)
    (dst / "metadata.json").write_text(json.dumps(meta))
    return dst


def _register_handmade(bundle: Path, name: str, uri: str) -> str:
    """Register `bundle` as it is, and give it the champion alias."""
    from churn_components.registry.register import (
        client_for,
        next_version,
        register_bundle,
        start_run,
    )

    client = client_for(uri)
    with start_run(client, "churn-gate-handmade", None, "handmade") as run:
        version = next_version(client, name)
        registration = register_bundle(client, run.info.run_id, bundle, name, version, True, {})
    return registration.version


@pytest.mark.parametrize(
    ("how", "says"),
    [
        ("tampered", "has sha256"),
        ("older format", "bundle format 1 (pickled model.pkl) cannot be read by this code"),
        ("not a churn model", "unknown estimator kind 'random-forest'"),
    ],
)
def test_an_unreadable_champion_fails_the_run_closed(
    mlflow_server: str, trainings: Trainings, tmp_path: Path, how: str, says: str
) -> None:
    name = f"churn-gate-{how.replace(' ', '-')}"
    config = _config(name)
    good = _register(trainings.good, config, tmp_path / "r1" / "bundle", mlflow_server)
    broken = _register_handmade(
        _broken_bundle(Path(good["bundle"]), tmp_path / "broken" / "bundle", how),
        name,
        mlflow_server,
    )
    assert broken == "2"
    with pytest.raises(GateError) as raised:
        _select(trainings.good, config, mlflow_server)
    message = str(raised.value)
    assert "champion v2 cannot be compared" in message and says in message
    assert "selection.replace_unreadable_champion" in message
    client = MlflowClient(tracking_uri=mlflow_server, registry_uri=mlflow_server)
    assert client.get_model_version_by_alias(name, CHAMPION).version == "2"  # nothing moved


def test_the_operator_override_replaces_an_unreadable_champion_on_record(
    mlflow_server: str, trainings: Trainings, tmp_path: Path
) -> None:
    name = "churn-gate-override"
    good = _register(trainings.good, _config(name), tmp_path / "r1" / "bundle", mlflow_server)
    _register_handmade(
        _broken_bundle(Path(good["bundle"]), tmp_path / "broken" / "bundle", "tampered"),
        name,
        mlflow_server,
    )
    config = _config(name, replace_unreadable_champion=True)
    result = _register(trainings.good, config, tmp_path / "r3" / "bundle", mlflow_server)
    assert result["version"] == "3" and result["promote"] is True
    client = MlflowClient(tracking_uri=mlflow_server, registry_uri=mlflow_server)
    assert client.get_model_version_by_alias(name, CHAMPION).version == "3"
    # recorded in the bundle's metadata, the run's tags and its decision.json
    gate = verify_bundle(result["bundle"])["selection"]["gate"]
    assert gate["basis"] == "operator_override" and gate["replace_unreadable_champion"] is True
    assert gate["champion_version"] == "2" and "has sha256" in gate["champion_error"]
    run = client.get_run(result["run_id"])
    assert run.data.tags["gate_decision"] == "promote"
    assert run.data.tags["gate_reason"].startswith(
        "OPERATOR OVERRIDE (selection.replace_unreadable_champion): champion v2"
    )
    decision = _decision(mlflow_server, run)["gate"]
    assert decision == gate
