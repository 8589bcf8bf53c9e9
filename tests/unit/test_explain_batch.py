"""The vectorised batch path gives the per-customer answer, customer for customer.

The reference below is the explainer's per-customer algorithm written out
plainly (each customer's eligible attributes sorted by effect, then log-odds,
the first matching retention action, the fired changes re-scored together).
On the held-out customers (the real ones when CHURN_DATA_URI names them) the
batch path must give exactly its answer: the same reasons, texts,
suggestions and what-if probabilities, and the same list columns
(`BatchExplanation.texts`, `best_offers`) as the loop that built them.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from churn_model.bundle import load_model
from churn_model.calibration import IsotonicCalibrator, SigmoidCalibrator
from churn_model.contract import FEATURE_NAMES
from churn_model.explain import (
    Explainer,
    Reason,
    WhatIf,
    changed_columns,
    load_background,
)
from tests.fixtures.training import project_config

CALIBRATORS = {
    "none": None,
    "sigmoid": SigmoidCalibrator(slope=0.8, intercept=-0.3),
    "isotonic": IsotonicCalibrator(
        x=np.array([0.0, 0.2, 0.5, 0.8, 1.0]), y=np.array([0.02, 0.15, 0.15, 0.6, 0.95])
    ),
}


def columns(frame):
    return {
        n: frame[n].to_numpy(dtype=object if frame[n].dtype == object else np.float64)
        for n in FEATURE_NAMES
    }


def make_explainer(bundle_dir, kind, calibrator="none", config=None):
    loaded, meta = load_model(bundle_dir(kind))
    model = dataclasses.replace(loaded, calibrator=CALIBRATORS[calibrator])
    background = load_background(bundle_dir(kind), meta)
    return Explainer(model, float(meta["threshold"]), background=background, config=config)


def reference_reasons(explainer: Explainer, cols) -> list[list[Reason]]:
    """Customer by customer: reasons, actions, then one call re-scoring every fired change."""
    X = explainer.model.features.transform_columns(cols)  # noqa: N806
    _, attr = explainer.attributor.attributes_of(X)
    margin = np.asarray(explainer.model.estimator.margin(X), dtype=np.float64)
    served = np.asarray(explainer.model.predict_proba_matrix(X), dtype=np.float64)
    points = explainer.effects(margin, served, attr)
    out, slots = [], []
    for i in range(len(X)):
        eligible = np.flatnonzero((points[i] >= explainer.min_effect_points) & (attr[i] > 0))
        chosen = sorted(eligible.tolist(), key=lambda j: (-points[i, j], -attr[i, j]))
        row = []
        for j in chosen[: explainer.top_k]:
            name = explainer.attributes[j]
            value = cols[name][i]
            value = value.item() if isinstance(value, np.generic) else value
            effect = float(points[i, j])
            p = float(served[i])
            shown = f"{value:g}" if isinstance(value, float) else str(value)
            action = explainer.action(name, value)
            if action is not None and action.set:
                slots.append((i, len(row), action.set))
            row.append(
                Reason(
                    attribute=name,
                    value=value,
                    log_odds=float(attr[i, j]),
                    probability_points=effect,
                    text=(
                        f"{name} = {shown} raises churn risk by {effect:.1f} points "
                        f"({(p - effect / 100.0) * 100:.1f}% -> {p * 100:.1f}%)"
                    ),
                    suggestion=action.suggestion if action is not None else "",
                )
            )
        out.append(row)
    if slots:
        changed = changed_columns(cols, [i for i, _, _ in slots], [c for _, _, c in slots])
        scored = explainer.model.predict_proba_columns(changed)
        for (i, k, change), p in zip(slots, np.asarray(scored).tolist(), strict=True):
            what_if = WhatIf(dict(change), float(served[i]), p)
            out[i][k] = dataclasses.replace(out[i][k], what_if=what_if)
    return out


def reference_list_columns(reasons: list[list[Reason]], limit: int):
    """The list's reasons, suggestion and what-if columns, customer by customer."""
    texts, suggestions, what_ifs = [], [], []
    for row in reasons:
        texts.append("; ".join(r.text for r in row[:limit]))
        offered = [(r, r.what_if) for r in row if r.what_if is not None]
        if offered:
            best, answer = min(offered, key=lambda pair: pair[1].probability)
            suggestions.append(f"{best.suggestion} ({answer.text})")
            what_ifs.append(answer.probability)
        else:
            suggestions.append("")
            what_ifs.append(np.nan)
    return texts, suggestions, np.asarray(what_ifs)


@pytest.mark.parametrize(
    ("kind", "calibrator"),
    [("xgboost", "none"), ("xgboost", "isotonic"), ("logistic", "sigmoid"), ("mlp", "none")],
)
def test_the_batch_path_gives_every_held_out_customer_the_per_customer_answer(
    bundle_dir, customer_split, kind, calibrator
):
    # every held-out customer (integrated gradients, 256 steps each: the first 300 for the MLP)
    held_out = customer_split[1].iloc[: 300 if kind == "mlp" else None]
    explainer = make_explainer(bundle_dir, kind, calibrator, project_config().explainer)
    cols = columns(held_out)
    batch = explainer.explain_batch(cols)
    expected = reference_reasons(explainer, cols)
    # repr: exact floats (it round-trips) and a missing TotalCharges (NaN) equal to itself
    assert repr(batch.explanation().reasons) == repr(expected)
    # the same customers give a suggestion with a what-if: the comparison is not empty
    assert sum(r.what_if is not None for row in expected for r in row) > len(held_out) // 10
    assert repr(explainer.explain_columns(cols).as_dicts()) == repr(batch.explanation().as_dicts())
    texts, suggestions, what_ifs = reference_list_columns(expected, 3)
    assert batch.texts(3) == texts
    got_suggestions, got_what_ifs = batch.best_offers()
    assert got_suggestions == suggestions
    np.testing.assert_array_equal(got_what_ifs, what_ifs)


def test_ties_keep_the_attribute_order_and_empty_slots_stay_empty(bundle_dir, customer_split):
    held_out = customer_split[1].iloc[:200]
    config = project_config().explainer.model_copy(update={"top_k": 40, "min_effect_points": 0.1})
    explainer = make_explainer(bundle_dir, "logistic", config=config)
    cols = columns(held_out)
    batch = explainer.explain_batch(cols)
    index = batch.reasons.index
    assert index.shape == (len(held_out), 40)
    # more slots than attributes: the tail is empty; slots fill from the left
    assert (index[:, len(FEATURE_NAMES) :] == -1).all()
    filled = index >= 0
    assert (filled[:, 1:] <= filled[:, :-1]).all()
    assert repr(batch.explanation().reasons) == repr(reference_reasons(explainer, cols))
