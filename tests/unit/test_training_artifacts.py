"""The training stage's own artifacts are data: a candidate and the evaluations read back exactly.

Every kind is trained on a small synthetic set and written with
`write_candidate` / `write_evaluations`; what is read back scores the
held-out rows exactly as before, and no archive holds a pickle. A damaged or
foreign archive is refused naming the file.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from churn_components.training import artifacts
from churn_components.training.evaluate import evaluate_candidate
from churn_components.training.train import labels, train_candidate
from churn_core.errors import InvalidInput
from churn_model.features import ChurnFeatures
from churn_model.serialize import jsonable, read_archive, write_archive
from tests.fixtures.bundles import customers, split
from tests.fixtures.training import small_config

CONFIG = small_config()


@pytest.fixture(scope="module")
def trained():
    train, test = split(customers(rows=600, seed=21), test_share=0.25)
    features = ChurnFeatures(tuple(CONFIG.features.tenure_bands)).fit(train)
    X_test = features.transform(test)  # noqa: N806
    y_train, y_test = labels(train), labels(test)
    out = {}
    for kind in ("logistic", "xgboost", "mlp"):
        candidate = train_candidate(train, features, kind, CONFIG)
        out[kind] = (candidate, evaluate_candidate(candidate, y_train, X_test, y_test, CONFIG))
    return out, X_test, y_test


def test_candidates_and_evaluations_read_back_exactly(trained, tmp_path: Path) -> None:
    models, X_test, y_test = trained  # noqa: N806
    for kind, (candidate, _) in models.items():
        path = tmp_path / f"{kind}.zip"
        artifacts.write_candidate(path, kind, candidate)
        stored_kind, back = artifacts.read_candidate(path)
        assert stored_kind == kind and back is not None
        np.testing.assert_array_equal(
            back.estimator.score(X_test), candidate.estimator.score(X_test)
        )
        np.testing.assert_array_equal(back.cv.oof, candidate.cv.oof)
        np.testing.assert_array_equal(back.cv.fold, candidate.cv.fold)
        assert back.cv.fold_params == jsonable(candidate.cv.fold_params)
        assert back.seconds == candidate.seconds
        assert not any(b"pickle" in data or data[:1] == b"\x80" for data in _files(path))
    evaluations = {kind: ev for kind, (_, ev) in models.items()}
    path = tmp_path / "evaluation.zip"
    artifacts.write_evaluations(path, evaluations, y_test)
    back, labels_back = artifacts.read_evaluations(path)
    np.testing.assert_array_equal(labels_back, y_test)
    for kind, ev in evaluations.items():
        got = back[kind]
        assert (got.thresholds, got.cv, got.test, got.test_at) == (
            ev.thresholds, ev.cv, ev.test, ev.test_at
        )  # fmt: skip
        np.testing.assert_array_equal(got.test_scores, ev.test_scores)
        np.testing.assert_array_equal(got.oof_calibrated, ev.oof_calibrated)
        if ev.calibrator is None:
            assert got.calibrator is None
        else:
            raw = np.linspace(0.01, 0.99, 50)
            np.testing.assert_array_equal(got.calibrator.apply(raw), ev.calibrator.apply(raw))
    skipped = tmp_path / "skipped.zip"
    artifacts.write_candidate(skipped, "mlp", None)
    assert artifacts.read_candidate(skipped) == ("mlp", None)


def _files(path: Path) -> list[bytes]:
    return list(read_archive(path.read_bytes()).values())


def test_a_damaged_or_foreign_artifact_is_refused_naming_the_file(trained, tmp_path) -> None:
    models, _, _ = trained
    path = tmp_path / "logistic.zip"
    artifacts.write_candidate(path, "logistic", models["logistic"][0])
    files = read_archive(path.read_bytes())
    array = next(name for name in files if name.endswith(".npy"))
    files[array] = files[array][:-8] + b"\x00" * 8
    damaged = tmp_path / "damaged.zip"
    damaged.write_bytes(write_archive(files))
    with pytest.raises(InvalidInput, match=r"damaged.zip: .*sha256"):
        artifacts.read_candidate(damaged)
    foreign = tmp_path / "foreign.zip"
    foreign.write_bytes(b"\x80\x05 a pickle, say")
    with pytest.raises(InvalidInput, match=r"foreign.zip: not a training artifact"):
        artifacts.read_candidate(foreign)
    with pytest.raises(InvalidInput, match=r"foreign.zip: not a training artifact"):
        artifacts.read_evaluations(foreign)
