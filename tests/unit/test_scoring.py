"""The retention list: chunked reading, the contract per chunk, ranking, the CLI."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from churn_components.scoring import steps, summary
from churn_core.config import load_config
from churn_core.errors import DataContractError
from churn_model.contract import ID_COLUMN, LABEL_COLUMN
from churn_model.synthetic import generate_frame

CONFIG = load_config("model_config.yaml")
ECON = CONFIG.economics


@pytest.fixture(scope="module")
def scorer(bundle_dir):
    return steps.load_scorer(bundle_dir("xgboost"), CONFIG.explainer)


def _raw(rows=300, seed=3):
    return generate_frame(rows=rows, seed=seed).astype(str).drop(columns=[LABEL_COLUMN])


def test_scores_every_customer_ranked_by_expected_value(scorer, tmp_path):
    raw = _raw()
    path = tmp_path / "customers.csv"
    raw.to_csv(path, index=False)
    result = steps.score_file(str(path), scorer, ECON, max_rejected_share=0.0, chunk_rows=70)
    s = result.scores
    assert len(s) == len(raw) and set(s[ID_COLUMN]) == set(raw[ID_COLUMN])
    assert s["rank"].tolist() == list(range(1, len(s) + 1))
    assert (np.diff(s["expected_value"].to_numpy()) <= 0).all()
    ev = s["churn_probability"] * ECON.offer_acceptance * ECON.customer_value - ECON.offer_cost
    np.testing.assert_allclose(s["expected_value"], ev)
    # same probabilities as the model on the whole frame at once
    frame = raw.set_index(ID_COLUMN).loc[s[ID_COLUMN]].reset_index()
    direct = scorer.model.predict_proba_columns(steps.columns_of(_typed(frame)))
    np.testing.assert_array_equal(s["churn_probability"].to_numpy(), direct)
    assert (s["churn"] == (s["churn_probability"] >= scorer.threshold)).all()
    # reasons and a suggestion with its what-if, for some customers at least
    assert s["reasons"].str.len().gt(0).any()
    offered = s["what_if_probability"].notna()
    assert offered.any()
    assert (s.loc[offered, "suggestion"].str.len() > 0).all()
    assert len(result.rejected) == 0


def _typed(frame):
    from churn_components.data.validate import validate_frame

    return validate_frame(frame, label_optional=True).accepted


def test_parquet_and_no_reasons_give_the_same_probabilities(scorer, tmp_path):
    raw = _raw(200)
    csv, pq = tmp_path / "c.csv", tmp_path / "c.parquet"
    raw.to_csv(csv, index=False)
    raw.to_parquet(pq, index=False)
    a = steps.score_file(str(csv), scorer, ECON, max_rejected_share=0.0, chunk_rows=64)
    b = steps.score_file(
        str(pq), scorer, ECON, max_rejected_share=0.0, chunk_rows=50, reasons=False
    )
    pd.testing.assert_series_equal(a.scores["churn_probability"], b.scores["churn_probability"])
    assert (b.scores["reasons"] == "").all()


def test_bad_rows_are_reported_and_never_scored(scorer, tmp_path):
    raw = _raw(100)
    raw.loc[3, "Contract"] = "Forever"
    raw.loc[10, "MonthlyCharges"] = "lots"
    raw.loc[60, ID_COLUMN] = raw.loc[5, ID_COLUMN]  # same id, different chunk
    raw.loc[20, ID_COLUMN] = raw.loc[21, ID_COLUMN]  # same id, same chunk
    path = tmp_path / "bad.csv"
    raw.to_csv(path, index=False)
    with pytest.raises(DataContractError, match="rejected"):
        steps.score_file(str(path), scorer, ECON, max_rejected_share=0.01, chunk_rows=40)
    result = steps.score_file(str(path), scorer, ECON, max_rejected_share=0.5, chunk_rows=40)
    rej = result.rejected
    got = set(zip(rej["row"], rej["column"], rej["reason"], strict=True))
    assert got == {
        (4, "Contract", "unknown_category"),
        (11, "MonthlyCharges", "non_numeric"),
        (6, ID_COLUMN, "duplicate_id"),
        (61, ID_COLUMN, "duplicate_id"),
        (21, ID_COLUMN, "duplicate_id"),
        (22, ID_COLUMN, "duplicate_id"),
    }
    assert rej.loc[rej["row"] == 4, "value"].item() == "Forever"
    assert rej.loc[rej["row"] == 11, "value"].item() == "lots"
    bad_ids = {raw.loc[i, ID_COLUMN] for i in (3, 10, 5, 21)}
    assert not bad_ids & set(result.scores[ID_COLUMN])
    assert len(result.scores) == 100 - 6
    assert result.report["rejected_rows"] == 6
    assert result.report["reasons"]["duplicate_id"] == 4


def test_missing_columns_are_a_clear_error(scorer, tmp_path):
    path = tmp_path / "short.csv"
    _raw(20).drop(columns=["tenure", "Contract"]).to_csv(path, index=False)
    with pytest.raises(DataContractError, match=r"missing column\(s\) \['tenure', 'Contract'\]"):
        steps.score_file(str(path), scorer, ECON, max_rejected_share=1.0)


def test_a_label_column_is_checked_when_present(scorer, tmp_path):
    raw = generate_frame(rows=50, seed=1).astype(str)
    raw.loc[2, LABEL_COLUMN] = "Maybe"
    path = tmp_path / "labelled.csv"
    raw.to_csv(path, index=False)
    result = steps.score_file(str(path), scorer, ECON, max_rejected_share=1.0)
    assert result.rejected[["row", "reason"]].values.tolist() == [[3, "bad_label"]]


def test_summary_adds_up(scorer, tmp_path):
    raw = _raw(150)
    path = tmp_path / "c.csv"
    raw.to_csv(path, index=False)
    s = steps.score_file(str(path), scorer, ECON, max_rejected_share=0.0).scores
    numbers = summary.summarize(s, ECON, CONFIG.features.tenure_bands, top=40)
    p = s["churn_probability"]
    assert numbers["total"]["expected_churners"] == pytest.approx(p.sum())
    assert numbers["total"]["revenue_at_risk"] == pytest.approx(p.sum() * ECON.customer_value)
    assert numbers["total"]["top_n_value"] == pytest.approx(s["expected_value"].iloc[:40].sum())
    for groups in numbers["by"].values():
        assert sum(g["customers"] for g in groups.values()) == len(s)
        assert sum(g["top_n_customers"] for g in groups.values()) == 40
    assert set(numbers["by"]["tenure_band"]) <= {"0-12", "13-24", "25-48", "49-60", "61+"}
    assert "# Retention list" in summary.markdown(numbers)
    assert summary.distribution_png(s, 0.3)[:8] == b"\x89PNG\r\n\x1a\n"


def test_cli_writes_the_list(bundle_dir, tmp_path, capsys):
    from churn_core.cli import main

    path = tmp_path / "c.csv"
    _raw(80).to_csv(path, index=False)
    out = tmp_path / "out" / "list.parquet"
    code = main(
        [
            "score",
            "--input",
            str(path),
            "--out",
            str(out),
            "--model-uri",
            str(bundle_dir("xgboost")),
        ]
    )
    assert code == 0
    table = pd.read_parquet(out)
    assert list(table.columns) == list(steps.LIST_COLUMNS)
    assert len(pd.read_csv(out.with_suffix(".csv"))) == 80
    assert json.loads((out.parent / "list.report.json").read_text())["accepted_rows"] == 80
    assert "Expected churners" in capsys.readouterr().out


def test_validation_needs_the_label_unless_told_it_is_optional():
    from churn_components.data.validate import validate_frame

    raw = _raw(30)
    with pytest.raises(DataContractError, match=r"missing column\(s\) \['Churn'\]"):
        validate_frame(raw)
    result = validate_frame(raw, label_optional=True)
    assert len(result.accepted) == 30 and result.report["churn_share"] is None
