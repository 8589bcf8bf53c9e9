"""The retention list gives every held-out customer exactly what the served model answers.

The list is scored from a file (chunked, validated, batched); the server is
the real KServe ModelServer (`churn serve`) of the same bundle, asked over
v2 REST. The server answers FP32, so the list's probability is compared as
float32: the largest difference must be 0, and every decision equal.
"""

from __future__ import annotations

import numpy as np
import pytest
import requests

from churn_components.scoring import steps
from churn_core.config import load_config
from churn_model.contract import ID_COLUMN, LABEL_COLUMN
from tests.fixtures.model_server import serve_bundle, v2_body

pytestmark = pytest.mark.integration


def served(server, frame):
    r = requests.post(f"{server.url}/v2/models/churn/infer", json=v2_body(frame), timeout=120)
    assert r.status_code == 200, r.text[:500]
    outs = {o["name"]: o["data"] for o in r.json()["outputs"]}
    return np.asarray(outs["churn_probability"], dtype=np.float32), np.asarray(outs["churn"])


@pytest.mark.parametrize("kind", ["xgboost", "logistic"])
def test_list_equals_the_served_answers(kind, customer_split, bundle_dir, tmp_path):
    config = load_config("model_config.yaml")
    held_out = customer_split[1]
    path = tmp_path / "held_out.csv"
    held_out.drop(columns=[LABEL_COLUMN]).to_csv(path, index=False)
    scorer = steps.load_scorer(bundle_dir(kind), config.explainer)
    result = steps.score_file(
        str(path), scorer, config.economics, max_rejected_share=0.0, chunk_rows=97
    )
    scores = result.scores.set_index(ID_COLUMN).loc[held_out[ID_COLUMN]]
    assert len(scores) == len(held_out)

    server = serve_bundle(bundle_dir(kind), tmp_path / "serve", extra_args=("--no-grpc",))
    try:
        proba, churn = served(server, held_out)
    finally:
        server.stop()
    listed = scores["churn_probability"].to_numpy().astype(np.float32)
    assert float(np.abs(listed - proba).max()) == 0.0
    np.testing.assert_array_equal(scores["churn"].to_numpy(), churn)
