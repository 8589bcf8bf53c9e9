"""Attributions mapped back to customer attributes, reasons, retention suggestions, what-ifs."""

from __future__ import annotations

import dataclasses
import re

import numpy as np
import orjson
import pandas as pd
import pytest
from scipy.special import expit

from churn_core.config import ExplainerConfig
from churn_core.errors import ConfigError
from churn_inference.loading import open_bundle
from churn_model.bundle import load_model
from churn_model.calibration import IsotonicCalibrator, SigmoidCalibrator
from churn_model.contract import FEATURE_NAMES
from churn_model.explain import (
    Explainer,
    attribute_matrix,
    changed_columns,
    check_explainer_config,
    load_background,
)
from churn_model.features import OutputFeature
from churn_model.model import ChurnModel
from churn_model.scorers import LogisticScorer
from tests.fixtures.training import project_config

KINDS = ("logistic", "xgboost", "mlp")
# a sigmoid calibrator that bends the scale, and an isotonic one with a flat step
# (0.2 .. 0.5 -> 0.15): on it, removing an attribution can change nothing at all
CALIBRATORS = {
    "none": None,
    "sigmoid": SigmoidCalibrator(slope=0.8, intercept=-0.3),
    "isotonic": IsotonicCalibrator(
        x=np.array([0.0, 0.2, 0.5, 0.8, 1.0]), y=np.array([0.02, 0.15, 0.15, 0.6, 0.95])
    ),
}
# how exactly base + sum(attributions) meets the margin: TreeSHAP in float32, linear
# exactly, integrated gradients up to its integration error (relative to the spread)
ADDS_UP = {"xgboost": 1e-4, "logistic": 1e-9, "mlp": 0.03}


def columns(frame):
    return {
        n: frame[n].to_numpy(dtype=object if frame[n].dtype == object else np.float64)
        for n in FEATURE_NAMES
    }


@pytest.fixture(scope="module")
def config():
    """The committed explainer section (context attributes, the retention catalogue)."""
    return project_config().explainer


@pytest.fixture(scope="module")
def held_out(customer_split):
    return customer_split[1].reset_index(drop=True)


def make_explainer(bundle_dir, kind, calibrator="none", config=None, model=None):
    """An Explainer of the fixture bundle's own model (not accelerated), with a calibrator."""
    loaded, meta = load_model(bundle_dir(kind))
    model = dataclasses.replace(model or loaded, calibrator=CALIBRATORS[calibrator])
    background = load_background(bundle_dir(kind), meta)
    return Explainer(model, float(meta["threshold"]), background=background, config=config)


def reason_slots(exp):
    return [(i, r) for i, row in enumerate(exp.reasons) for r in row]


# -- attributions ---------------------------------------------------------------------------


def test_engineered_columns_split_evenly_and_keep_the_total():
    feats = [
        OutputFeature("Contract=Two year", ("Contract",)),
        OutputFeature("charges_per_tenure_month", ("TotalCharges", "tenure")),
    ]
    m = attribute_matrix(feats, ["tenure", "Contract", "TotalCharges"])
    assert m.tolist() == [[0.0, 1.0, 0.0], [0.5, 0.0, 0.5]]
    col_attr = np.array([[0.3, -0.8]])
    assert (col_attr @ m).sum() == pytest.approx(col_attr.sum())


@pytest.mark.parametrize("calibrator", list(CALIBRATORS))
@pytest.mark.parametrize("kind", KINDS)
def test_attributions_sum_to_the_raw_margin_and_points_use_the_served_probability(
    bundle_dir, held_out, config, kind, calibrator
):
    explainer = make_explainer(bundle_dir, kind, calibrator, config)
    model = explainer.model
    cal = CALIBRATORS[calibrator]
    frame = held_out.iloc[:80]
    exp = explainer.explain_columns(columns(frame))
    X = model.features.transform(frame)  # noqa: N806
    margin = model.estimator.margin(X)
    assert exp.attributions.shape == (80, len(FEATURE_NAMES))
    # attributions (log-odds of the raw scorer) sum to margin(x) - base_log_odds
    np.testing.assert_array_equal(exp.margin, margin)
    gap = np.abs(exp.base + exp.attributions.sum(axis=1) - margin)
    assert gap.max() <= ADDS_UP[kind] * max(1.0, float(np.abs(margin - exp.base).max()))
    # the served probability is calibrator(sigmoid(margin)), exactly the model's own
    np.testing.assert_array_equal(exp.probability, model.predict_proba(frame))
    raw = expit(margin)
    np.testing.assert_allclose(exp.probability, cal.apply(raw) if cal else raw, atol=1e-6)
    # a reason's points: served minus calibrator(sigmoid(margin - attribution))
    slots = reason_slots(exp)
    assert slots
    served = exp.probability[[i for i, _ in slots]]
    removed = expit(margin[[i for i, _ in slots]] - np.array([r.log_odds for _, r in slots]))
    expected = (served - (cal.apply(removed) if cal else removed)) * 100
    got = np.array([r.probability_points for _, r in slots])
    np.testing.assert_allclose(got, expected, rtol=1e-9, atol=1e-9)
    if cal is not None:  # the calibrated scale, not the raw one
        raw_points = (expit(margin[[i for i, _ in slots]]) - removed) * 100
        assert np.abs(got - raw_points).max() > 0.5
    statement = explainer.additivity
    assert "base_log_odds + sum(attributions) = log_odds" in statement
    assert ("calibrator(sigmoid(log_odds))" in statement) == (cal is not None)


def test_treeshap_is_exact_against_xgboost(bundle_dir, held_out):
    import xgboost as xgb

    served = open_bundle(str(bundle_dir("xgboost")))
    frame = held_out.iloc[:5]
    X = served.model.features.transform(frame)  # noqa: N806
    contribs = served.model.estimator.booster.predict(xgb.DMatrix(X), pred_contribs=True)
    exp = served.explainer.explain_columns(columns(frame))
    by_attr = contribs[:, :-1] @ served.explainer.attributor.to_attributes
    np.testing.assert_allclose(exp.attributions, by_attr, rtol=1e-6, atol=1e-6)


def test_logistic_attribution_is_coef_times_distance_from_background_mean(bundle_dir, held_out):
    served = open_bundle(str(bundle_dir("logistic")))
    frame = held_out.iloc[:3]
    X = served.model.features.transform(frame)  # noqa: N806
    background = load_background(bundle_dir("logistic"), served.metadata)
    assert background is not None
    cols_attr = served.model.estimator.coef * (X - background.mean(axis=0))
    exp = served.explainer.explain_columns(columns(frame))
    np.testing.assert_allclose(
        exp.attributions, cols_attr @ served.explainer.attributor.to_attributes, atol=1e-12
    )


# -- reasons: the minimum effect ------------------------------------------------------------


@pytest.mark.parametrize("calibrator", list(CALIBRATORS))
@pytest.mark.parametrize("kind", KINDS)
def test_reasons_are_the_top_k_effects_of_at_least_the_minimum(
    bundle_dir, held_out, config, kind, calibrator
):
    explainer = make_explainer(bundle_dir, kind, calibrator, config)
    frame = held_out.iloc[:200]
    exp = explainer.explain_columns(columns(frame))
    points = explainer.effects(exp.margin, exp.probability, exp.attributions)
    minimum = config.min_effect_points
    assert minimum >= 0.1
    for i, row in enumerate(exp.reasons):
        assert len(row) <= config.top_k
        for r in row:
            assert r.probability_points >= minimum and r.log_odds > 0
            assert " 0.0 points" not in r.text and f"by {r.probability_points:.1f} points" in r.text
        shown = [r.probability_points for r in row]
        assert shown == sorted(shown, reverse=True)
        # nothing left out that should be there: every attribute of at least the minimum
        # effect is a reason, unless top_k reasons with larger effects are shown
        left_out = [
            points[i, j]
            for j, a in enumerate(FEATURE_NAMES)
            if points[i, j] >= minimum and exp.attributions[i, j] > 0
            if a not in {r.attribute for r in row}
        ]
        if left_out:
            assert len(row) == config.top_k and max(left_out) <= min(shown)


def test_a_larger_minimum_gives_fewer_reasons_and_none_is_an_answer(bundle_dir, held_out, config):
    strict = config.model_copy(update={"min_effect_points": 10.0})
    explainer = make_explainer(bundle_dir, "logistic", config=strict)
    exp = explainer.explain_columns(columns(held_out.iloc[:200]))
    counts = [len(row) for row in exp.reasons]
    assert 0 in counts and any(0 < c < strict.top_k for c in counts)
    assert all(r.probability_points >= 10.0 for _, r in reason_slots(exp))
    none = counts.index(0)
    assert exp.as_dicts()[none]["reasons"] == []
    lenient = make_explainer(bundle_dir, "logistic", config=config)
    assert sum(counts) < sum(
        len(r) for r in lenient.explain_columns(columns(held_out.iloc[:200])).reasons
    )


def test_a_minimum_below_a_tenth_of_a_point_is_refused():
    with pytest.raises(ValueError, match="min_effect_points"):
        ExplainerConfig(min_effect_points=0.0)
    with pytest.raises(ValueError, match="min_effect_points"):
        ExplainerConfig(min_effect_points=0.05)


# -- context attributes ---------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_context_attributes_explain_but_never_carry_a_suggestion(
    bundle_dir, held_out, config, kind
):
    assert {"gender", "SeniorCitizen", "Partner", "Dependents"} <= set(config.context)
    explainer = make_explainer(bundle_dir, kind, config=config)
    exp = explainer.explain_columns(columns(held_out.iloc[:300]))
    slots = reason_slots(exp)
    context = [r for _, r in slots if r.attribute in config.context]
    assert context, "no context attribute among the reasons: nothing was tested"
    assert all(r.suggestion == "" and r.what_if is None for r in context)
    assert any(r.suggestion for _, r in slots)  # the actionable ones still get theirs


def test_making_an_attribute_context_removes_its_suggestions(bundle_dir, held_out, config):
    frame = held_out[held_out["Contract"] == "Month-to-month"].iloc[:40]
    actionable = make_explainer(bundle_dir, "logistic", config=config).explain_columns(
        columns(frame)
    )
    contract = [r for _, r in reason_slots(actionable) if r.attribute == "Contract"]
    assert contract and all(r.suggestion and r.what_if for r in contract)
    retention = {k: v for k, v in config.retention.items() if k != "Contract"}
    as_context = config.model_copy(
        update={"context": (*config.context, "Contract"), "retention": retention}
    )
    exp = make_explainer(bundle_dir, "logistic", config=as_context).explain_columns(columns(frame))
    again = [r for _, r in reason_slots(exp) if r.attribute == "Contract"]
    assert [r.text for r in again] == [r.text for r in contract]  # it still explains
    assert all(r.suggestion == "" and r.what_if is None for r in again)


# -- suggestions tied to the values that raise the risk ------------------------------------

TABLE_RETENTION = {
    "Contract": [
        {
            "when": "Month-to-month",
            "suggestion": "Offer a contract.",
            "set": {"Contract": "One year"},
        }
    ],
    "PaymentMethod": [
        {
            "when": ["Electronic check", "Mailed check"],
            "suggestion": "Automatic payment.",
            "set": {"PaymentMethod": "Credit card (automatic)"},
        }
    ],
    "TotalCharges": [{"when": {"min": 3000}, "suggestion": "Reward the spend."}],
}


@pytest.mark.parametrize(
    ("column", "weight", "attribute", "value", "reason", "suggestion"),
    [
        # month-to-month raises the risk: the contract offer fires
        ("Contract=Month-to-month", 1.5, "Contract", "Month-to-month", True, "Offer a contract."),
        # month-to-month lowers the risk: no reason, no offer
        ("Contract=Month-to-month", -1.5, "Contract", "Month-to-month", False, ""),
        # a two-year contract lowers the risk, so being month-to-month raises it
        ("Contract=Two year", -1.5, "Contract", "Month-to-month", True, "Offer a contract."),
        # one year raises the risk: a reason, but the offer is for month-to-month only
        ("Contract=One year", 1.5, "Contract", "One year", True, ""),
        ("Contract=Month-to-month", 1.5, "Contract", "Two year", False, ""),
        # a list of categories
        (
            "PaymentMethod=Mailed check",
            1.5,
            "PaymentMethod",
            "Mailed check",
            True,
            "Automatic payment.",
        ),
        ("PaymentMethod=Mailed check", -1.5, "PaymentMethod", "Mailed check", False, ""),
        # a range: high spend raises the risk and is in the range: fires
        ("TotalCharges", 1.0, "TotalCharges", 6000.0, True, "Reward the spend."),
        # low spend raises the risk: a reason, but low spend is not what the reward is for
        ("TotalCharges", -1.0, "TotalCharges", 100.0, True, ""),
        # high spend lowers the risk: nothing
        ("TotalCharges", -1.0, "TotalCharges", 6000.0, False, ""),
    ],
)
def test_a_suggestion_fires_only_for_matching_values_that_raise_the_risk(
    bundle_dir, held_out, column, weight, attribute, value, reason, suggestion
):
    """A logistic model with one non-zero coefficient: the sign of the attribution is known."""
    base, meta = load_model(bundle_dir("logistic"))
    names = [f.name for f in base.features.output_features]
    coef = np.zeros(len(names))
    coef[names.index(column)] = weight
    model = ChurnModel(base.features, LogisticScorer(coef=coef, intercept=0.0))
    background = load_background(bundle_dir("logistic"), meta)
    config = ExplainerConfig(retention=TABLE_RETENTION)
    explainer = Explainer(model, 0.5, background=background, config=config)
    customer = held_out.iloc[[0]].copy()
    customer[attribute] = value
    exp = explainer.explain_columns(columns(customer))
    found = [r for r in exp.reasons[0] if r.attribute == attribute]
    assert bool(found) == reason
    if found:
        assert found[0].suggestion == suggestion
        assert (found[0].what_if is not None) == bool(suggestion and attribute != "TotalCharges")
    assert all(r.attribute == attribute for r in exp.reasons[0])  # nothing else moves the risk


def test_value_blind_rules_are_refused_and_the_catalogue_has_none(tmp_path):
    path = tmp_path / "model_config.yaml"
    path.write_text(
        'explainer:\n  retention:\n    tenure:\n      - when: "*"\n        suggestion: x\n'
    )
    from churn_core.config import load_config

    with pytest.raises(ConfigError, match=r"explainer\.retention\.tenure\[0\].*fires whatever"):
        load_config(path)
    catalogue = project_config().explainer.retention
    assert catalogue and all(a.when != "*" for actions in catalogue.values() for a in actions)


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ({"context": ["gender", "gender"]}, "context names gender more than once"),
        (
            {"context": ["gender"], "retention": {"gender": [{"when": "Male", "suggestion": "x"}]}},
            "retention.gender: gender is a context attribute",
        ),
        (
            {
                "context": ["Partner"],
                "retention": {
                    "Contract": [
                        {"when": "Month-to-month", "suggestion": "x", "set": {"Partner": "Yes"}}
                    ]
                },
            },
            r"retention.Contract\[0\].set: changes context attribute\(s\) Partner",
        ),
        (
            {"retention": {"tenure": [{"when": {}, "suggestion": "x"}]}},
            "a range needs min, max, above or below",
        ),
        (
            {"retention": {"tenure": [{"when": {"min": 12, "max": 6}, "suggestion": "x"}]}},
            "the range matches no number",
        ),
        (
            {"retention": {"tenure": [{"when": {"min": 1, "above": 0}, "suggestion": "x"}]}},
            "give min or above, not both",
        ),
        ({"retention": {"Contract": [{"when": [], "suggestion": "x"}]}}, "an empty list"),
    ],
)
def test_the_config_refuses_rules_that_cannot_be_right(tmp_path, section, message):
    import yaml

    from churn_core.config import load_config

    path = tmp_path / "model_config.yaml"
    path.write_text(yaml.safe_dump({"explainer": section}))
    with pytest.raises(ConfigError, match=rf"{re.escape(str(path))}: explainer.*{message}"):
        load_config(path)


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ({"context": ["gendr"]}, "explainer.context: 'gendr' is not a customer attribute"),
        (
            {"retention": {"Contrct": [{"when": "Month-to-month", "suggestion": "x"}]}},
            "explainer.retention: 'Contrct' is not a customer attribute",
        ),
        (
            {"retention": {"Contract": [{"when": "Monthly", "suggestion": "x"}]}},
            r"explainer.retention.Contract\[0\].when: 'Monthly' is not a Contract value",
        ),
        (
            {"retention": {"tenure": [{"when": "12", "suggestion": "x"}]}},
            r"explainer.retention.tenure\[0\].when: tenure is a number: give a range",
        ),
        (
            {"retention": {"Contract": [{"when": {"min": 1}, "suggestion": "x"}]}},
            r"explainer.retention.Contract\[0\].when: Contract is a category",
        ),
        (
            {
                "retention": {
                    "Contract": [
                        {
                            "when": "Month-to-month",
                            "suggestion": "x",
                            "set": {"Contrakt": "One year"},
                        }
                    ]
                }
            },
            r"explainer.retention.Contract\[0\].set: 'Contrakt' is not a customer attribute",
        ),
        (
            {
                "retention": {
                    "Contract": [
                        {
                            "when": "Month-to-month",
                            "suggestion": "x",
                            "set": {"Contract": "Two years"},
                        }
                    ]
                }
            },
            r"explainer.retention.Contract\[0\].set.Contract: 'Two years' is not a Contract value",
        ),
        (
            {
                "retention": {
                    "MonthlyCharges": [
                        {"when": {"min": 70}, "suggestion": "x", "set": {"MonthlyCharges": 900}}
                    ]
                }
            },
            r"set.MonthlyCharges: 900 is not a MonthlyCharges value \(a number from 0 to 500\)",
        ),
        (
            {
                "retention": {
                    "tenure": [{"when": {"max": 3}, "suggestion": "x", "set": {"tenure": 12.5}}]
                }
            },
            r"set.tenure: 12.5 is not a whole number",
        ),
        (
            {
                "retention": {
                    "Contract": [
                        {
                            "when": "Month-to-month",
                            "suggestion": "x",
                            "set": {"Contract": "Month-to-month"},
                        }
                    ]
                }
            },
            "is a value the action itself fires for",
        ),
    ],
)
def test_the_explainer_checks_every_named_attribute_against_the_contract(
    bundle_dir, section, message
):
    config = ExplainerConfig.model_validate(section)
    with pytest.raises(ConfigError, match=message):
        check_explainer_config(config)
    model, meta = load_model(bundle_dir("logistic"))
    with pytest.raises(ConfigError, match=message):  # when the explainer is built
        Explainer(model, 0.5, config=config)


def test_the_committed_catalogue_passes_the_contract_check(config):
    check_explainer_config(config)
    assert config.retention["Contract"][0].set == {"Contract": "One year"}


# -- what-if answers ------------------------------------------------------------------------


@pytest.mark.parametrize("calibrator", list(CALIBRATORS))
@pytest.mark.parametrize("kind", KINDS)
def test_what_ifs_are_the_models_own_probability_of_the_changed_rows(
    bundle_dir, held_out, config, kind, calibrator
):
    explainer = make_explainer(bundle_dir, kind, calibrator, config)
    model = explainer.model
    frame = held_out.iloc[:150].reset_index(drop=True)
    exp = explainer.explain_columns(columns(frame))
    slots = [(i, r) for i, r in reason_slots(exp) if r.what_if is not None]
    assert len(slots) > 20
    # the changed rows built independently: the customer's row with the change applied
    rows = []
    for i, r in slots:
        row = frame.iloc[[i]].copy()
        for name, value in r.what_if.change.items():
            row[name] = value
        rows.append(row)
    changed = pd.concat(rows, ignore_index=True)
    got = np.array([r.what_if.probability for _, r in slots])
    # exactly model.predict_proba of the changed rows (scored together, as the explainer does)
    np.testing.assert_array_equal(got, model.predict_proba(changed))
    # row by row: the same up to float rounding of batched matrix products (none for trees)
    single = np.array([model.predict_proba(changed.iloc[[k]])[0] for k in range(len(changed))])
    np.testing.assert_allclose(got, single, rtol=0, atol=0 if kind == "xgboost" else 1e-6)
    for i, r in slots:
        action = explainer.action(r.attribute, r.value)
        assert action is not None and r.what_if.change == action.set
        assert r.what_if.before == exp.probability[i]
        assert r.what_if.text.endswith(
            f": {exp.probability[i] * 100:.1f}% -> {r.what_if.probability * 100:.1f}%"
        )
    contract = [r.what_if for _, r in slots if r.attribute == "Contract"]
    assert contract and contract[0].text.startswith("Contract = One year: ")


def test_the_what_ifs_of_a_batch_are_one_predict_call(bundle_dir, held_out, config):
    @dataclasses.dataclass
    class Counting(ChurnModel):
        calls: list[int] = dataclasses.field(default_factory=list)

        def predict_proba_columns(self, cols):
            self.calls.append(len(next(iter(cols.values()))))
            return super().predict_proba_columns(cols)

    base, meta = load_model(bundle_dir("xgboost"))
    model = Counting(base.features, base.estimator, base.calibrator, base.threshold)
    explainer = Explainer(
        model, 0.4, background=load_background(bundle_dir("xgboost"), meta), config=config
    )
    exp = explainer.explain_columns(columns(held_out.iloc[:100]))
    n_what_ifs = sum(r.what_if is not None for _, r in reason_slots(exp))
    assert n_what_ifs > 50 and model.calls == [n_what_ifs]


def test_changed_columns_leave_the_request_untouched():
    cols = {n: np.asarray(["x"] * 2, dtype=object) for n in FEATURE_NAMES}
    cols["tenure"] = np.asarray([3, 40], dtype=np.int64)
    cols["Contract"] = np.asarray(["Month-to-month", "One year"], dtype="<U14")
    out = changed_columns(cols, [0, 0, 1], [{"Contract": "Two year"}, {"tenure": 12.5}, {}])
    assert out["Contract"].tolist() == ["Two year", "Month-to-month", "One year"]
    assert out["tenure"].tolist() == [3.0, 12.5, 40.0]
    assert cols["Contract"].tolist() == ["Month-to-month", "One year"]  # not written through
    assert cols["tenure"].tolist() == [3, 40]


def test_the_v1_answer_carries_the_what_ifs_as_json(bundle_dir, held_out, config):
    explainer = make_explainer(bundle_dir, "xgboost", "sigmoid", config)
    frame = held_out[held_out["Contract"] == "Month-to-month"].iloc[:10]
    exp = explainer.explain_columns(columns(frame))
    answer = orjson.loads(orjson.dumps(exp.as_dicts()))
    reasons = [r for item in answer for r in item["reasons"]]
    contract = [r for r in reasons if r["attribute"] == "Contract"]
    assert contract
    for r in contract:
        assert r["suggestion"] == "Offer a discounted one-year contract."
        assert r["what_if"]["set"] == {"Contract": "One year"}
        assert r["what_if"]["text"].startswith("Contract = One year: ")
        assert 0 < r["what_if"]["churn_probability"] < 1
    assert all(r["what_if"] is None for r in reasons if not r["suggestion"])
    assert all("log_odds" in item and "base_log_odds" in item for item in answer)


def test_what_if_scores_one_change_for_every_customer(bundle_dir, held_out, config):
    explainer = make_explainer(bundle_dir, "logistic", "sigmoid", config)
    frame = held_out.iloc[:40]
    got = explainer.what_if(columns(frame), {"Contract": "Two year", "TechSupport": "Yes"})
    changed = frame.assign(Contract="Two year", TechSupport="Yes")
    np.testing.assert_array_equal(got, explainer.model.predict_proba(changed))
    assert not np.array_equal(got, explainer.model.predict_proba(frame))
