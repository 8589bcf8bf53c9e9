"""Model-level figures: single-row and batch scoring per kind, in process, no server.

    .venv/bin/python bench/model.py            # make bench-model

For each candidate kind (logistic, XGBoost, MLP) fitted by the training code
with `model_config.yaml` (on the real data when CHURN_DATA_URI names it, else
on the synthetic stand-in, announced), the p50/p99 of:
the scorer alone on one transformed row, the whole `ChurnModel` on one
customer (transform + scorer + calibration), and on 1,000 customers.
These are the figures the tests used to assert as wall-clock limits.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
KINDS = ("logistic", "xgboost", "mlp")
sys.path[:0] = [str(REPO)]


def timeit(fn: Callable[[], Any], reps: int) -> dict[str, float]:
    """p50 and p99 in microseconds over `reps` calls, after a warm-up."""
    for _ in range(min(100, reps)):
        fn()
    times = np.empty(reps)
    for i in range(reps):
        t0 = time.perf_counter()
        fn()
        times[i] = time.perf_counter() - t0
    us = times * 1e6
    return {"p50_us": float(np.percentile(us, 50)), "p99_us": float(np.percentile(us, 99))}


def measure(kind: str, train: Any, held_out: Any, reps: int) -> dict[str, Any]:
    """Fit one kind with the training code, then time it."""
    from churn_components.training.train import fitter, labels
    from churn_core.config import load_config
    from churn_model.features import ChurnFeatures
    from churn_model.model import ChurnModel

    config = load_config(REPO / "model_config.yaml")
    features = ChurnFeatures(tuple(config.features.tenure_bands)).fit(train)
    X = features.transform(train)  # noqa: N806
    names = [str(n) for n in features.get_feature_names_out()]
    scorer = fitter(kind, config)(X, labels(train), config.split.seed, names)
    model = ChurnModel(features=features, estimator=scorer, threshold=0.5)
    one, batch = held_out.iloc[[0]], held_out.iloc[:1000]
    row = features.transform(one)
    return {
        "scorer_1_row": timeit(lambda: scorer.score(row), reps),
        "model_1_customer": timeit(lambda: model.predict_proba(one), reps // 2),
        "model_1000_customers": timeit(lambda: model.predict_proba(batch), max(reps // 50, 20)),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--reps", type=int, default=2000, help="calls per single-row figure")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")

    from tests.fixtures.bundles import customers, split
    from tests.fixtures.data import real_csv_path

    train, held_out = split(customers(rows=7043, seed=11, real=True))
    results = {
        "data": "real" if real_csv_path() else "synthetic",
        "kinds": {
            k: measure(k, train, held_out, args.reps) for k in ("logistic", "xgboost", "mlp")
        },
    }
    print(f"model scoring in process ({results['data']} data), p50 / p99 in microseconds")
    print(f"{'kind':<10} {'scorer, 1 row':>18} {'model, 1 customer':>20} {'model, 1,000':>18}")
    for kind, r in results["kinds"].items():
        cells = [
            f"{r[k]['p50_us']:.0f} / {r[k]['p99_us']:.0f}"
            for k in ("scorer_1_row", "model_1_customer", "model_1000_customers")
        ]
        print(f"{kind:<10} {cells[0]:>18} {cells[1]:>20} {cells[2]:>18}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
