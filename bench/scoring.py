"""Retention-list figures: `churn score` on 1,000,000 generated customers.

    .venv/bin/python bench/scoring.py [--rows 1000000]      # make bench-scoring

The customers are SYNTHETIC (`churn_model.synthetic.generate_frame`, generated
in chunks of 100,000 with their own seeds and ids renumbered so they stay
unique); the model is an XGBoost bundle fitted on the real data when
CHURN_DATA_URI names it, else on the synthetic stand-in. Each run is a fresh
process (`churn score`), timed wall clock, with its peak RSS
(`ru_maxrss` of the child): once with top-3 reasons and what-ifs, once
`--no-reasons`. Targets: <= 60 s and <= 4 GiB on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
sys.path[:0] = [str(REPO), str(BENCH)]
CHUNK = 100_000
TARGET_SECONDS = 60.0
TARGET_BYTES = 4 * 1024**3

logger = logging.getLogger("bench.scoring")


def write_customers(path: Path, rows: int) -> None:
    """`rows` synthetic customers without the label, ids SYNTH-0000001..."""
    from churn_model.contract import ID_COLUMN, LABEL_COLUMN
    from churn_model.synthetic import generate_frame

    done = 0
    with path.open("w") as out:
        while done < rows:
            n = min(CHUNK, rows - done)
            frame = generate_frame(rows=n, seed=1000 + done // CHUNK).drop(columns=[LABEL_COLUMN])
            frame[ID_COLUMN] = [f"SYNTH-{done + i + 1:07d}" for i in range(n)]
            frame.to_csv(out, index=False, header=done == 0)
            done += n


def child(argv: list[str]) -> dict[str, float]:
    """Run `churn score` in a fresh process: wall seconds, CPU seconds and peak tree RSS.

    CPU seconds (user + system of the child and its workers) say what the run
    costs when the shared cores are busy with other work and the wall clock does not.
    """
    from procstat import tree_rss_bytes

    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "churn_core.cli", "--log-level", "WARNING", "score", *argv],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    peak = [0]

    def sample() -> None:
        while proc.poll() is None:
            peak[0] = max(peak[0], tree_rss_bytes(proc.pid))
            time.sleep(0.1)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    _, stderr = proc.communicate()
    seconds = time.perf_counter() - t0
    sampler.join()
    if proc.returncode:
        raise SystemExit(f"churn score failed ({proc.returncode}):\n{stderr[-3000:]}")
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    return {"seconds": seconds, "cpu_seconds": cpu, "peak_rss_bytes": float(peak[0])}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    os.environ.setdefault("OMP_NUM_THREADS", "2")

    from tests.fixtures.bundles import build_bundle, customers, split
    from tests.fixtures.data import real_csv_path

    logger.warning("SYNTHETIC customers: %d generated rows (not real data)", args.rows)
    with tempfile.TemporaryDirectory(prefix="bench-scoring-") as tmp:
        root = Path(tmp)
        train, _ = split(customers(rows=7043, seed=11, real=True))
        bundle = build_bundle(root / "bundle", "xgboost", train)
        data = root / "customers.csv"
        t0 = time.perf_counter()
        write_customers(data, args.rows)
        logger.info("generated %d customers in %.1f s", args.rows, time.perf_counter() - t0)
        common = ["--input", str(data), "--model-uri", str(bundle)]
        load = [os.getloadavg()[0]]
        runs = {
            "no_reasons": child(["--out", str(root / "plain.parquet"), "--no-reasons", *common]),
            "reasons_and_what_ifs": child(["--out", str(root / "full.parquet"), *common]),
            "same_in_one_process": child(
                ["--out", str(root / "one.parquet"), "--workers", "1", *common]
            ),
        }
    load.append(os.getloadavg()[0])
    results = {
        "load_average": load,
        "customers": args.rows,
        "synthetic": True,
        "model_data": "real" if real_csv_path() else "synthetic",
        "cores": os.cpu_count(),
        "runs": runs,
    }
    cores = os.cpu_count()
    print(f"load average (1 min) before {load[0]:.1f}, after {load[1]:.1f}")
    print(f"churn score on {args.rows:,} SYNTHETIC customers (XGBoost bundle), {cores} cores")
    for name, r in runs.items():
        ok = r["seconds"] <= TARGET_SECONDS and r["peak_rss_bytes"] <= TARGET_BYTES
        print(
            f"{name:<22} {r['seconds']:7.1f} s  (CPU {r['cpu_seconds']:6.1f} s)"
            f"  peak RSS (all processes) {r['peak_rss_bytes'] / 1024**3:5.2f} GiB"
            f"  {'meets' if ok else 'MISSES'} <= 60 s, <= 4 GiB"
        )
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
