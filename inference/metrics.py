"""Prometheus metrics of the churn models, beside KServe's own latency histograms.

They live in prometheus_client's default registry, which KServe's `/metrics`
route exposes. They are created on first use, once per process (never at
import), so importing this module twice or building several models is safe.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

import numpy as np
from prometheus_client import Counter, Gauge, Histogram

PROBABILITY_BUCKETS = (0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 1.0)


@dataclass(frozen=True)
class ChurnMetrics:
    """The collectors, created once."""

    predictions: Counter
    probability: Histogram
    validation_errors: Counter
    model_info: Gauge
    explanations: Counter

    def record_predictions(self, model_name: str, proba: np.ndarray, decision: np.ndarray) -> None:
        """Count the outcomes and observe each probability."""
        churn_count, no_churn_count, hist = self._children(model_name)
        churn = int(np.count_nonzero(decision))
        if churn:
            churn_count.inc(churn)
        if churn != decision.size:
            no_churn_count.inc(decision.size - churn)
        for p in proba.tolist():
            hist.observe(p)

    def _children(self, model_name: str) -> tuple[Any, Any, Any]:
        """The labelled series of one model, looked up once."""
        found = _children.get(model_name)
        if found is None:
            found = (
                self.predictions.labels(model_name, "churn"),
                self.predictions.labels(model_name, "no_churn"),
                self.probability.labels(model_name),
            )
            _children[model_name] = found
        return found

    def record_validation_error(self, model_name: str, column: str) -> None:
        """One rejected request, by the attribute it was rejected for."""
        self.validation_errors.labels(model_name, column).inc()

    def set_model_info(self, model_name: str, version: str, kind: str, bundle_sha: str) -> None:
        """Expose which bundle is served (value 1), replacing any earlier one for this model."""
        labels = (model_name, version, kind, bundle_sha)
        previous = _info_labels.get(model_name)
        if previous is not None and previous != labels:
            self.model_info.remove(*previous)
        self.model_info.labels(*labels).set(1)
        _info_labels[model_name] = labels


_lock = threading.Lock()
_metrics: ChurnMetrics | None = None
_info_labels: dict[str, tuple[str, str, str, str]] = {}
_children: dict[str, tuple[Any, Any, Any]] = {}


def churn_metrics() -> ChurnMetrics:
    """The process's collectors, registered in the default registry on first call."""
    global _metrics
    with _lock:
        if _metrics is None:
            _metrics = ChurnMetrics(
                predictions=Counter(
                    "churn_predictions",
                    "Predictions served, by outcome at the bundle threshold",
                    ["model_name", "outcome"],
                ),
                probability=Histogram(
                    "churn_probability",
                    "Served churn probabilities",
                    ["model_name"],
                    buckets=PROBABILITY_BUCKETS,
                ),
                validation_errors=Counter(
                    "churn_validation_errors",
                    "Requests rejected as invalid, by the attribute at fault",
                    ["model_name", "column"],
                ),
                model_info=Gauge(
                    "churn_model_info",
                    "The bundle being served (value 1)",
                    ["model_name", "version", "kind", "bundle_sha256"],
                ),
                explanations=Counter(
                    "churn_explanations",
                    "Customers explained",
                    ["model_name"],
                ),
            )
        return _metrics
