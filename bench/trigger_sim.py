"""Retraining trigger figures: false alarms per window, false triggers per run, detection delay.

    .venv/bin/python bench/trigger_sim.py      # make bench-trigger

The bundle's drift detector (`fit_detector`, `model_config.yaml`'s drift
section, scipy backend) is fitted on the training split of the real data
(CHURN_DATA_URI; else the synthetic stand-in, announced) and tests windows of
500 customers drawn without replacement from the held-out customers, as
bench/drift.py and tests/model/test_drift_real.py do. The verdicts of a pool
of independently drawn windows are computed once; each simulated run of the
trigger (`monitor.trigger`: k of the last n, cooldown) then draws its windows
from that pool with replacement (tests/model/test_trigger_sim.py, the reduced
version, does the same).

- per window: the share of drift-free windows the trigger counts as bad;
- false triggers: the share of drift-free runs of 180 windows (half a year of
  daily windows) in which the trigger fires, for the configured rule and for
  a per-window rule (fire on any bad window), each on the detector's `drift`
  (significant AND large) and on significance alone (no effect-size gate);
- detection: 10 drift-free windows, then a shift (SHIFTS of
  tests/model/test_drift_real.py); the share of runs firing within 3 windows of
  the onset and the median delay.
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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--null-windows", type=int, default=2000, help="drift-free pool size")
    parser.add_argument("--shift-windows", type=int, default=500, help="pool size per shift")
    parser.add_argument("--runs", type=int, default=1000, help="simulated runs per figure")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()

    from churn_core.config import TriggerConfig, load_config
    from churn_model.drift import fit_detector
    from tests.fixtures.bundles import customers, split
    from tests.fixtures.data import real_csv_path
    from tests.model.test_drift_real import SHIFTS, null_window
    from tests.model.test_trigger_sim import (
        PREFIX,
        RUN_WINDOWS,
        WITHIN,
        bad_rate,
        detection_delays,
        false_trigger_share,
        verdict_pool,
        within_share,
    )

    data = "real" if real_csv_path() else "synthetic"
    if data == "synthetic":
        print("WARNING: CHURN_DATA_URI names no file: figures on the SYNTHETIC stand-in")
    config = load_config(REPO / "model_config.yaml")
    rule = config.monitor.trigger
    per_window = TriggerConfig(k=1, n=1, cooldown_windows=rule.cooldown_windows)
    train, held_out = split(customers(rows=7043, seed=11, real=True))
    detector = fit_detector(train, config.drift)
    t0 = time.perf_counter()
    null = verdict_pool(detector, held_out, null_window, args.null_windows, seed=101)
    shifted = {
        name: verdict_pool(detector, held_out, make, args.shift_windows, seed=202)
        for name, make in SHIFTS.items()
    }
    pool_seconds = time.perf_counter() - t0

    t0 = time.perf_counter()
    out: dict[str, Any] = {
        "data": data,
        "train_rows": len(train),
        "held_out_rows": len(held_out),
        "null_windows": len(null),
        "shift_windows": args.shift_windows,
        "runs": args.runs,
        "run_windows": RUN_WINDOWS,
        "rule": rule.model_dump(mode="json"),
        "window_bad": {
            "drift": bad_rate(null, rule),
            "significance_only": bad_rate(null, rule, sig=True),
        },
        "false_triggers": {},
        "detection": {},
    }
    for label, sig in (("drift", False), ("significance_only", True)):
        out["false_triggers"][label] = {
            "k_of_n": false_trigger_share(null, rule, args.runs, seed=303, significance_only=sig),
            "per_window": false_trigger_share(
                null, per_window, args.runs, seed=303, significance_only=sig
            ),
        }
    for name, pool in shifted.items():
        delays = detection_delays(null, pool, rule, args.runs, seed=404)
        fired = [d for d in delays if d is not None]
        out["detection"][name] = {
            "window_bad": bad_rate(pool, rule),
            "within": within_share(delays, WITHIN),
            "median_delay": float(np.median(fired)) if fired else None,
            "never": len(delays) - len(fired),
        }
    sim_seconds = time.perf_counter() - t0
    out["load_average"] = os.getloadavg()[0]

    p = out["window_bad"]
    print(
        f"retraining trigger ({data} data): detector fitted on {len(train)} training rows, "
        f"windows of 500 from {len(held_out)} held-out customers\n"
        f"rule: {rule.k} of the last {rule.n} windows bad (>= {rule.min_samples} samples), "
        f"cooldown {rule.cooldown_windows} windows; pool of {len(null)} drift-free and "
        f"{args.shift_windows} windows per shift ({pool_seconds:.0f} s), {args.runs} runs "
        f"per figure drawn from the pools ({sim_seconds:.0f} s, load average "
        f"{out['load_average']:.1f} on {os.cpu_count()} cores)\n"
    )
    print(f"  {'drift-free, per window: bad':<44} {'drift':>8} {'signif. only':>13}")
    print(f"  {'windows counted bad':<44} {p['drift']:>8.2%} {p['significance_only']:>13.2%}")
    ft = out["false_triggers"]
    print(f"\n  {'drift-free runs of ' + str(RUN_WINDOWS) + ' windows that trigger':<44}")
    for key, label in (
        ("k_of_n", f"{rule.k} of {rule.n} (configured)"),
        ("per_window", "per-window rule (1 of 1)"),
    ):
        print(f"  {label:<44} {ft['drift'][key]:>8.1%} {ft['significance_only'][key]:>13.1%}")
    print(
        f"\n  {'shift (after ' + str(PREFIX) + ' drift-free windows)':<32} {'window bad':>10} "
        f"{'fired <= ' + str(WITHIN):>10} {'median delay':>13} {'never':>6}"
    )
    for name, d in out["detection"].items():
        median = "-" if d["median_delay"] is None else f"{d['median_delay']:.0f}"
        print(
            f"  {name:<32} {d['window_bad']:>10.1%} {d['within']:>10.1%} {median:>13} "
            f"{d['never']:>6}"
        )
    if args.json:
        args.json.write_text(json.dumps(out, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
