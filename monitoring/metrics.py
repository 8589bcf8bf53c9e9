"""The drift service's Prometheus metrics, in a registry of its own.

Names follow Prometheus conventions and are what the chart's alert rules
read: `churn_drift_window_drift`, `churn_estimated_roc_auc_lower`,
`churn_realized_roc_auc`, `churn_drift_last_window_timestamp_seconds`. Every
series the alerts need exists from the first scrape: the event counters with
every reason at 0, the window gauges of the served version (drift 0, samples
0, per-feature p-values and effects NaN until the first window is tested, or
the last stored window's values after a restart), and the last-window
timestamp (the service's start until a window closes).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest

from churn_monitoring.events import EVENT_TYPES, REJECT_REASONS
from churn_monitoring.join import UNMATCHED_REASONS

NAN = float("nan")
TRIGGER_STATES = ("OK", "SUSPECT", "TRIGGERED", "COOLDOWN")
ESTIMATED = ("roc_auc", "f1", "churn_rate")
REALIZED = ("roc_auc", "f1")


@dataclass(frozen=True)
class MonitorMetrics:
    """The collectors of one drift service."""

    registry: CollectorRegistry
    received: Counter
    rejected: Counter
    unmatched: Counter
    duplicates: Counter
    ignored: Counter
    predictions: Counter
    queue_depth: Gauge
    p_value: Gauge
    effect: Gauge
    feature_drift: Gauge
    unseen: Gauge
    window_drift: Gauge
    window_samples: Gauge
    open_samples: Gauge
    windows: Counter
    last_window: Gauge
    estimate: dict[str, Gauge]  # churn_estimated_<figure>[_lower|_upper]
    estimate_reliable: Gauge
    realized: dict[str, Gauge]  # churn_realized_<figure>
    estimate_gap: Gauge
    trigger_state: Gauge
    triggers: Counter

    def exposition(self) -> bytes:
        """The text format for `/metrics`."""
        return generate_latest(self.registry)

    def start(self, model: str, version: str, features: Iterable[str], started_at: float) -> None:
        """Create every series the alerts read, before any event arrives."""
        for kind in EVENT_TYPES:
            self.received.labels(kind)
        for reason in REJECT_REASONS:
            self.rejected.labels(reason)
        for reason in UNMATCHED_REASONS:
            self.unmatched.labels(reason)
        self.window_drift.labels(model, version).set(0)
        self.window_samples.labels(model, version).set(0)
        self.open_samples.labels(model, version).set(0)
        for feature in features:
            self.feature_drift.labels(model, version, feature).set(0)
        self.last_window.labels(model).set(started_at)
        self.set_trigger_state(model, "OK")

    def record_window(self, model: str, version: str, result: Mapping[str, Any]) -> None:
        """A tested window's verdicts (`DriftResult.as_dict()`)."""
        self.window_drift.labels(model, version).set(1 if result["drift"] else 0)
        self.window_samples.labels(model, version).set(result["n"])
        for feature, entry in result["features"].items():
            self.p_value.labels(model, version, feature, entry["test"]).set(entry["p_value"])
            self.effect.labels(model, version, feature, entry["effect_name"]).set(entry["effect"])
            self.feature_drift.labels(model, version, feature).set(1 if entry["drifted"] else 0)
            if entry.get("unseen") is not None:
                self.unseen.labels(model, version, feature).set(entry["unseen"])

    def record_estimate(self, model: str, version: str, estimate: Mapping[str, Any]) -> None:
        """A window's label-free estimate (`Estimate.as_dict()`)."""
        for figure in ESTIMATED:
            entry = estimate.get(figure)
            if not isinstance(entry, Mapping):
                continue
            for suffix, key in (("", "value"), ("_lower", "low"), ("_upper", "high")):
                value = entry.get(key)
                gauge = self.estimate[figure + suffix].labels(model, version)
                gauge.set(NAN if value is None else value)
        self.estimate_reliable.labels(model, version).set(1 if estimate.get("reliable") else 0)

    def set_trigger_state(self, model: str, state: str) -> None:
        """1 for the model's current trigger state, 0 for the others."""
        for name in TRIGGER_STATES:
            self.trigger_state.labels(model, name).set(1 if name == state else 0)


def monitor_metrics() -> MonitorMetrics:
    """Fresh collectors in a fresh registry (one per service, so tests can run several)."""
    r = CollectorRegistry()
    mv = ["model", "model_version"]
    return MonitorMetrics(
        registry=r,
        received=Counter(
            "churn_drift_events_received", "CloudEvents received, by ce-type", ["type"], registry=r
        ),
        rejected=Counter(
            "churn_drift_events_rejected",
            "CloudEvents refused or not usable, by reason",
            ["reason"],
            registry=r,
        ),
        unmatched=Counter(
            "churn_drift_events_unmatched",
            "Events never joined: a request without response, a response without request, "
            "or an event whose partner had expired (late)",
            ["reason"],
            registry=r,
        ),
        duplicates=Counter(
            "churn_drift_events_duplicate", "Events seen twice (same ce-id and ce-type)", registry=r
        ),
        ignored=Counter(
            "churn_drift_events_ignored",
            "Joined events that are no predictor traffic (the explainer's)",
            ["reason"],
            registry=r,
        ),
        predictions=Counter("churn_drift_predictions", "Predictions stored", ["model"], registry=r),
        queue_depth=Gauge(
            "churn_drift_queue_depth", "Events accepted and not yet processed", registry=r
        ),
        p_value=Gauge(
            "churn_drift_p_value",
            "The last tested window's p-value per feature (before the correction)",
            [*mv, "feature", "test"],
            registry=r,
        ),
        effect=Gauge(
            "churn_drift_effect_size",
            "The last tested window's effect size per feature",
            [*mv, "feature", "measure"],
            registry=r,
        ),
        feature_drift=Gauge(
            "churn_drift_feature_drift",
            "1 when the feature drifted (significant and large) in the last tested window",
            [*mv, "feature"],
            registry=r,
        ),
        unseen=Gauge(
            "churn_drift_unseen_values",
            "Rows of the last tested window with a category the reference never had",
            [*mv, "feature"],
            registry=r,
        ),
        window_drift=Gauge(
            "churn_drift_window_drift", "1 when the last tested window drifted", mv, registry=r
        ),
        window_samples=Gauge(
            "churn_drift_window_samples", "Rows in the last tested window", mv, registry=r
        ),
        open_samples=Gauge(
            "churn_drift_open_window_samples", "Rows in the window being filled", mv, registry=r
        ),
        windows=Counter(
            "churn_drift_windows",
            "Windows closed, by outcome (drift, no_drift, too_small)",
            [*mv, "outcome"],
            registry=r,
        ),
        last_window=Gauge(
            "churn_drift_last_window_timestamp_seconds",
            "When the last window closed (the service's start before the first)",
            ["model"],
            registry=r,
        ),
        estimate={
            figure + suffix: Gauge(
                f"churn_estimated_{figure}{suffix}",
                f"Label-free estimate of the last tested window's {figure}{what}",
                mv,
                registry=r,
            )
            for figure in ESTIMATED
            for suffix, what in (
                ("", ""),
                ("_lower", ", interval low"),
                ("_upper", ", interval high"),
            )
        },
        estimate_reliable=Gauge(
            "churn_estimate_reliable",
            "1 when the last window lies in the region the reference covered",
            mv,
            registry=r,
        ),
        realized={
            figure: Gauge(
                f"churn_realized_{figure}",
                f"Realized {figure} of the newest scored label cohort",
                mv,
                registry=r,
            )
            for figure in REALIZED
        },
        estimate_gap=Gauge(
            "churn_estimate_gap",
            "Estimated minus realized ROC-AUC of the newest scored label cohort",
            mv,
            registry=r,
        ),
        trigger_state=Gauge(
            "churn_trigger_state",
            "1 for the model's current trigger state",
            ["model", "state"],
            registry=r,
        ),
        triggers=Counter("churn_trigger_fired", "Retraining triggers fired", ["model"], registry=r),
    )
