"""A bundle whose files verify but that this code cannot serve is refused at load."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest

from churn_core.errors import BundleUnusable
from churn_inference.loading import open_bundle
from churn_model.bundle import MODEL, write_bundle


class _Broken:
    """Looks like a ChurnModel, but cannot predict."""

    features = estimator = None

    def predict_proba_columns(self, cols: object) -> object:
        raise RuntimeError("trained with another feature layout")


def _bundle(tmp_path: Path, model: object) -> Path:
    return write_bundle(tmp_path / "b", {MODEL: pickle.dumps(model)}, {"name": "churn"})


def test_a_pickle_that_is_not_a_churn_model_is_refused(tmp_path: Path) -> None:
    with pytest.raises(BundleUnusable, match="holds a dict, not a ChurnModel"):
        open_bundle(str(_bundle(tmp_path, {"not": "a model"})))


def test_a_model_this_code_cannot_run_is_refused(tmp_path: Path) -> None:
    with pytest.raises(
        BundleUnusable, match="does not run with this code version.*another feature"
    ):
        open_bundle(str(_bundle(tmp_path, _Broken())))
