"""Selection: the best candidate by the configured rule, then the gate against the champion.

Both steps are plain functions over metric dictionaries, so they are tested
without MLflow; `churn_components.registry.register` reads the champion's metrics from
the registry and records the decision there (a JSON file and run tags).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from churn_core.config import SelectionConfig
from churn_core.errors import InvalidInput

logger = logging.getLogger(__name__)


def selection_score(cv: Mapping[str, float], cfg: SelectionConfig) -> float:
    """The configured rule: f1_weight x CV F1 + auc_weight x CV ROC-AUC."""
    return float(cfg.f1_weight * cv["f1"] + cfg.auc_weight * cv["roc_auc"])


def rank_candidates(
    cv_by_kind: Mapping[str, Mapping[str, float]], cfg: SelectionConfig
) -> list[tuple[str, float]]:
    """Candidates best first, by selection score (ties: higher AUC, then the name)."""
    if not cv_by_kind:
        raise InvalidInput("no candidates to select from (models.enabled is empty?)")
    scored = [(kind, selection_score(cv, cfg), cv["roc_auc"]) for kind, cv in cv_by_kind.items()]
    scored.sort(key=lambda t: (-t[1], -t[2], t[0]))
    return [(kind, score) for kind, score, _ in scored]


@dataclass(frozen=True)
class GateDecision:
    """Whether the challenger becomes champion, and why."""

    promote: bool
    reason: str
    challenger_kind: str
    challenger_score: float
    champion_score: float | None
    champion_version: str | None
    tolerance: float

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return asdict(self)


def gate(
    challenger_kind: str,
    challenger_cv: Mapping[str, float],
    champion_cv: Mapping[str, float] | None,
    cfg: SelectionConfig,
    champion_version: str | None = None,
) -> GateDecision:
    """Promote unless the challenger is worse than the champion by more than the tolerance.

    Both are compared on the same selection score over their recorded CV
    metrics. No champion yet: the challenger is promoted.
    """
    score = selection_score(challenger_cv, cfg)
    common = {
        "challenger_kind": challenger_kind,
        "challenger_score": score,
        "champion_version": champion_version,
        "tolerance": cfg.gate_tolerance,
    }
    if champion_cv is None:
        return GateDecision(
            promote=True,
            reason=f"no champion yet: {challenger_kind} (score {score:.4f}) becomes champion",
            champion_score=None,
            **common,
        )
    missing = [k for k in ("f1", "roc_auc") if k not in champion_cv]
    if missing:
        return GateDecision(
            promote=True,
            reason=(
                f"champion v{champion_version} records no CV {', '.join(missing)}; "
                f"{challenger_kind} (score {score:.4f}) replaces it"
            ),
            champion_score=None,
            **common,
        )
    champ = selection_score(champion_cv, cfg)
    delta = score - champ
    if delta < -cfg.gate_tolerance:
        reason = (
            f"kept champion v{champion_version}: challenger {challenger_kind} score {score:.4f} "
            f"is {-delta:.4f} below the champion's {champ:.4f}, beyond the tolerance "
            f"{cfg.gate_tolerance:.4f}"
        )
        promote = False
    else:
        reason = (
            f"promoted {challenger_kind}: score {score:.4f} vs champion v{champion_version} "
            f"{champ:.4f} (difference {delta:+.4f}, tolerance {cfg.gate_tolerance:.4f})"
        )
        promote = True
    logger.info("gate: %s", reason)
    return GateDecision(promote=promote, reason=reason, champion_score=champ, **common)
