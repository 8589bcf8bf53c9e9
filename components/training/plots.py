"""Evaluation plots as PNG bytes (matplotlib, Agg backend, nothing global left behind)."""

from __future__ import annotations

import io
from collections.abc import Mapping
from typing import Any

import numpy as np


def _figure() -> tuple[Any, Any]:
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    fig = Figure(figsize=(5.0, 4.0), dpi=100)
    return fig, fig.add_subplot(1, 1, 1)


def _png(fig: Any) -> bytes:
    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def roc_points(y: np.ndarray, p: np.ndarray, max_points: int = 100) -> dict[str, list[float]]:
    """ROC curve (fpr, tpr, thresholds), thinned to at most `max_points` for the KFP UI."""
    from sklearn.metrics import roc_curve

    fpr, tpr, thr = roc_curve(y, p)
    thr = np.where(np.isfinite(thr), thr, 1.0)
    if len(fpr) > max_points:
        keep = np.unique(np.linspace(0, len(fpr) - 1, max_points).round().astype(int))
        fpr, tpr, thr = fpr[keep], tpr[keep], thr[keep]
    return {"fpr": fpr.tolist(), "tpr": tpr.tolist(), "thresholds": thr.tolist()}


def confusion(y: np.ndarray, p: np.ndarray, threshold: float) -> list[list[int]]:
    """[[TN, FP], [FN, TP]] at the threshold (rows: actual No/Yes)."""
    pred = p >= threshold
    y1 = np.asarray(y) == 1
    return [
        [int(np.sum(~y1 & ~pred)), int(np.sum(~y1 & pred))],
        [int(np.sum(y1 & ~pred)), int(np.sum(y1 & pred))],
    ]


def roc_png(curves: Mapping[str, tuple[np.ndarray, np.ndarray]]) -> bytes:
    """ROC curves of several candidates (name -> (y, p)) on the held-out split."""
    from sklearn.metrics import roc_auc_score, roc_curve

    fig, ax = _figure()
    for name, (y, p) in curves.items():
        fpr, tpr, _ = roc_curve(y, p)
        ax.plot(fpr, tpr, label=f"{name} (AUC {roc_auc_score(y, p):.3f})")
    ax.plot([0, 1], [0, 1], color="grey", linestyle=":")
    ax.set(xlabel="false positive rate", ylabel="true positive rate", title="ROC (held-out)")
    ax.legend(loc="lower right")
    return _png(fig)


def pr_png(curves: Mapping[str, tuple[np.ndarray, np.ndarray]]) -> bytes:
    """Precision-recall curves (name -> (y, p))."""
    from sklearn.metrics import average_precision_score, precision_recall_curve

    fig, ax = _figure()
    for name, (y, p) in curves.items():
        precision, recall, _ = precision_recall_curve(y, p)
        ax.plot(recall, precision, label=f"{name} (AP {average_precision_score(y, p):.3f})")
    ax.set(xlabel="recall", ylabel="precision", title="Precision-recall (held-out)")
    ax.legend(loc="upper right")
    return _png(fig)


def calibration_png(y: np.ndarray, p: np.ndarray, bins: int = 10, title: str = "") -> bytes:
    """Reliability diagram: mean predicted probability vs churn rate per bin."""
    fig, ax = _figure()
    idx = np.minimum((p * bins).astype(int), bins - 1)
    count = np.bincount(idx, minlength=bins)
    has = count > 0
    mean_p = np.bincount(idx, weights=p, minlength=bins)[has] / count[has]
    rate = np.bincount(idx, weights=y.astype(float), minlength=bins)[has] / count[has]
    ax.plot([0, 1], [0, 1], color="grey", linestyle=":")
    ax.plot(mean_p, rate, marker="o")
    ax.set(
        xlabel="mean predicted churn probability",
        ylabel="observed churn rate",
        title=title or "Calibration (held-out)",
        xlim=(0, 1),
        ylim=(0, 1),
    )
    return _png(fig)


def confusion_png(matrix: list[list[int]], threshold: float) -> bytes:
    """The confusion matrix as a labelled heat map."""
    fig, ax = _figure()
    m = np.asarray(matrix)
    ax.imshow(m, cmap="Blues")
    for (i, j), v in np.ndenumerate(m):
        ax.text(j, i, str(v), ha="center", va="center", color="black")
    ax.set_xticks([0, 1], labels=["No", "Yes"])
    ax.set_yticks([0, 1], labels=["No", "Yes"])
    ax.set(xlabel="predicted", ylabel="actual", title=f"Confusion at threshold {threshold:.3f}")
    return _png(fig)


def importance_png(importance: Mapping[str, float], title: str = "") -> bytes:
    """Horizontal bars, largest on top."""
    fig, ax = _figure()
    items = sorted(importance.items(), key=lambda kv: kv[1])[-15:]
    ax.barh([k for k, _ in items], [v for _, v in items])
    ax.set(xlabel="drop in held-out ROC-AUC when shuffled", title=title or "Feature importance")
    ax.tick_params(axis="y", labelsize=7)
    return _png(fig)
