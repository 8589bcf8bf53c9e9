"""Publishing a bundle to the artifact store never overwrites another model's version."""

from __future__ import annotations

from pathlib import Path

import pytest

from churn_components.registry.package import publish_bundle
from churn_core.errors import StoreError
from churn_model.bundle import verify_bundle


def test_a_published_version_is_never_overwritten_by_another_model(
    bundle_dir, tmp_path: Path
) -> None:
    store = tmp_path / "store"
    first = publish_bundle(bundle_dir("logistic"), str(store), "churn", "1")
    published = store / "bundles" / "churn" / "1"
    before = {p.name: p.read_bytes() for p in published.iterdir() if p.is_file()}

    with pytest.raises(StoreError, match=r"bundles/churn/1 already holds another model"):
        publish_bundle(bundle_dir("xgboost"), str(store), "churn", "1")
    after = {p.name: p.read_bytes() for p in published.iterdir() if p.is_file()}
    assert after == before
    assert verify_bundle(published)["kind"] == "logistic"

    # the same model again is idempotent; another version is a new folder
    assert publish_bundle(bundle_dir("logistic"), str(store), "churn", "1") == first
    publish_bundle(bundle_dir("xgboost"), str(store), "churn", "2")
    assert verify_bundle(store / "bundles" / "churn" / "2")["kind"] == "xgboost"
