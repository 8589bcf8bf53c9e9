"""The model bundle written to Azure Blob (a real Azurite) and read back intact."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from churn_components.data.steps import read_dataset
from churn_core.store import open_store
from churn_model.bundle import load_model, verify_bundle
from tests.fixtures.azurite import Azurite
from tests.fixtures.training import prepare_data, small_config, train_and_register

pytestmark = pytest.mark.integration


def test_bundle_goes_to_blob_under_bundles_name_version(
    azurite: Azurite, synthetic_training_csv: Path, tmp_path: Path
) -> None:
    config = small_config()
    config = config.model_copy(
        update={"models": config.models.model_copy(update={"enabled": ("logistic",)})}
    )
    data = prepare_data(synthetic_training_csv, tmp_path / "data", config)
    store_uri = f"az://{azurite.container}/models"
    result = train_and_register(  # no registry: the version is a content hash
        data,
        config,
        tmp_path / "train",
        artifact_store=store_uri,
        connection_string=azurite.connection_string,
    )
    version = result["version"]
    assert version.startswith("sha-") and "model_uri" not in result
    assert result["bundle_uri"].endswith(f"/models/bundles/churn/{version}")

    store = open_store(store_uri, azurite.connection_string)
    local = store.get_dir(f"bundles/churn/{version}", tmp_path / "downloaded")
    meta = verify_bundle(local)
    assert meta["version"] == version and meta["synthetic"] is True
    model, _ = load_model(local)
    test = read_dataset(data.test)
    original, _ = load_model(result["bundle"])
    np.testing.assert_array_equal(model.predict_proba(test), original.predict_proba(test))
