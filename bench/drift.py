"""Drift detection figures: per-window test time per backend, false alarms and detection.

    .venv/bin/python bench/drift.py            # make bench-drift

Each backend (scipy, and alibi-detect when installed) is fitted with
`model_config.yaml`'s drift section on the training split of the real data
(CHURN_DATA_URI; else the synthetic stand-in, announced) and tests windows of
500 customers drawn without replacement from the held-out customers, exactly
as tests/model/test_drift_real.py does:

- time per window: `detector.test(window)` (encoding, 19 tests, correction,
  effect sizes), p50 / p99 in milliseconds (target <= 10 ms);
- false alarms: the share of drift-free windows whose `drift` is raised, and,
  for comparison, the share with any feature significant (what significance
  alone, without the effect-size gate, would flag);
- detection: the share of windows of each shifted population that are flagged.
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


def measure(backend: str, train: Any, held_out: Any, windows: int) -> dict[str, Any]:
    """Fit one backend on `train`; time and score it on simulated windows of `held_out`."""
    from churn_core.config import load_config
    from churn_model.drift import fit_detector
    from tests.model.test_drift_real import SHIFTS, WINDOW, null_window

    config = load_config(REPO / "model_config.yaml").drift.model_copy(update={"backend": backend})
    detector = fit_detector(train, config)
    scenarios = {"drift-free": null_window, **SHIFTS}
    out: dict[str, Any] = {"backend": backend, "reference_rows": detector.n_reference}
    for name, make in scenarios.items():
        rng = np.random.default_rng(101 if name == "drift-free" else 202)
        batch = [make(held_out, rng, WINDOW) for _ in range(windows)]
        detector.test(batch[0])  # warm-up
        times, drift, significant = [], [], []
        for window in batch:
            t0 = time.perf_counter()
            result = detector.test(window)
            times.append(time.perf_counter() - t0)
            drift.append(result.drift)
            significant.append(any(f.significant for f in result.features))
        ms = np.array(times) * 1e3
        out[name] = {
            "drift_rate": float(np.mean(drift)),
            "significant_rate": float(np.mean(significant)),
            "p50_ms": float(np.percentile(ms, 50)),
            "p99_ms": float(np.percentile(ms, 99)),
        }
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--windows", type=int, default=200, help="windows per scenario")
    parser.add_argument("--backend", choices=["scipy", "alibi"], action="append")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()

    from tests.fixtures.bundles import customers, split
    from tests.fixtures.data import real_csv_path

    backends = args.backend or ["scipy", "alibi"]
    if "alibi" in backends:
        try:
            import alibi_detect  # noqa: F401
        except ImportError:
            print("alibi-detect not installed (pip install -e '.[alibi]'): scipy only")
            backends = [b for b in backends if b != "alibi"]
    data = "real" if real_csv_path() else "synthetic"
    if data == "synthetic":
        print("WARNING: CHURN_DATA_URI names no file: figures on the SYNTHETIC stand-in")
    train, held_out = split(customers(rows=7043, seed=11, real=True))
    results = {
        "data": data,
        "train_rows": len(train),
        "held_out_rows": len(held_out),
        "windows": args.windows,
        "backends": [measure(b, train, held_out, args.windows) for b in backends],
    }
    load = os.getloadavg()[0]
    results["load_average"] = load
    print(
        f"drift detection ({data} data): reference {len(train)} training rows, "
        f"windows of 500 from {len(held_out)} held-out customers, "
        f"{args.windows} windows per scenario (load average {load:.1f} on {os.cpu_count()} cores)"
    )
    scenarios = [k for k in results["backends"][0] if isinstance(results["backends"][0][k], dict)]
    for r in results["backends"]:
        null = r["drift-free"]
        print(
            f"\n{r['backend']}: test time per window p50 {null['p50_ms']:.2f} ms, "
            f"p99 {null['p99_ms']:.2f} ms"
        )
        print(f"  {'scenario':<28} {'drift flagged':>14} {'any significant':>16}")
        for name in scenarios:
            s = r[name]
            print(f"  {name:<28} {s['drift_rate']:>14.1%} {s['significant_rate']:>16.1%}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
