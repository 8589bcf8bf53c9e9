"""Label-free performance estimate figures: accuracy under shift, divergence, reliability, time.

    .venv/bin/python bench/estimate.py            # make bench-estimate

On the real data (CHURN_DATA_URI; else the synthetic stand-in, announced),
exactly as tests/model/test_estimate_real.py does: a model fitted on the
training split; the held-out customers halved, one half calibrating the
estimator (`churn_model.estimate.fit_estimator`, `monitor.estimate` of
`model_config.yaml`), the other the live population; windows of 500 drawn
of 500 distinct customers from the live half, weighted for each covariate
shift (the labels stay the true ones; the composition the windows reach is
printed). Per shift, for ROC-AUC (and F1, churn rate):

- mean error: mean(estimated - realized) over the windows (the bias);
- mean |error| and the share of windows with |error| <= 0.02 (per window);
- coverage: the share of windows whose interval holds the realized figure;

then concept drift (40% of two-year non-churners churn): the share of
labelled cohorts whose gap exceeds `labels.max_estimate_gap` (and, with the
true labels, the false divergences); the reliability flag on windows whose
monthly charges are 25% higher; and the per-window `estimate()` time.
Every figure is repeated for `--halvings` seeded halvings of the held-out rows
and pooled (the calibration half is what the bias of a run depends on: the
per-halving range of the mean error is printed beside it), for each model kind
and each recalibration (sigmoid, the default, and isotonic).
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


def measure(scored: Any, kind: str, method: str, halving: int, windows: int) -> dict[str, Any]:
    """Every figure for one model, one recalibration method, one halving of the held-out rows."""
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
    setup = make_setup(scored, halving_seed=halving, method=method)
    fit_s = time.perf_counter() - t0
    out: dict[str, Any] = {
        "kind": kind,
        "method": method,
        "halving": halving,
        "windows": windows,
        "fit_s": fit_s,
        "calibration_rows": setup.calibration_rows,
        "live_rows": len(setup.live),
        "breakpoints": len(setup.estimator.recalibration.x),
        "shifts": {},
    }
    for i, (name, weights) in enumerate(SHIFTS.items()):
        w = weights(setup.live)
        results = simulate(setup, w, windows, seed=1000 + 100 * halving + i)
        out["shifts"][name] = {
            figure: summarise(results, figure) for figure in ("roc_auc", "f1", "churn_rate")
        }
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


def report(r: dict[str, Any], bootstrap: int) -> None:
    print(
        f"\n{r['kind']}, halving {r['halving']}: calibrated on {r['calibration_rows']} held-out "
        f"rows ({r['breakpoints']} isotonic breakpoints), live half {r['live_rows']} rows"
    )
    print(
        f"  {'ROC-AUC':<26} {'tenure':>6} {'estimated':>9} {'realized':>9} {'mean err':>9} "
        f"{'mean |err|':>10} {'|err|<=.02':>10} {'coverage':>9} {'width':>6} {'reliable':>8}"
    )
    for name, s in r["shifts"].items():
        a = s["roc_auc"]
        print(
            f"  {name:<26} {s['tenure']:>6.1f} {a['estimated']:>9.4f} {a['realized']:>9.4f} "
            f"{a['mean_error']:>+9.4f} {a['mean_abs_error']:>10.4f} {a['within_0.02']:>10.1%} "
            f"{a['coverage']:>9.1%} {a['width']:>6.3f} {s['reliable']:>8.1%}"
        )
    print(f"  {'F1 / churn rate':<26} {'F1 err':>9} {'F1 cov':>7} {'rate err':>9} {'rate cov':>9}")
    for name, s in r["shifts"].items():
        f, c = s["f1"], s["churn_rate"]
        print(
            f"  {name:<26} {f['mean_error']:>+9.4f} {f['coverage']:>7.1%} "
            f"{c['mean_error']:>+9.4f} {c['coverage']:>9.1%}"
        )
    c = r["concept_drift"]
    print(
        f"  concept drift (40% of two-year non-churners churn): mean gap {c['mean_gap']:+.4f}, "
        f"cohorts diverged (gap > {c['max_gap']}) {c['diverged']:.1%}, first cohort "
        f"{'diverged' if c['first_cohort_diverged'] else 'did NOT diverge'}; "
        f"true labels: false divergences {c['false_divergence']:.1%}"
    )
    o = r["outside_region"]
    print(
        f"  monthly charges +25%: outside share {o['outside_share']:.1%}, "
        f"unreliable {o['unreliable']:.1%} of windows"
    )
    t = r["time_ms"]
    print(
        f"  estimate() per window of 500 ({bootstrap} draws): p50 {t['p50']:.2f} ms, "
        f"p99 {t['p99']:.2f} ms"
    )


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


def report_pooled(kind: str, method: str, runs: list[dict[str, Any]]) -> dict[str, Any]:
    summary = pooled(runs)
    n = len(runs)
    print(
        f"\n{kind}, {method} recalibration: {n} halvings x {runs[0]['windows']} windows "
        f"(calibration {runs[0]['calibration_rows']} rows, live {runs[0]['live_rows']} rows)"
    )
    print(
        f"  {'ROC-AUC':<26} {'mean err':>9} {'per-halving range':>19} {'mean |err|':>10} "
        f"{'|err|<=.02':>10} {'coverage':>9} {'width':>6} {'F1 err':>8} {'F1 cov':>7} "
        f"{'rate cov':>8}"
    )
    for name, s in summary.items():
        span = f"{s['halving_mean_error_min']:+.3f}..{s['halving_mean_error_max']:+.3f}"
        shares = (
            f"m2m {s['month_to_month']:.0%} fibre {s['fibre_optic']:.0%} tenure {s['tenure']:.0f}"
        )
        print(
            f"  {name:<26} {s['mean_error']:>+9.4f} {span:>19} {s['mean_abs_error']:>10.4f} "
            f"{s['within_0.02']:>10.1%} {s['coverage']:>9.1%} {s['width']:>6.3f} "
            f"{s['f1_error']:>+8.4f} {s['f1_coverage']:>7.1%} {s['rate_coverage']:>8.1%}  {shares}"
        )
    c = [r["concept_drift"] for r in runs]
    print(
        f"  concept drift (40% of two-year non-churners churn): mean gap "
        f"{np.mean([x['mean_gap'] for x in c]):+.4f}, cohorts diverged (gap > {c[0]['max_gap']}) "
        f"{np.mean([x['diverged'] for x in c]):.1%}, first cohort diverged in "
        f"{np.mean([x['first_cohort_diverged'] for x in c]):.0%} of halvings; true labels: "
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
        f"{np.median(t[:, 1]):.2f} ms (median over halvings); fit_estimator {fit_s:.2f} s"
    )
    return summary


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--windows", type=int, default=20, help="windows per scenario, halving")
    parser.add_argument("--halvings", type=int, default=30, help="seeded halvings of held-out")
    parser.add_argument("--kind", choices=["logistic", "xgboost", "mlp"], action="append")
    parser.add_argument("--method", choices=["isotonic", "sigmoid"], action="append")
    parser.add_argument("--verbose", action="store_true", help="print every halving too")
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
        f"label-free estimate ({data} data): the held-out split halved (one half calibrates, "
        f"the other is live), windows of 500 distinct customers from the live half, "
        f"{config.bootstrap} draws, {config.confidence:.0%} intervals"
    )
    for kind in args.kind or ["xgboost", "logistic"]:
        scored = score_held_out(kind)
        for method in args.method or ["sigmoid", "isotonic"]:
            runs = [measure(scored, kind, method, h, args.windows) for h in range(args.halvings)]
            if args.verbose:
                for r in runs:
                    report(r, config.bootstrap)
            summaries[f"{kind}/{method}"] = report_pooled(kind, method, runs)
            results.extend(runs)
    load = os.getloadavg()[0]
    print(f"\nload average {load:.1f} on {os.cpu_count()} cores")
    if args.json:
        payload = {
            "data": data,
            "windows": args.windows,
            "halvings": args.halvings,
            "load_average": load,
            "pooled": summaries,
            "runs": results,
        }
        args.json.write_text(json.dumps(payload, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
