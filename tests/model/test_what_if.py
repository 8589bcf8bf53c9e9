"""What-if answers of the models trained on the real data, for the held-out customers.

A retention team calls the customers at the highest risk first and offers
them a one-year contract. For those of them on a month-to-month contract the
model's own what-if (their probability with `Contract = One year`) must be
lower than the served probability, for the selected model and for every
candidate, since any of them can be served; where the explainer shows the
contract as a reason, its suggestion carries that very what-if. The served
model's explanations must show the offer to nearly all of them.
"""

from __future__ import annotations

import numpy as np
import pytest

from churn_components.data.steps import read_dataset
from churn_model.explain import Explainer
from tests.fixtures.training import RealTraining

pytestmark = [pytest.mark.model, pytest.mark.realdata]

RISKIEST = 100  # held-out customers at the highest predicted risk
SHARE_OFFERED = 0.9  # of those on month-to-month, the served model shows this share the offer


@pytest.mark.parametrize("kind", ["logistic", "xgboost", "mlp"])
def test_a_one_year_contract_lowers_the_risk_of_the_riskiest_customers(
    real_training: RealTraining, kind: str
) -> None:
    model = real_training.models[kind]
    config = real_training.config.explainer
    train = read_dataset(real_training.data.train)
    held_out = read_dataset(real_training.data.test)
    # the bundle's background: a seeded sample of transformed training rows
    background = model.features.transform(
        train.sample(n=config.background_rows, random_state=real_training.config.split.seed)
    )
    explainer = Explainer(model, model.threshold, background=background, config=config)
    risk = model.predict_proba(held_out)
    riskiest = held_out.iloc[np.argsort(-risk, kind="stable")[:RISKIEST]]
    monthly = riskiest[riskiest["Contract"] == "Month-to-month"].reset_index(drop=True)
    assert len(monthly) >= RISKIEST // 2, "the riskiest customers are mostly month-to-month"
    cols = {name: monthly[name].to_numpy() for name in explainer.attributes}
    exp = explainer.explain_columns(cols)
    offered = explainer.what_if(cols, {"Contract": "One year"})
    drop = exp.probability - offered
    worst = int(np.argmin(drop))
    assert drop.min() > 0, (
        f"{kind}: a one-year contract raises the risk of customer {worst}: "
        f"{exp.probability[worst]:.3f} -> {offered[worst]:.3f}"
    )
    shown = [
        (i, r.what_if)
        for i, row in enumerate(exp.reasons)
        for r in row
        if r.attribute == "Contract" and r.what_if is not None
    ]
    assert all(w.change == {"Contract": "One year"} for _, w in shown)
    np.testing.assert_allclose(
        [w.probability for _, w in shown], offered[[i for i, _ in shown]], rtol=0, atol=1e-6
    )
    if kind == real_training.selected:
        share = len(shown) / len(monthly)
        assert share >= SHARE_OFFERED, f"{kind}: only {share:.0%} of them are shown the offer"
