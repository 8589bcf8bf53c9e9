"""churn-scoring through kfp.local on the real Telco customers, three shards one after another.

A few broken rows are added (non-numeric charges, an unknown category, an id
repeated in two shards): the run writes the list, the rejected rows and the
summary, and its list is exactly `churn score`'s for the same file.
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

import pandas as pd
import pytest

from churn_components.scoring import steps
from churn_core.config import load_config
from churn_core.settings import Settings
from churn_model.contract import ID_COLUMN, LABEL_COLUMN
from churn_pipelines import cli
from tests.ci import missing
from tests.fixtures.data import real_csv_path

pytestmark = pytest.mark.integration


def test_local_scoring_run_on_the_real_customers_equals_churn_score(
    tmp_path: Path, bundle_dir, capsys: pytest.CaptureFixture[str]
) -> None:
    source = real_csv_path()
    if source is None:
        missing("the real Telco CSV (CHURN_DATA_URI)")
    raw = pd.read_csv(source, dtype=str, keep_default_na=False).drop(columns=[LABEL_COLUMN])
    raw.loc[5000, ID_COLUMN] = raw.loc[7, ID_COLUMN]  # the same id in shard 0 and shard 1
    raw.loc[6100, "TotalCharges"] = "twelve"
    raw.loc[3, "InternetService"] = "Satellite"
    customers = tmp_path / "customers.csv"
    raw.to_csv(customers, index=False)
    config = load_config("model_config.yaml")
    bundle = bundle_dir("xgboost")

    settings = Settings(
        artifact_root=str(tmp_path / "artifacts"),
        mlflow_tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}",
    )
    parser = argparse.ArgumentParser()
    cli.add_arguments(parser)
    args = parser.parse_args(
        [
            "run",
            "--local",
            "--pipeline",
            "scoring",
            "--input",
            str(customers),
            "--model-uri",
            str(bundle),
            "--shard-rows",
            "3000",
            "--chunk-rows",
            "1000",
            "--out",
            str(tmp_path / "out" / "list.parquet"),
        ]
    )
    assert cli.run(args, settings) == 0
    out, err = capsys.readouterr()
    assert len(re.findall(r"\] score-shard done in", err)) == 3  # 7,043 rows, 3 shards
    assert "7043 customers read, 7039 scored, 4 rejected" in out

    snapshot = next((tmp_path / "artifacts" / "scoring").iterdir())
    listed = pd.read_parquet(snapshot / "list.parquet")
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "out" / "list.parquet"), listed)
    assert (tmp_path / "out" / "list.csv").is_file() and (snapshot / "list.csv").is_file()
    rejected = pd.read_csv(snapshot / "rejected.csv", dtype=str)
    assert set(rejected["reason"]) == {"duplicate_id", "non_numeric", "unknown_category"}
    assert sorted(rejected.loc[rejected["reason"] == "duplicate_id", "row"].astype(int)) == [
        8,
        5001,
    ]
    summary = (snapshot / "summary.md").read_text()
    assert "| Contract |" in summary and "| tenure_band |" in summary
    meta = json.loads((snapshot / "metadata.json").read_text())
    assert meta["rejected_rows"] == 4 and set(meta["files"]) >= {"list.parquet", "rejected.csv"}

    # `churn score`'s list of the same file, model and chunks
    scorer = steps.load_scorer(bundle, config.explainer)
    alone = steps.score_file(
        str(customers),
        scorer,
        config.economics,
        max_rejected_share=config.data.max_rejected_share,
        chunk_rows=1000,
    )
    pd.testing.assert_frame_equal(listed, alone.scores[list(steps.LIST_COLUMNS)])
    pd.testing.assert_frame_equal(
        rejected.reset_index(drop=True), alone.rejected.astype(str).reset_index(drop=True)
    )
