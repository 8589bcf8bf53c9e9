"""The retention list in a few numbers: what is at risk and what a campaign is worth.

    expected churners        = sum(p)
    expected revenue at risk = sum(p * customer_value)
    campaign value (top N)   = sum over the N best-ranked customers of
                               p * offer_acceptance * customer_value - offer_cost

each for the whole list and per Contract, tenure band (`features.tenure_bands`)
and InternetService.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from churn_core.config import EconomicsConfig

DEFAULT_TOP = 1000
BREAKDOWNS = ("Contract", "tenure_band", "InternetService")


def tenure_band(tenure: np.ndarray, bands: Sequence[int]) -> np.ndarray:
    """Band labels such as ``0-12``, ``13-24``, ..., ``61+`` (upper bounds inclusive)."""
    edges = list(bands)
    labels = []
    low = 0
    for edge in edges:
        labels.append(f"{low}-{edge}")
        low = edge + 1
    labels.append(f"{low}+")
    index = np.searchsorted(np.asarray(edges), np.asarray(tenure, dtype=np.float64), side="left")
    return np.asarray(labels, dtype=object)[index]


def _figures(group: pd.DataFrame, econ: EconomicsConfig, top_mask: pd.Series) -> dict[str, Any]:
    p = group["churn_probability"].to_numpy(dtype=np.float64)
    return {
        "customers": len(group),
        "expected_churners": float(p.sum()),
        "revenue_at_risk": float((p * econ.customer_value).sum()),
        "top_n_customers": int(top_mask.sum()),
        "top_n_value": float(group["expected_value"][top_mask].sum()),
    }


def summarize(
    scores: pd.DataFrame, econ: EconomicsConfig, bands: Sequence[int], top: int = DEFAULT_TOP
) -> dict[str, Any]:
    """Totals and per-group figures of a ranked list (`rank` 1 = first call)."""
    frame = scores.assign(tenure_band=tenure_band(scores["tenure"].to_numpy(), bands))
    in_top = frame["rank"] <= top
    out: dict[str, Any] = {"top_n": top, "total": _figures(frame, econ, in_top), "by": {}}
    for name in BREAKDOWNS:
        out["by"][name] = {
            str(key): _figures(group, econ, in_top[group.index])
            for key, group in frame.groupby(name, sort=True)
        }
    return out


def markdown(numbers: dict[str, Any], report: dict[str, Any] | None = None) -> str:
    """The summary as Markdown tables."""
    top = numbers["top_n"]
    t = numbers["total"]
    lines = ["# Retention list", ""]
    if report is not None:
        lines += [
            f"{report['input_rows']} customers read, {report['accepted_rows']} scored, "
            f"{report['rejected_rows']} rejected (share {report['rejected_share']:.4f}).",
            "",
        ]
    lines += [
        f"Expected churners: {t['expected_churners']:.1f}; expected revenue at risk: "
        f"{t['revenue_at_risk']:,.0f}; campaign value of the top {top}: {t['top_n_value']:,.0f}.",
        "",
    ]
    head = (
        "| {0} | customers | expected churners | revenue at risk | in top {1} | value of top {1} |"
    )
    for name, groups in numbers["by"].items():
        lines += [head.format(name, top), "|---|---:|---:|---:|---:|---:|"]
        for key, f in groups.items():
            lines.append(
                f"| {key} | {f['customers']} | {f['expected_churners']:.1f} | "
                f"{f['revenue_at_risk']:,.0f} | {f['top_n_customers']} | {f['top_n_value']:,.0f} |"
            )
        lines.append("")
    return "\n".join(lines)


def distribution_png(scores: pd.DataFrame, threshold: float) -> bytes:
    """A histogram of the churn probabilities with the decision threshold, as PNG bytes."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6, 4))
    ax = fig.subplots()
    ax.hist(scores["churn_probability"].to_numpy(dtype=np.float64), bins=50, range=(0.0, 1.0))
    ax.axvline(threshold, color="red", linestyle="--", label=f"threshold {threshold:.3f}")
    ax.set_xlabel("churn probability")
    ax.set_ylabel("customers")
    ax.set_title("Score distribution")
    ax.legend()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    return buf.getvalue()
