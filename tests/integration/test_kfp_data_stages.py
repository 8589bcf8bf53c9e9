"""The four data components chained through kfp.local's SubprocessRunner on synthetic data."""

# No `from __future__ import annotations`: KFP reads the pipeline's annotations.
import json
from pathlib import Path
from typing import Any, NamedTuple

import pytest

from churn_components.data import steps as stages

pytestmark = pytest.mark.integration


@pytest.fixture
def kfp_local(tmp_path: Path) -> Path:
    """kfp.local with the SubprocessRunner in this environment; returns the pipeline root."""
    from kfp import local

    root = tmp_path / "kfp-root"
    local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(root))
    return root


def data_pipeline():
    from kfp import dsl
    from kfp.dsl import Artifact, Dataset

    from churn_components.data.component import add_data_stages

    class Outputs(NamedTuple):
        transform: Artifact
        description: Artifact
        train: Dataset
        report: Artifact

    @dsl.pipeline(name="churn-data-stages-test")
    def pipeline(source_uri: str, artifact_store: str, config_json: str) -> Outputs:
        tasks = add_data_stages(source_uri, artifact_store, config_json)
        return Outputs(
            transform=tasks.features.outputs["transform"],
            description=tasks.features.outputs["description"],
            train=tasks.preprocess.outputs["train"],
            report=tasks.validate.outputs["report"],
        )

    return pipeline


def config_json(**sections: dict[str, Any]) -> str:
    """The committed model_config.yaml as the pipeline's config_json, sections updated."""
    from churn_pipelines.training import config_json as to_json
    from tests.fixtures.training import project_config

    config = project_config()
    updates = {
        name: getattr(config, name).model_copy(update=values) for name, values in sections.items()
    }
    return to_json(config.model_copy(update=updates))


def test_data_stages_run_through_kfp_local(kfp_local, synthetic_csv, tmp_path):
    from churn_components.data.fit_features import load_features

    store = tmp_path / "store"
    run = data_pipeline()(
        source_uri=str(synthetic_csv), artifact_store=str(store), config_json=config_json()
    )
    transform = run.outputs["transform"]
    train = run.outputs["train"]
    report = run.outputs["report"]

    # artifacts carry sha256, rows and the synthetic flag, and match their files
    fitted = load_features(Path(transform.path).read_bytes(), transform.metadata["sha256"])
    assert transform.metadata["synthetic"] is True
    assert transform.metadata["n_features"] == len(fitted.output_features) > 50
    assert train.metadata["rows"] == 480 and train.metadata["synthetic"] is True
    assert train.metadata["sha256"] == stages.sha256_bytes(Path(train.path).read_bytes())
    assert len(stages.read_dataset(train.path)) == 480
    assert json.loads(Path(report.path).read_text())["accepted_rows"] == 600
    description = json.loads(Path(run.outputs["description"].path).read_text())
    assert description["synthetic"] is True
    assert description["features"][0] == {"name": "gender=Female", "sources": ["gender"]}
    assert list(fitted.get_feature_names_out()) == [f["name"] for f in description["features"]]

    # every stage also left a content-addressed snapshot in the artifact store
    snapshots = sorted(p.parent.parent.name for p in (store / "data").glob("*/*/metadata.json"))
    assert snapshots == ["features", "ingest", "preprocess", "validate"]
    [features_meta] = (store / "data" / "features").glob("*/metadata.json")
    published = json.loads(features_meta.read_text())
    assert published["synthetic"] is True
    assert (features_meta.parent / stages.TRANSFORM).read_bytes() == Path(
        transform.path
    ).read_bytes()
    assert transform.metadata["format"] == 2


def test_validation_failure_stops_the_pipeline_with_its_reason(
    kfp_local, synthetic_raw_frame, tmp_path, capfd
):
    bad = synthetic_raw_frame.copy()
    bad.loc[:59, "Contract"] = "Weekly"  # 60 of 600 rows
    src = tmp_path / "bad.csv"
    bad.to_csv(src, index=False)
    with pytest.raises(RuntimeError, match="validate-data"):
        data_pipeline()(source_uri=str(src), artifact_store="", config_json=config_json())
    logs = capfd.readouterr()
    text = logs.out + logs.err
    assert "DataContractError" in text
    assert "60 of 600 rows rejected (share 0.1000 > limit 0.01)" in text
    assert "unknown_category 60" in text


def test_every_data_stage_reads_its_parameters_from_config_json(
    kfp_local, synthetic_raw_frame, tmp_path
):
    """Another seed, test size, bands and rejected-share limit, given only through config_json."""
    from churn_components.data.fit_features import load_features
    from churn_components.data.preprocess import split_frame
    from churn_components.data.validate import validate_frame
    from churn_model.contract import ID_COLUMN

    bad = synthetic_raw_frame.copy()
    bad.loc[:59, "Contract"] = "Weekly"  # 60 of 600 rows: above the committed 0.01 limit
    src = tmp_path / "bad.csv"
    bad.to_csv(src, index=False)
    changed = config_json(
        data={"max_rejected_share": 0.2},
        split={"seed": 7, "test_size": 0.25},
        features={"tenure_bands": (24,)},
    )
    run = data_pipeline()(source_uri=str(src), artifact_store="", config_json=changed)

    # validate: the limit from config_json let the 10% through
    report = json.loads(Path(run.outputs["report"].path).read_text())
    assert report["max_rejected_share"] == 0.2 and report["accepted_rows"] == 540
    # preprocess: the split is the one seed 7 and test_size 0.25 make, not the committed one
    accepted = validate_frame(bad.astype(str)).accepted
    ids = set(stages.read_dataset(run.outputs["train"].path)[ID_COLUMN])
    assert len(ids) == 405
    assert ids == set(split_frame(accepted, test_size=0.25, seed=7).train[ID_COLUMN])
    assert ids != set(split_frame(accepted, test_size=0.25, seed=42).train[ID_COLUMN])
    # features: one band edge, so two tenure bands
    transform = run.outputs["transform"]
    fitted = load_features(Path(transform.path).read_bytes(), transform.metadata["sha256"])
    assert fitted.tenure_bands == (24,)
    bands = [f.name for f in fitted.output_features if f.name.startswith("tenure_band_")]
    assert bands == ["tenure_band_0_24", "tenure_band_24_inf"]
