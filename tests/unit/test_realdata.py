"""The real Telco CSV (CHURN_DATA_URI): the facts the platform relies on, and the contract holds."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from churn_components.data.ingest import ingest
from churn_components.data.preprocess import split_frame
from churn_components.data.validate import validate_csv
from churn_model.checks import check_request_columns
from churn_model.contract import FEATURE_NAMES
from churn_model.features import ChurnFeatures

pytestmark = pytest.mark.realdata


@pytest.fixture(scope="module")
def ingested(real_csv):
    return ingest(str(real_csv))


@pytest.fixture(scope="module")
def validated(ingested):
    return validate_csv(ingested.data, "real")


def test_ingest_facts(ingested):
    meta = ingested.metadata
    assert meta["rows"] == 7043
    assert meta["synthetic"] is False and meta["synthetic_rows"] == 0
    assert len(meta["columns"]) == 21


def test_contract_holds_with_nothing_rejected(validated):
    report = validated.report
    assert report["input_rows"] == report["accepted_rows"] == 7043
    assert report["rejected_rows"] == 0 and validated.rejected.empty
    validated.raise_if_over_limit(0.0)


def test_eleven_blank_total_charges_all_at_tenure_zero(validated):
    acc = validated.accepted
    blank = acc["TotalCharges"].isna()
    assert blank.sum() == 11
    assert (acc.loc[blank, "tenure"] == 0).all()
    assert (acc["tenure"] == 0).sum() == 11
    assert validated.report["known_quirks"]["blank_total_charges_tenure_0"] == 11


def test_churn_share(validated):
    share = (validated.accepted["Churn"] == "Yes").mean()
    assert round(share, 4) == 0.2654
    assert validated.report["churn_share"] == pytest.approx(share)


def test_ids_unique(validated):
    assert validated.accepted["customerID"].is_unique


def test_split_and_features_on_real_data(validated):
    split = split_frame(validated.accepted, 0.2, 42)
    assert (split.metadata["train_rows"], split.metadata["test_rows"]) == (5634, 1409)
    assert round(split.metadata["train_churn_share"], 3) == round(
        split.metadata["test_churn_share"], 3
    )
    features = ChurnFeatures().fit(split.train)
    out = features.transform(split.test)
    assert out.shape == (1409, len(features.output_features)) and np.isfinite(out).all()


def test_every_real_row_passes_the_request_check(validated):
    frame: pd.DataFrame = validated.accepted
    check_request_columns({c: frame[c].to_numpy() for c in FEATURE_NAMES})
