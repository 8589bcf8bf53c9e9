"""Label-free performance estimate figures: accuracy under shift, divergence, reliability, time.

    .venv/bin/python bench/estimate.py            # make bench-estimate

On the real data (CHURN_DATA_URI; else the synthetic stand-in, announced),
exactly as tests/model/test_estimate_real.py does. Three designs, measured in
one run (`--design` picks some):

- production (the default sizes): the model is fitted on 60% of the customers
  and the 40% held out (~2,800) are halved: ~1,400 calibrate the estimator, as
  many as production's whole test split (the registry step calibrates on it),
  and ~1,400 are the live population; 20 seeded splits (each its own model and
  held-out rows), each halved once;
- production-one-split: the same sizes, one split halved 10 times. Halvings of
  one held-out set are not independent draws: a calibration half whose labels
  happen to be well ordered leaves the live half the rest, so the spread of
  the error between runs is the set's, not the population's;
- halved-test-split (the previous design): the tests' usual 80/20 split, its
  ~1,400 held-out rows halved 10 times (~700 calibrate, ~700 live): half
  production's calibration set, and windows of 500 of ~700 rows are nearly the
  whole live half, so a run's windows share one error.

Every halving is run in both directions (each half calibrates once and is
live once: a run is one direction). For whole halves the swapped direction's
error is exactly the negative of the first's, so one direction alone shows a
mean error that is the luck of the halvings (measured +0.004..+0.006 over 60
one-direction runs, -0.004 the other way, +0.0004..+0.0008 both).

The estimator is `churn_model.estimate.fit_estimator` with `monitor.estimate`
of `model_config.yaml`. Windows of 500 distinct customers are drawn from the
live half, weighted for each covariate shift (the labels stay the true ones;
the composition the windows reach is printed). Per shift, for ROC-AUC (and
F1, churn rate):

- mean error: mean(estimated - realized) over the windows (the bias);
- mean |error|, the share of windows with |error| <= 0.02, and the sd of the
  error; beside them the labels' own spread: the sd of a window's realized
  ROC-AUC when its labels are drawn from the recalibrated probabilities, and the
  share within 0.02 that even an exact estimate of the expected ROC-AUC would
  reach (the realized figure of 500 customers is itself that noisy);
- coverage: the share of windows whose interval holds the realized figure, and
  the mean interval width;

then concept drift (40% of two-year non-churners churn): the share of
labelled cohorts whose gap exceeds `labels.max_estimate_gap`, whether the
first cohort diverged (and, with the true labels, the false divergences); the
reliability flag on windows whose monthly charges are 25% higher; and the
per-window `estimate()` time. Every figure is pooled over the runs (the
per-run range of the mean error is printed beside it), for each model kind
and recalibration (sigmoid by default; `--method` picks others);
the coverage of every shift pooled comes with a 95% interval from resampling
the runs (the independent units: a run's windows share its two halves), and
the sd of the error beside the sd the intervals claim (width / 3.29).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
sys.path[:0] = [str(REPO)]


def label_spread(setup: Any, weights: np.ndarray, windows: int, seed: int) -> dict[str, float]:
    """The labels' own noise in the windows `simulate(setup, weights, windows, seed)` draws.

    Per window, labels drawn from the recalibrated probabilities (taken as the
    truth): the sd of the realized ROC-AUC, and the share of draws within 0.02
    of the expected ROC-AUC (what an exact estimate would reach).
    """
    from churn_model.estimate import expected_roc_auc, label_draws
    from tests.model.test_estimate_real import THRESHOLD, draw

    rng = np.random.default_rng(seed)  # the same windows as simulate's
    labels = np.random.default_rng(seed + 1)
    sd, within = [], []
    for _ in range(windows):
        p = setup.p_live[draw(weights, rng)]
        q = setup.estimator.recalibrate(p)
        auc = label_draws(p, q, p >= THRESHOLD, 400, labels)["roc_auc"]
        auc = auc[np.isfinite(auc)]
        sd.append(float(auc.std()))
        within.append(float(np.mean(np.abs(auc - expected_roc_auc(p, q)) <= 0.02)))
    return {"label_sd": float(np.mean(sd)), "exact_within_0.02": float(np.mean(within))}


def measure(
    scored: Any,
    kind: str,
    method: str,
    halving: int,
    windows: int,
    design: str,
    split: int = 0,
    swap: bool = False,
) -> dict[str, Any]:
    """Every figure for one model, one recalibration method, one direction of one halving."""
    from churn_model.estimate import diverged
    from tests.model.test_estimate_real import (
        SHIFTS,
        concept_drift,
        draw,
        make_setup,
        outside_region,
        simulate,
        summarise,
    )

    t0 = time.perf_counter()
    setup = make_setup(scored, halving_seed=halving, method=method, swap=swap)
    fit_s = time.perf_counter() - t0
    out: dict[str, Any] = {
        "design": design,
        "kind": kind,
        "method": method,
        "split": split,
        "halving": halving,
        "swap": swap,
        "windows": windows,
        "fit_s": fit_s,
        "calibration_rows": setup.calibration_rows,
        "live_rows": len(setup.live),
        "train_rows": len(scored.train),
        "shifts": {},
    }
    for i, (name, weights) in enumerate(SHIFTS.items()):
        w = weights(setup.live)
        seed = 1000 + 100 * halving + 10_000 * split + 50 * swap + i
        results = simulate(setup, w, windows, seed=seed)
        out["shifts"][name] = {
            figure: summarise(results, figure) for figure in ("roc_auc", "f1", "churn_rate")
        }
        out["shifts"][name]["roc_auc"]["errors"] = [
            r["estimate"]["roc_auc"]["value"] - r["realized"]["roc_auc"] for r in results
        ]
        out["shifts"][name]["roc_auc"] |= label_spread(setup, w, windows, seed)
        out["shifts"][name]["reliable"] = float(
            np.mean([r["estimate"]["reliable"] for r in results])
        )
        for key in ("month_to_month", "fibre_optic", "tenure"):
            out["shifts"][name][key] = float(np.mean([r["composition"][key] for r in results]))
    max_gap = setup.config.monitor.labels.max_estimate_gap
    uniform = np.ones(len(setup.live))
    drifted = simulate(setup, uniform, windows, seed=2000, labels=concept_drift(setup))
    steady = simulate(setup, uniform, windows, seed=2000)

    def gaps(results: list[dict[str, Any]]) -> list[bool]:
        return [
            diverged(r["estimate"]["roc_auc"]["value"], r["realized"]["roc_auc"], max_gap)
            for r in results
        ]

    out["concept_drift"] = {
        "max_gap": max_gap,
        "diverged": float(np.mean(gaps(drifted))),
        "first_cohort_diverged": bool(gaps(drifted)[0]),
        "mean_gap": float(
            np.mean([r["estimate"]["roc_auc"]["value"] - r["realized"]["roc_auc"] for r in drifted])
        ),
        "false_divergence": float(np.mean(gaps(steady))),
    }
    shifted = outside_region(setup.live)
    outside = simulate(setup, uniform, windows, seed=3000, frame=shifted)
    out["outside_region"] = {
        "unreliable": float(np.mean([not r["estimate"]["reliable"] for r in outside])),
        "outside_share": float(np.mean([r["estimate"]["outside_share"] for r in outside])),
    }
    rng = np.random.default_rng(4000)
    batch = [draw(uniform, rng) for _ in range(windows)]
    frames = [(setup.p_live[rows], setup.live.iloc[rows]) for rows in batch]
    setup.estimator.estimate(*frames[0])  # warm-up
    times = []
    for p, frame in frames:
        t0 = time.perf_counter()
        setup.estimator.estimate(p, frame)
        times.append(time.perf_counter() - t0)
    ms = np.array(times) * 1e3
    out["time_ms"] = {"p50": float(np.percentile(ms, 50)), "p99": float(np.percentile(ms, 99))}
    return out


def pooled(runs: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """ROC-AUC figures of each shift pooled over the halvings (every window counts once)."""
    out: dict[str, dict[str, float]] = {}
    for name in runs[0]["shifts"]:
        a = [r["shifts"][name]["roc_auc"] for r in runs]
        bias = [x["mean_error"] for x in a]
        out[name] = {
            "mean_error": float(np.mean(bias)),
            "halving_mean_error_min": float(np.min(bias)),
            "halving_mean_error_max": float(np.max(bias)),
            "halvings_within_0.02": float(np.mean(np.abs(bias) <= 0.02)),
            "mean_abs_error": float(np.mean([x["mean_abs_error"] for x in a])),
            "within_0.02": float(np.mean([x["within_0.02"] for x in a])),
            "exact_within_0.02": float(np.mean([x["exact_within_0.02"] for x in a])),
            "error_sd": float(np.std(np.concatenate([x["errors"] for x in a]))),
            "label_sd": float(np.mean([x["label_sd"] for x in a])),
            "coverage": float(np.mean([x["coverage"] for x in a])),
            "width": float(np.mean([x["width"] for x in a])),
            "f1_error": float(np.mean([r["shifts"][name]["f1"]["mean_error"] for r in runs])),
            "f1_coverage": float(np.mean([r["shifts"][name]["f1"]["coverage"] for r in runs])),
            "rate_coverage": float(
                np.mean([r["shifts"][name]["churn_rate"]["coverage"] for r in runs])
            ),
            **{
                key: float(np.mean([r["shifts"][name][key] for r in runs]))
                for key in ("month_to_month", "fibre_optic", "tenure")
            },
        }
    return out


def report_pooled(
    design: str, kind: str, method: str, runs: list[dict[str, Any]]
) -> dict[str, Any]:
    summary = pooled(runs)
    n, r0 = len(runs), runs[0]
    print(
        f"\n{design}: {kind}, {method} recalibration, trained on {r0['train_rows']} rows; "
        f"{n} runs ({len({r['split'] for r in runs})} splits) x {r0['windows']} windows "
        f"(calibration {r0['calibration_rows']} rows, live {r0['live_rows']} rows)"
    )
    print(
        f"  {'ROC-AUC':<22} {'mean err':>8} {'per-run':>13} {'mean|err|':>9} "
        f"{'|err|<=.02':>10} {'exact':>6} {'err sd':>6} {'label sd':>8} {'coverage':>8} "
        f"{'width':>6} {'F1 err':>7} {'F1 cov':>6} {'rate cov':>8}"
    )
    for name, s in summary.items():
        span = f"{s['halving_mean_error_min']:+.3f}..{s['halving_mean_error_max']:+.3f}"
        shares = (
            f"m2m {s['month_to_month']:.0%} fibre {s['fibre_optic']:.0%} tenure {s['tenure']:.0f}"
        )
        print(
            f"  {name:<22} {s['mean_error']:>+8.4f} {span:>13} {s['mean_abs_error']:>9.4f} "
            f"{s['within_0.02']:>10.1%} {s['exact_within_0.02']:>6.1%} {s['error_sd']:>6.4f} "
            f"{s['label_sd']:>8.4f} {s['coverage']:>8.1%} {s['width']:>6.3f} "
            f"{s['f1_error']:>+7.4f} {s['f1_coverage']:>6.1%} {s['rate_coverage']:>8.1%}  {shares}"
        )
    # every shift pooled; runs are the independent units (a run's windows share its halves)
    per_run = np.array(
        [np.mean([x["roc_auc"]["coverage"] for x in r["shifts"].values()]) for r in runs]
    )
    rng = np.random.default_rng(0)
    boot = per_run[rng.integers(0, len(runs), size=(2000, len(runs)))].mean(axis=1)
    errors = np.concatenate([x["roc_auc"]["errors"] for r in runs for x in r["shifts"].values()])
    sd_claimed = np.mean([x["roc_auc"]["width"] for r in runs for x in r["shifts"].values()]) / (
        2 * 1.6449
    )
    low, high = np.quantile(boot, [0.025, 0.975])
    print(
        f"  every shift pooled: coverage {per_run.mean():.1%} (95% interval over runs "
        f"{low:.1%}..{high:.1%}); error sd {errors.std():.4f} vs the intervals' "
        f"{sd_claimed:.4f} (width / 3.29): ratio {errors.std() / sd_claimed:.2f}"
    )
    summary["pooled"] = {
        "coverage": float(per_run.mean()),
        "coverage_low": float(low),
        "coverage_high": float(high),
        "error_sd": float(errors.std()),
        "interval_sd": float(sd_claimed),
    }
    c = [r["concept_drift"] for r in runs]
    print(
        f"  concept drift (40% of two-year non-churners churn): mean gap "
        f"{np.mean([x['mean_gap'] for x in c]):+.4f}, cohorts diverged (gap > {c[0]['max_gap']}) "
        f"{np.mean([x['diverged'] for x in c]):.1%}, first cohort diverged in "
        f"{np.mean([x['first_cohort_diverged'] for x in c]):.0%} of runs; true labels: "
        f"false divergences {np.mean([x['false_divergence'] for x in c]):.1%}"
    )
    o = [r["outside_region"] for r in runs]
    print(
        f"  monthly charges +25%: outside share {np.mean([x['outside_share'] for x in o]):.1%}, "
        f"unreliable {np.mean([x['unreliable'] for x in o]):.1%} of windows; no shift: reliable "
        f"{np.mean([r['shifts']['no shift']['reliable'] for r in runs]):.1%}"
    )
    t = np.array([[r["time_ms"]["p50"], r["time_ms"]["p99"]] for r in runs])
    fit_s = np.mean([r["fit_s"] for r in runs])
    print(
        f"  estimate() per window of 500: p50 {np.median(t[:, 0]):.2f} ms, p99 "
        f"{np.median(t[:, 1]):.2f} ms (median over runs); fit_estimator {fit_s:.2f} s"
    )
    return summary


# name: (share of the customers held out, model/held-out splits, halvings of each)
DESIGNS = {
    "production": (0.4, 20, 1),
    "production-one-split": (0.4, 1, 10),
    "halved-test-split": (0.2, 1, 10),
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--windows", type=int, default=20, help="windows per scenario and run")
    parser.add_argument("--design", choices=list(DESIGNS), action="append", help="default: all")
    parser.add_argument("--splits", type=int, help="seeded model/held-out splits (design's)")
    parser.add_argument("--halvings", type=int, help="seeded halvings per split (design's)")
    parser.add_argument("--kind", choices=["logistic", "xgboost", "mlp"], action="append")
    parser.add_argument("--method", choices=["isotonic", "sigmoid"], action="append")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()

    from churn_core.config import load_config
    from tests.fixtures.data import real_csv_path
    from tests.model.test_estimate_real import score_held_out

    data = "real" if real_csv_path() else "synthetic"
    if data == "synthetic":
        print("WARNING: CHURN_DATA_URI names no file: figures on the SYNTHETIC stand-in")
    config = load_config(REPO / "model_config.yaml").monitor.estimate
    results: list[dict[str, Any]] = []
    summaries: dict[str, Any] = {}
    print(
        f"label-free estimate ({data} data): the held-out customers halved (one half "
        f"calibrates, the other is live), windows of 500 distinct customers from the live "
        f"half, {config.bootstrap} draws, {config.confidence:.0%} intervals; 'exact' is the "
        f"share within 0.02 an exact expected ROC-AUC would reach (the labels' own noise)"
    )
    for design in args.design or list(DESIGNS):
        share, splits, halvings = DESIGNS[design]
        splits, halvings = args.splits or splits, args.halvings or halvings
        for kind in args.kind or ["xgboost", "logistic"]:
            for method in args.method or ["sigmoid"]:
                runs = []
                for split in range(splits):
                    scored = score_held_out(kind, held_out_share=share, split_seed=7 + split)
                    runs += [
                        measure(scored, kind, method, h, args.windows, design, split, swap)
                        for h in range(halvings)
                        for swap in (False, True)
                    ]
                summaries[f"{design}/{kind}/{method}"] = report_pooled(design, kind, method, runs)
                results.extend(runs)
    load = os.getloadavg()[0]
    print(f"\nload average {load:.1f} on {os.cpu_count()} cores")
    if args.json:
        payload = {
            "data": data,
            "windows": args.windows,
            "designs": {d: DESIGNS[d] for d in args.design or DESIGNS},
            "load_average": load,
            "pooled": summaries,
            "runs": results,
        }
        args.json.write_text(json.dumps(payload, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
