"""Bundle format 2: the stored model is data (JSON, .npy, XGBoost's own file), never a pickle."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pytest

from churn_core.errors import BundleIntegrityError, BundleUnusable
from churn_core.io import PICKLE_PROTOCOL
from churn_model.bundle import (
    FORMAT,
    METADATA,
    MODEL,
    PICKLED_MODEL,
    load_model,
    model_files,
    verify_bundle,
    write_bundle,
)
from churn_model.model import ChurnModel
from churn_model.scorers import LogisticScorer
from churn_model.serialize import npy_bytes, read_npy
from tests.fixtures.bundles import fit_model, tamper, write_model

KINDS = ("logistic", "xgboost", "mlp")
CALIBRATIONS = (None, "sigmoid", "isotonic")


@pytest.fixture(scope="module")
def models(customer_split):
    """kind, calibration -> a fitted ChurnModel (built on first use)."""
    built: dict[tuple[str, str | None], ChurnModel] = {}

    def get(kind: str, calibration: str | None = None) -> ChurnModel:
        if (kind, calibration) not in built:
            built[kind, calibration] = fit_model(kind, customer_split[0], calibrator=calibration)
        return built[kind, calibration]

    return get


def _write(directory: Path, files: dict[str, bytes], **meta: object) -> Path:
    return write_bundle(directory, files, {"format": FORMAT, "name": "churn", **meta})


@pytest.mark.parametrize("calibration", CALIBRATIONS)
@pytest.mark.parametrize("kind", KINDS)
def test_every_kind_predicts_identically_after_load(
    kind, calibration, models, customer_split, tmp_path
):
    model = models(kind, calibration)
    bundle = write_model(tmp_path / "bundle", model, customer_split[0])
    loaded, meta = load_model(bundle)
    assert meta["format"] == FORMAT == 2 and meta["kind"] == kind
    assert loaded.kind == kind and loaded.threshold == model.threshold
    assert type(loaded.calibrator) is type(model.calibrator)
    frame = customer_split[1]
    np.testing.assert_array_equal(loaded.predict_proba(frame), model.predict_proba(frame))
    X = model.features.transform(frame)  # noqa: N806
    np.testing.assert_array_equal(loaded.features.transform(frame), X)
    np.testing.assert_array_equal(loaded.estimator.margin(X), model.estimator.margin(X))
    assert loaded.features.output_features == model.features.output_features
    for i in range(5):  # the serving path, one customer at a time
        cols = {c: frame[c].to_numpy()[i : i + 1] for c in frame.columns}
        assert loaded.predict_proba_columns(cols)[0] == model.predict_proba_columns(cols)[0]
    if kind == "xgboost":
        assert '"nthread":"1"' in loaded.estimator.booster.save_config().replace(" ", "")


@pytest.mark.parametrize("kind", KINDS)
def test_no_file_of_a_new_bundle_is_a_pickle(kind, bundle_dir):
    import xgboost as xgb

    bundle = bundle_dir(kind)
    files = sorted(p for p in bundle.rglob("*") if p.is_file())
    assert PICKLED_MODEL not in {p.name for p in files}
    for path in files:
        data = path.read_bytes()
        assert not data.startswith(b"\x80"), f"{path.name} starts like a pickle"
        # and each file is what its name says, read by a reader that cannot unpickle
        if path.suffix == ".json":
            json.loads(data)
        elif path.suffix == ".npy":
            assert data.startswith(b"\x93NUMPY")
            np.load(path, allow_pickle=False)
        elif path.suffix == ".ubj":
            xgb.Booster(model_file=bytearray(data))
        else:
            assert path.suffix in {".csv", ".md"}, path
            data.decode()
    recorded = json.loads((bundle / METADATA).read_text())["files"]
    assert sorted(recorded) == sorted(
        p.relative_to(bundle).as_posix() for p in files if p.name != METADATA
    )


def test_the_stored_model_is_deterministic_and_model_json_pins_it(models):
    model = models("mlp", "isotonic")
    files = model_files(model)
    assert model_files(model) == files  # same model, same bytes, same content-hash version
    document = json.loads(files[MODEL])
    named = [
        item
        for part in ("features", "estimator", "calibrator")
        for group in ("arrays", "files")
        for item in document[part][group].values()
    ]
    # model.json records every other file with its sha256, so its own sha256 names the model
    assert sorted(i["path"] for i in named) == sorted(set(files) - {MODEL})
    assert document["estimator"]["fields"]["architecture"] == {
        "n_features": len(model.features.output_features),
        "hidden": [16, 8],
        "dropout": 0.0,
    }


def test_a_format_1_bundle_is_refused_naming_both_versions(models, tmp_path):
    old = write_bundle(
        tmp_path / "old",
        {PICKLED_MODEL: pickle.dumps(models("logistic"), protocol=PICKLE_PROTOCOL)},
        {"name": "churn", "version": "3"},
    )
    assert verify_bundle(old)["files"]  # intact: the refusal is the format, not the bytes
    with pytest.raises(BundleUnusable) as info:
        load_model(old)
    message = str(info.value)
    assert "bundle format 1 (pickled model.pkl) cannot be read by this code" in message
    assert (
        "which reads format 2" in message
        and "retrain, or serve it with an older release" in message
    )


def test_the_sha256_check_comes_before_the_format_check(models, tmp_path):
    old = write_bundle(
        tmp_path / "old", {PICKLED_MODEL: pickle.dumps(models("logistic"))}, {"name": "churn"}
    )
    tamper(old, PICKLED_MODEL)
    with pytest.raises(BundleIntegrityError, match="model.pkl has sha256"):
        load_model(old)


def test_other_format_numbers_are_refused(models, tmp_path):
    files = model_files(models("logistic"))
    with pytest.raises(BundleUnusable, match="format 3 cannot be .*serve it with a newer release"):
        load_model(_write(tmp_path / "f3", files, format=3))
    with pytest.raises(BundleUnusable, match="bundle format '2' is not a format number"):
        load_model(_write(tmp_path / "fs", files, format="2"))


def test_model_json_may_name_only_files_whose_sha256_is_recorded(models, tmp_path):
    files = model_files(models("logistic"))
    del files["model/features/scale.npy"]
    with pytest.raises(BundleIntegrityError, match="names model/features/scale.npy, whose sha256"):
        load_model(_write(tmp_path / "b", files))


def _edited(files: dict[str, bytes], edit) -> dict[str, bytes]:
    document = json.loads(files[MODEL])
    edit(document)
    return {**files, MODEL: json.dumps(document).encode()}


def test_a_stored_feature_layout_this_code_does_not_produce_is_refused(models, tmp_path):
    def rename(doc):
        doc["features"]["fields"]["output_features"][5]["name"] = "SeniorCitizen=Maybe"

    files = _edited(model_files(models("logistic")), rename)
    with pytest.raises(
        BundleUnusable, match="first difference at column 5: stored 'SeniorCitizen=Maybe'"
    ):
        load_model(_write(tmp_path / "b", files))


def test_an_unknown_estimator_kind_is_refused(models, tmp_path):
    def forest(doc):
        doc["estimator"]["kind"] = "forest"

    files = _edited(model_files(models("xgboost")), forest)
    with pytest.raises(BundleUnusable, match="unknown estimator kind 'forest'"):
        load_model(_write(tmp_path / "b", files))


def test_an_estimator_of_another_width_is_refused(models, tmp_path):
    model = models("logistic")
    narrow = ChurnModel(model.features, LogisticScorer(coef=np.ones(3), intercept=0.0))
    with pytest.raises(BundleUnusable, match="expects 3 columns, the feature transform gives"):
        load_model(_write(tmp_path / "b", model_files(narrow)))


def test_a_member_edited_behind_model_json_is_refused(models, tmp_path):
    # metadata re-recorded to match the edited array, model.json not: its own sha256 catches it
    files = model_files(models("logistic"))
    coef = read_npy(files["model/estimator/coef.npy"])
    files["model/estimator/coef.npy"] = npy_bytes(coef * 2)
    with pytest.raises(
        BundleUnusable, match="coef.npy does not match the sha256 its entry records"
    ):
        load_model(_write(tmp_path / "b", files))


def test_an_mlp_of_another_architecture_cannot_be_stored(models):
    import torch

    from churn_model.scorers import MLPScorer

    model = models("mlp")
    n = len(model.features.output_features)
    other = torch.nn.Sequential(torch.nn.Linear(n, 4), torch.nn.Tanh(), torch.nn.Linear(4, 1))
    odd = ChurnModel(model.features, MLPScorer(other))
    with pytest.raises(ValueError, match="not the network mlp_module"):
        model_files(odd)


def test_a_bundle_carries_the_drift_detector_fitted_on_its_reference(bundle_dir, customer_split):
    import pandas as pd

    from churn_model.bundle import verify_bundle
    from churn_model.drift import load_detector

    bundle = bundle_dir("logistic")
    meta = verify_bundle(bundle)  # the detector's files are covered by the sha256 check
    assert meta["drift"]["dir"] == "drift" and meta["drift"]["backend"] == "scipy"
    assert any(name.startswith("drift/") for name in meta["files"])
    detector = load_detector(bundle / meta["drift"]["dir"])
    reference = pd.read_csv(bundle / meta["reference"]["file"])
    same = detector.test(reference)
    assert same.drift is False and same.n == meta["reference"]["rows"]
    shifted = customer_split[1].copy()
    shifted["MonthlyCharges"] = shifted["MonthlyCharges"] * 1.5
    result = detector.test(shifted)
    assert result.drift is True
    assert [f.name for f in result.features if f.drifted] == ["MonthlyCharges"]
