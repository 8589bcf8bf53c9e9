"""The model report: Markdown shown in the KFP UI, logged to MLflow, kept in the bundle."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

_ROWS = (
    ("roc_auc", "ROC-AUC"),
    ("pr_auc", "PR-AUC"),
    ("f1", "F1 (churn)"),
    ("precision", "precision"),
    ("recall", "recall"),
    ("accuracy", "accuracy"),
    ("brier", "Brier"),
    ("ece", "ECE"),
    ("profit", "profit / customer"),
)


def _fmt(value: Any) -> str:
    return f"{value:.4f}" if isinstance(value, int | float) else "-"


def model_report(
    summaries: Mapping[str, Mapping[str, Any]],
    selected: str,
    decision: Mapping[str, Any] | None = None,
    *,
    synthetic: bool = False,
    data: Mapping[str, Any] | None = None,
    cv_shape: tuple[int, int] = (5, 5),
) -> str:
    """Every candidate's CV (mean +- std) and held-out figures, thresholds and the decision."""
    repeats, folds = cv_shape
    lines = ["# Churn model report", ""]
    if synthetic:
        lines += [
            "> **SYNTHETIC DATA.** This model was trained on the generated stand-in data set, "
            "not on real customers. Its figures say nothing about the real problem.",
            "",
        ]
    if data:
        rows = data.get("rows", "?")
        if isinstance(rows, float) and rows.is_integer():
            rows = int(rows)  # KFP metadata carries numbers as floats
        lines += [
            f"Training data: `{data.get('source_uri', '?')}`, sha256 "
            f"`{str(data.get('sha256', '?'))[:16]}...`, {rows} rows.",
            "",
        ]
    lines += [f"Selected candidate: **{selected}**.", ""]
    if decision:
        lines += [
            f"Gate: **{'promote' if decision.get('promote') else 'keep champion'}**: "
            f"{decision.get('reason', '')}",
            "",
        ]
    kinds = list(summaries)
    lines += [
        f"## {repeats}x{folds} repeated stratified CV on the training split (mean +- std)",
        "",
        "| metric | " + " | ".join(kinds) + " |",
        "|---|" + "---|" * len(kinds),
    ]
    for key, label in _ROWS:
        cells = [
            f"{_fmt(summaries[k]['cv'].get(key))} +- {_fmt(summaries[k]['cv_std'].get(key))}"
            for k in kinds
        ]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "## Held-out test split (at the served threshold)",
        "",
        "| metric | " + " | ".join(kinds) + " |",
        "|---|" + "---|" * len(kinds),
    ]
    for key, label in _ROWS:
        cells = [_fmt(summaries[k]["test"].get(key)) for k in kinds]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "## Calibration and thresholds (chosen on training folds only)",
        "",
        "| candidate | calibration | F1 threshold | profit threshold | served |",
        "|---|---|---|---|---|",
    ]
    for k in kinds:
        s = summaries[k]
        t = s["thresholds"]
        lines.append(
            f"| {k} | {s['calibration']} | {_fmt(t.get('f1'))} | {_fmt(t.get('profit'))} | "
            f"{_fmt(t.get('served'))} |"
        )
    lines.append("")
    return "\n".join(lines)
