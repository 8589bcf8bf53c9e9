"""A bundle whose files verify but that this code cannot serve is refused at load."""

from __future__ import annotations

import pathlib
import pickle
from pathlib import Path

import numpy as np
import pytest

from churn_core.errors import BundleUnusable
from churn_core.io import PICKLE_PROTOCOL
from churn_inference.loading import open_bundle
from churn_model.bundle import FORMAT, PICKLED_MODEL, model_files, write_bundle
from churn_model.model import ChurnModel
from churn_model.scorers import LogisticScorer


class _TouchOnUnpickle:
    """Unpickling this creates `marker`: proof that a loader unpickled it."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[Path]]:
        return (pathlib.Path.touch, (self.marker,))


def test_a_format_1_bundle_is_refused_and_never_unpickled(tmp_path: Path) -> None:
    marker = tmp_path / "unpickled"
    old = write_bundle(
        tmp_path / "old",
        {PICKLED_MODEL: pickle.dumps(_TouchOnUnpickle(marker), protocol=PICKLE_PROTOCOL)},
        {"name": "churn", "version": "3"},
    )
    with pytest.raises(
        BundleUnusable,
        match=r"bundle format 1 \(pickled model.pkl\) cannot be read by this code, which reads "
        r"format 2 .*retrain, or serve it with an older release",
    ):
        open_bundle(str(old))
    assert not marker.exists()


def test_a_model_this_code_cannot_run_is_refused(tmp_path: Path, bundle_dir) -> None:
    from churn_model.bundle import load_model

    good, _ = load_model(bundle_dir("logistic"))
    coef = good.estimator.coef.copy()
    coef[0] = np.nan  # verifies and rebuilds, but predicts no probability
    broken = ChurnModel(good.features, LogisticScorer(coef=coef, intercept=0.0), threshold=0.5)
    bundle = write_bundle(tmp_path / "b", model_files(broken), {"format": FORMAT, "name": "churn"})
    with pytest.raises(
        BundleUnusable, match=r"self-test prediction .*nan.* is not one probability"
    ):
        open_bundle(str(bundle))
