"""Selection: the best candidate by the configured rule, then the gate against the champion.

Ranking compares this run's candidates on their CV figures. The gate compares
the selected challenger with the registry's champion like for like: both
scored on the same held-out rows of this run, each F1 at the model's own
served threshold, with the same rule (`selection_score`). Everything here is
a plain function over scores and metrics, tested without MLflow;
`churn_components.registry.champion` finds, loads and scores the champion.

The gate's order of rules:

1. no champion yet: the challenger is promoted;
2. a champion that could not be read or scored: the run fails (`GateError`)
   unless the operator chose ``selection.replace_unreadable_champion``;
3. provenance: a real-data challenger replaces a synthetic champion, a
   synthetic challenger never replaces a real-data champion;
4. the score: promoted unless worse than the champion by more than
   ``selection.gate_tolerance``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numpy as np

from churn_core.config import SelectionConfig
from churn_core.errors import GateError, InvalidInput

logger = logging.getLogger(__name__)

# Score differences below this are floating-point noise: an F1 moves in steps of
# about 1/rows and a ROC-AUC in steps of 1/(positives x negatives), both far larger.
SCORE_EPSILON = 1e-12
GATE_METRICS = ("roc_auc", "pr_auc", "f1", "precision", "recall", "accuracy", "brier", "ece")

Basis = Literal["no_registry", "no_champion", "operator_override", "provenance", "score"]


def selection_score(metrics: Mapping[str, float], cfg: SelectionConfig) -> float:
    """The configured rule: f1_weight x F1 + auc_weight x ROC-AUC."""
    return float(cfg.f1_weight * metrics["f1"] + cfg.auc_weight * metrics["roc_auc"])


def rule_text(cfg: SelectionConfig) -> str:
    """The rule as the decision records it."""
    return (
        f"{cfg.f1_weight:g} x F1 + {cfg.auc_weight:g} x ROC-AUC on this run's held-out rows, "
        "each F1 at the model's own served threshold"
    )


def rank_candidates(
    cv_by_kind: Mapping[str, Mapping[str, float]], cfg: SelectionConfig
) -> list[tuple[str, float]]:
    """Candidates best first, by selection score on CV (ties: higher AUC, then the name)."""
    if not cv_by_kind:
        raise InvalidInput("no candidates to select from (models.enabled is empty?)")
    scored = [(kind, selection_score(cv, cfg), cv["roc_auc"]) for kind, cv in cv_by_kind.items()]
    scored.sort(key=lambda t: (-t[1], -t[2], t[0]))
    return [(kind, score) for kind, score, _ in scored]


def metrics_on_rows(y: np.ndarray, p: np.ndarray, threshold: float) -> dict[str, float]:
    """The gate's metrics of one model's probabilities `p` on rows labelled `y`.

    Raises:
        GateError: the rows cannot rank models (one class only, or no rows),
            or the scores are not finite probabilities for every row.
    """
    from churn_components.training.evaluate import classification_metrics

    y = np.asarray(y)
    p = np.asarray(p, dtype=np.float64)
    if len(y) == 0 or len(np.unique(y)) < 2:
        raise GateError(
            f"the gate needs held-out rows of both classes; got {len(y)} rows with labels "
            f"{sorted(np.unique(y).tolist())}"
        )
    if p.shape != y.shape or not np.all(np.isfinite(p)):
        raise GateError(
            f"scores of shape {p.shape} for {len(y)} rows"
            + ("" if p.shape != y.shape else " with non-finite values")
        )
    metrics = classification_metrics(y, p, threshold)
    return {k: float(metrics[k]) for k in GATE_METRICS}


@dataclass(frozen=True)
class ScoredModel:
    """One model measured on the gate's rows."""

    kind: str
    version: str | None
    synthetic: bool
    threshold: float
    metrics: dict[str, float]

    def score(self, cfg: SelectionConfig) -> float:
        """Its selection score under `cfg`."""
        return selection_score(self.metrics, cfg)

    def record(self, cfg: SelectionConfig) -> dict[str, Any]:
        """JSON-ready, with its score."""
        return {**asdict(self), "score": self.score(cfg)}


@dataclass(frozen=True)
class UnreadableChampion:
    """A champion the registry names but that could not be read or scored."""

    version: str | None  # None: the registry could not even say which
    error: str
    cause: BaseException | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class GateDecision:
    """Whether the challenger becomes champion, why, and the evidence."""

    promote: bool
    reason: str
    basis: Basis
    rule: str
    rows: int
    tolerance: float
    challenger: dict[str, Any]
    champion: dict[str, Any] | None  # None: no champion, or not scored
    champion_version: str | None
    champion_error: str | None
    difference: float | None  # challenger score - champion score on the same rows
    replace_unreadable_champion: bool  # the operator's choice in force for this run

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return asdict(self)


def gate(
    challenger: ScoredModel,
    champion: ScoredModel | UnreadableChampion | None,
    cfg: SelectionConfig,
    *,
    rows: int,
    registry: bool = True,
) -> GateDecision:
    """Decide on the challenger (see the module docstring for the order of the rules).

    Args:
        challenger: the selected candidate, scored on the held-out rows.
        champion: the champion scored on the same rows; an `UnreadableChampion`
            when the registry names one that could not be read or scored;
            None when there is no champion.
        cfg: the selection rule, the tolerance and the operator's override.
        rows: how many held-out rows both were scored on.
        registry: False when the run has no registry (nothing to gate against).

    Raises:
        GateError: the champion is unreadable and the operator did not choose
            ``selection.replace_unreadable_champion``.
    """
    score = challenger.score(cfg)
    who = f"{challenger.kind} ({_provenance(challenger)}, score {score:.4f})"
    record: dict[str, Any] = {
        "rule": rule_text(cfg),
        "rows": rows,
        "tolerance": cfg.gate_tolerance,
        "challenger": challenger.record(cfg),
        "replace_unreadable_champion": cfg.replace_unreadable_champion,
        "champion": None,
        "champion_version": None,
        "champion_error": None,
        "difference": None,
    }
    if champion is None:
        basis: Basis = "no_champion" if registry else "no_registry"
        reason = (
            f"no champion yet: {who} becomes champion"
            if registry
            else f"no registry: nothing to gate against; {who} is selected"
        )
        return _decided(True, reason, basis, record)
    record["champion_version"] = champion.version
    if isinstance(champion, UnreadableChampion):
        record["champion_error"] = champion.error
        if not cfg.replace_unreadable_champion:
            raise GateError(
                f"{_named(champion.version)} cannot be compared with challenger {who}: "
                f"{champion.error}. The run stops rather than promote a challenger it could "
                "not compare; to replace this champion anyway, set "
                "selection.replace_unreadable_champion: true (or `churn pipeline run --local "
                "--replace-unreadable-champion`)"
            ) from champion.cause
        reason = (
            f"OPERATOR OVERRIDE (selection.replace_unreadable_champion): "
            f"{_named(champion.version)} could not be read or scored ({champion.error}); "
            f"{who} replaces it without a comparison"
        )
        return _decided(True, reason, "operator_override", record)

    champ = champion.score(cfg)
    delta = score - champ
    record.update(champion=champion.record(cfg), difference=delta)
    versus = (
        f"challenger {who} vs champion v{champion.version} {champion.kind} "
        f"({_provenance(champion)}, score {champ:.4f}) on the same {rows} held-out rows"
    )
    if champion.synthetic and not challenger.synthetic:
        reason = f"promoted: a real-data challenger replaces a synthetic champion; {versus}"
        return _decided(True, reason, "provenance", record)
    if challenger.synthetic and not champion.synthetic:
        reason = (
            f"kept champion v{champion.version}: a synthetic-data challenger never replaces a "
            f"real-data champion; {versus}"
        )
        return _decided(False, reason, "provenance", record)
    tol = cfg.gate_tolerance
    if -delta > tol + SCORE_EPSILON:
        reason = (
            f"kept champion v{champion.version}: {versus}: the challenger is {-delta:.4f} worse, "
            f"beyond the tolerance {tol:.4f}"
        )
        return _decided(False, reason, "score", record)
    reason = f"promoted: {versus}: difference {delta:+.4f} (tolerance {tol:.4f})"
    return _decided(True, reason, "score", record)


def _named(version: str | None) -> str:
    return f"champion v{version}" if version is not None else "the champion"


def _provenance(model: ScoredModel) -> str:
    return "synthetic data" if model.synthetic else "real data"


def _decided(promote: bool, reason: str, basis: Basis, record: dict[str, Any]) -> GateDecision:
    logger.info("gate: %s", reason)
    return GateDecision(promote=promote, reason=reason, basis=basis, **record)
