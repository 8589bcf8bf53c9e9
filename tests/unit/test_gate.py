"""The champion gate as a pure function: table-driven cases over scores and provenance.

Champion and challenger arrive already scored on the same held-out rows; the
gate applies the order of rules (no champion, unreadable champion, provenance,
score with tolerance) and records its evidence.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from churn_components.registry.select import (
    ScoredModel,
    UnreadableChampion,
    gate,
    metrics_on_rows,
    rank_candidates,
    selection_score,
)
from churn_components.training.evaluate import classification_metrics
from churn_core.config import SelectionConfig
from churn_core.errors import ConfigError, GateError, InvalidInput

ROWS = 1409
HAIR = 1e-9  # far below any real score step, far above floating-point noise


def scored(
    f1: float, roc_auc: float, *, synthetic: bool = False, version: str | None = "3"
) -> ScoredModel:
    return ScoredModel(
        kind="logistic",
        version=version,
        synthetic=synthetic,
        threshold=0.31,
        metrics={"f1": f1, "roc_auc": roc_auc, "pr_auc": 0.66, "ece": 0.02},
    )


def test_selection_rule_and_ranking() -> None:
    cfg = SelectionConfig(f1_weight=0.5, auc_weight=0.5)
    ranked = rank_candidates(
        {"a": {"f1": 0.60, "roc_auc": 0.85}, "b": {"f1": 0.64, "roc_auc": 0.84}}, cfg
    )
    assert [k for k, _ in ranked] == ["b", "a"]
    assert selection_score({"f1": 0.6, "roc_auc": 0.8}, cfg) == pytest.approx(0.7)
    with pytest.raises(InvalidInput):
        rank_candidates({}, cfg)


@dataclass(frozen=True)
class Case:
    name: str
    tolerance: float
    challenger_f1: float  # the champion: F1 0.62, ROC-AUC 0.84 (score 0.73)
    promote: bool


CHAMPION_F1, AUC = 0.62, 0.84
# every challenger has the champion's ROC-AUC, so its score differs by half its F1 difference
SCORE_CASES = [
    Case("exactly X worse promotes", 0.01, CHAMPION_F1 - 0.02, True),
    Case("a hair more than X worse keeps", 0.01, CHAMPION_F1 - 0.02 - 2 * HAIR, False),
    Case("less than X worse promotes", 0.01, CHAMPION_F1 - 0.01, True),
    Case("clearly worse keeps", 0.01, CHAMPION_F1 - 0.10, False),
    Case("better promotes", 0.01, CHAMPION_F1 + 0.01, True),
    Case("tolerance 0: a tie promotes", 0.0, CHAMPION_F1, True),
    Case("tolerance 0: a hair worse keeps", 0.0, CHAMPION_F1 - 2 * HAIR, False),
    Case("tolerance 0: a hair better promotes", 0.0, CHAMPION_F1 + 2 * HAIR, True),
    Case("tolerance 0: 0.005 worse keeps (passed before)", 0.0, CHAMPION_F1 - 0.01, False),
]


@pytest.mark.parametrize("case", SCORE_CASES, ids=[c.name for c in SCORE_CASES])
def test_score_rule_at_the_tolerance_edges(case: Case) -> None:
    cfg = SelectionConfig(gate_tolerance=case.tolerance)
    champion = scored(CHAMPION_F1, AUC)
    challenger = scored(case.challenger_f1, AUC, version=None)
    decision = gate(challenger, champion, cfg, rows=ROWS)
    assert decision.promote is case.promote
    assert decision.basis == "score"
    expected = 0.5 * (case.challenger_f1 - CHAMPION_F1)
    assert decision.difference == pytest.approx(expected, abs=1e-15)
    if case.promote:
        assert decision.reason.startswith("promoted:")
    else:
        assert decision.reason.startswith("kept champion v3:")
        assert "beyond the tolerance" in decision.reason


@dataclass(frozen=True)
class Provenance:
    name: str
    champion_synthetic: bool
    challenger_synthetic: bool
    challenger_f1: float
    promote: bool
    basis: str
    says: str


PROVENANCE_CASES = [
    Provenance(
        "real replaces synthetic, even when worse",
        True,
        False,
        0.30,
        True,
        "provenance",
        "a real-data challenger replaces a synthetic champion",
    ),
    Provenance(
        "synthetic never replaces real, even when better",
        False,
        True,
        0.90,
        False,
        "provenance",
        "a synthetic-data challenger never replaces a real-data champion",
    ),
    Provenance("synthetic vs synthetic: the score (worse)", True, True, 0.30, False, "score", ""),
    Provenance("synthetic vs synthetic: the score (better)", True, True, 0.90, True, "score", ""),
    Provenance("real vs real: the score (worse)", False, False, 0.30, False, "score", ""),
    Provenance("real vs real: the score (better)", False, False, 0.90, True, "score", ""),
]


@pytest.mark.parametrize("case", PROVENANCE_CASES, ids=[c.name for c in PROVENANCE_CASES])
def test_provenance_rules(case: Provenance) -> None:
    champion = scored(CHAMPION_F1, AUC, synthetic=case.champion_synthetic)
    challenger = scored(case.challenger_f1, AUC, synthetic=case.challenger_synthetic, version=None)
    decision = gate(challenger, champion, SelectionConfig(), rows=ROWS)
    assert (decision.promote, decision.basis) == (case.promote, case.basis)
    assert case.says in decision.reason
    # the scores are recorded whatever decided
    assert (
        decision.champion is not None and decision.champion["synthetic"] is case.champion_synthetic
    )
    assert decision.challenger["synthetic"] is case.challenger_synthetic


def test_the_decision_records_its_evidence() -> None:
    cfg = SelectionConfig(gate_tolerance=0.002)
    decision = gate(scored(0.60, 0.85, version=None), scored(0.63, 0.84), cfg, rows=ROWS)
    record = decision.as_dict()
    assert record["promote"] is False
    assert record["rows"] == ROWS and record["tolerance"] == 0.002
    assert record["rule"].startswith("0.5 x F1 + 0.5 x ROC-AUC on this run's held-out rows")
    assert record["challenger"]["score"] == pytest.approx(0.725)
    assert record["champion"]["score"] == pytest.approx(0.735)
    assert record["difference"] == pytest.approx(-0.01)
    assert record["champion"]["metrics"]["pr_auc"] == 0.66
    assert record["champion"]["threshold"] == 0.31 and record["champion_version"] == "3"
    assert record["challenger"]["synthetic"] is False and record["champion"]["synthetic"] is False
    assert record["replace_unreadable_champion"] is False and record["champion_error"] is None
    assert f"on the same {ROWS} held-out rows" in record["reason"]


def test_no_champion_promotes() -> None:
    first = gate(scored(0.3, 0.6, version=None), None, SelectionConfig(), rows=ROWS)
    assert first.promote and first.basis == "no_champion"
    assert "no champion yet" in first.reason and first.champion is None
    unregistered = gate(
        scored(0.3, 0.6, version=None), None, SelectionConfig(), rows=ROWS, registry=False
    )
    assert unregistered.promote and unregistered.basis == "no_registry"


def test_an_unreadable_champion_fails_closed() -> None:
    champion = UnreadableChampion(version="7", error="bundle format 1, this code reads 2")
    with pytest.raises(GateError) as raised:
        gate(scored(0.9, 0.9, version=None), champion, SelectionConfig(), rows=ROWS)
    message = str(raised.value)
    assert "champion v7 cannot be compared" in message
    assert "bundle format 1, this code reads 2" in message
    assert "selection.replace_unreadable_champion" in message

    # the registry could not even name the version
    with pytest.raises(GateError, match="the champion cannot be compared"):
        gate(
            scored(0.9, 0.9, version=None),
            UnreadableChampion(version=None, error="registry unreachable"),
            SelectionConfig(),
            rows=ROWS,
        )


def test_the_operator_override_replaces_an_unreadable_champion_and_says_so() -> None:
    cfg = SelectionConfig(replace_unreadable_champion=True)
    champion = UnreadableChampion(version="7", error="sha256 mismatch")
    decision = gate(scored(0.3, 0.6, version=None), champion, cfg, rows=ROWS)
    assert decision.promote and decision.basis == "operator_override"
    assert decision.reason.startswith("OPERATOR OVERRIDE (selection.replace_unreadable_champion)")
    assert "sha256 mismatch" in decision.reason
    record = decision.as_dict()
    assert record["replace_unreadable_champion"] is True
    assert record["champion_error"] == "sha256 mismatch" and record["champion_version"] == "7"
    assert record["champion"] is None and record["difference"] is None

    # the override changes nothing for a champion that can be read
    kept = gate(scored(0.3, 0.6, version=None), scored(0.62, 0.84), cfg, rows=ROWS)
    assert not kept.promote and kept.basis == "score"
    assert kept.as_dict()["replace_unreadable_champion"] is True


def test_metrics_on_rows_are_the_evaluation_metrics_at_the_given_threshold() -> None:
    rng = np.random.default_rng(3)
    y = (rng.random(500) < 0.27).astype(np.int64)
    p = np.clip(0.27 + 0.3 * (y - 0.27) + rng.normal(0, 0.2, 500), 0, 1)
    got = metrics_on_rows(y, p, 0.35)
    expected = classification_metrics(y, p, 0.35)
    assert got == {k: pytest.approx(expected[k]) for k in got}
    assert got["f1"] != metrics_on_rows(y, p, 0.5)["f1"]  # the threshold matters
    with pytest.raises(GateError, match="both classes"):
        metrics_on_rows(np.zeros(10, dtype=np.int64), np.full(10, 0.2), 0.5)
    with pytest.raises(GateError, match="non-finite"):
        metrics_on_rows(y, np.full(500, np.nan), 0.5)


def test_gate_configuration(tmp_path: Path) -> None:
    from churn_core.config import load_config

    project = load_config(Path(__file__).resolve().parents[2] / "model_config.yaml")
    assert project.selection.gate_tolerance == 0.0
    assert project.selection.replace_unreadable_champion is False
    bad = tmp_path / "model_config.yaml"
    bad.write_text("selection:\n  gate_tolerance: -0.01\n")
    with pytest.raises(ConfigError, match=r"selection\.gate_tolerance"):
        load_config(bad)
    bad.write_text("selection:\n  replace_unreadable_champion: maybe\n")
    with pytest.raises(ConfigError, match=r"selection\.replace_unreadable_champion"):
        load_config(bad)
