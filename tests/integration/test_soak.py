"""The soak's short form: 60 s of `churn serve` at concurrency 32 logging to a drift service.

The same run and checks as `make soak` (bench/soak.py, 5 minutes): zero
failed requests, RSS growth of the predictor and of the drift service under
10% after a warm-up, and every event accounted for (requests x 2 = the
logger's sent + failed + dropped; the drift service received what the logger
sent; predictions stored = joined pairs). The figures are printed.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.integration

BENCH = Path(__file__).resolve().parents[2] / "bench"


def test_soak_60s_no_errors_no_growth_no_lost_events(
    bundle_dir: Any, customer_split: Any, tmp_path: Path
) -> None:
    sys.path.insert(0, str(BENCH))
    try:
        import soak
    finally:
        sys.path.remove(str(BENCH))

    figures = soak.soak(
        bundle_dir("xgboost"), customer_split[1], tmp_path, seconds=60, warmup=15, concurrency=32
    )
    print("\n" + soak.report(figures))
    assert figures["requests"] > 0
    assert figures["events"]["logger"]["sent"] > 0, "the drift service received no event"
    assert figures["events"]["drift_service"]["predictions_stored"] > 0
    assert soak.failures(figures) == []
