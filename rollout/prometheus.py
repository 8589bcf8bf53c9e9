"""A step's window per revision from Prometheus's HTTP API.

What `churn serve` exposes, told apart by the revision label
(`rollout.revision_label`; the chart's PodMonitor copies Knative's pod label
`serving.knative.dev/revision` into `revision`):

- requests: KServe's `request_preprocess_seconds_count` (every call that
  reached the model, rejected ones included); errors: those that never
  reached postprocess (`request_preprocess_seconds_count -
  request_postprocess_seconds_count`: rejected inputs and failures);
- latency: KServe's `request_predict_seconds_bucket`;
- predictions: `churn_predictions_total` by outcome, and the
  `churn_probability_bucket` histogram;
- the canary's model version: `churn_model_info`; the drift flag:
  `churn_drift_window_drift{model, model_version}` from the drift service.

Counts over a window are the change of each series between two instant
queries (the window's start and end), not `increase()`, which extrapolates:
a series that appears during the window counts from zero, a series whose
value went down (a restarted pod) counts from its reset.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import requests

from churn_core.errors import ChurnError
from churn_rollout.gates import RevisionWindow, StepWindow

Sample = tuple[tuple[tuple[str, str], ...], float]  # (sorted labels, value)


def revision_scrape_config(
    targets: Mapping[str, str], label: str = "revision", interval: str = "1s"
) -> dict[str, Any]:
    """A prometheus.yml scraping each revision's ``host:port`` with `label` set to its name.

    What the chart's PodMonitor amounts to (Knative's revision pod label
    copied into `label`), for a Prometheus outside a cluster: the demo's and
    the tests' servers standing in for revisions.
    """
    return {
        "global": {"scrape_interval": interval, "evaluation_interval": interval},
        "scrape_configs": [
            {
                "job_name": "churn-revisions",
                "scrape_interval": interval,
                "scrape_timeout": interval,
                "static_configs": [
                    {"targets": [target], "labels": {label: revision}}
                    for revision, target in targets.items()
                ],
            }
        ],
    }


@dataclass
class PrometheusSource:
    """Reads per-revision windows from one Prometheus server."""

    url: str
    model_name: str = "churn"
    revision_label: str = "revision"
    timeout: float = 10.0

    def query(self, expr: str, at: float) -> list[Sample]:
        """An instant query at time `at` (Unix seconds): the vector's samples."""
        try:
            r = requests.get(
                f"{self.url.rstrip('/')}/api/v1/query",
                params={"query": expr, "time": f"{at:.3f}"},
                timeout=self.timeout,
            )
        except requests.RequestException as err:
            raise ChurnError(f"Prometheus at {self.url} did not answer: {err}") from err
        try:
            body = r.json()
        except ValueError as err:
            raise ChurnError(
                f"Prometheus answered {r.status_code}, not JSON: {r.text[:200]}"
            ) from err
        if r.status_code != 200 or body.get("status") != "success":
            raise ChurnError(f"Prometheus refused {expr!r}: {body.get('error', r.text[:200])}")
        if body["data"]["resultType"] != "vector":
            raise ChurnError(f"{expr!r} is not an instant vector: {body['data']['resultType']}")
        return [
            (tuple(sorted(s["metric"].items())), float(s["value"][1]))
            for s in body["data"]["result"]
        ]

    def _selector(self, revisions: Iterable[str], **labels: str) -> str:
        matchers = [f'model_name="{self.model_name}"']
        matchers += [f'{k}="{v}"' for k, v in labels.items()]
        matchers.append(f'{self.revision_label}=~"{"|".join(sorted(set(revisions)))}"')
        return "{" + ", ".join(matchers) + "}"

    def increase(
        self, metric: str, revisions: Iterable[str], start: float, end: float, **labels: str
    ) -> dict[tuple[str, str], float]:
        """Per (revision, le) the growth of `metric` over [start, end], reset-aware."""
        expr = metric + self._selector(revisions, **labels)
        before = dict(self.query(expr, start))
        out: dict[tuple[str, str], float] = defaultdict(float)
        for key, value in self.query(expr, end):
            labels_of = dict(key)
            old = before.get(key, 0.0)
            grown = value - old if value >= old else value
            out[(labels_of.get(self.revision_label, ""), labels_of.get("le", ""))] += grown
        return out

    def canary_version(self, canary: str, at: float) -> str | None:
        """The model version the canary revision serves (`churn_model_info`)."""
        found = self.query("churn_model_info" + self._selector([canary]), at)
        versions = {dict(k).get("version") for k, v in found if v == 1}
        return versions.pop() if len(versions) == 1 else None

    def drift(self, version: str | None, start: float, end: float) -> float | None:
        """The highest drift flag of the model (at `version`) in the window; None: no metric."""
        matchers = f'model="{self.model_name}"'
        if version is not None:
            matchers += f', model_version="{version}"'
        seconds = max(1, math.ceil(end - start))
        expr = f"max(max_over_time(churn_drift_window_drift{{{matchers}}}[{seconds}s]))"
        found = self.query(expr, end)
        return found[0][1] if found else None

    def window(
        self, stable: str, canary: str, start: float, end: float, drift: bool = True
    ) -> StepWindow:
        """Both revisions' counts over [start, end], and the drift flag."""
        revs = [stable, canary]
        requests_ = self.increase("request_preprocess_seconds_count", revs, start, end)
        done = self.increase("request_postprocess_seconds_count", revs, start, end)
        latency = self.increase("request_predict_seconds_bucket", revs, start, end)
        probability = self.increase("churn_probability_bucket", revs, start, end)
        outcomes = {
            o: self.increase("churn_predictions_total", revs, start, end, outcome=o)
            for o in ("churn", "no_churn")
        }

        def revision(rev: str) -> RevisionWindow:
            n = round(requests_.get((rev, ""), 0.0))
            ok = round(done.get((rev, ""), 0.0))
            positives = round(outcomes["churn"].get((rev, ""), 0.0))
            negatives = round(outcomes["no_churn"].get((rev, ""), 0.0))
            return RevisionWindow(
                requests=n,
                errors=min(n, max(0, n - ok)),
                latency_buckets=_buckets(latency, rev),
                probability_buckets=_buckets(probability, rev),
                predictions=positives + negatives,
                positives=positives,
            )

        flag = None
        if drift:
            flag = self.drift(self.canary_version(canary, end), start, end)
        return StepWindow(revision(stable), revision(canary), flag, end - start)


def _buckets(grown: dict[tuple[str, str], float], revision: str) -> tuple[tuple[float, float], ...]:
    """One revision's cumulative buckets in edge order (empty when it has none)."""
    edges = sorted(
        ((float(le), round(v)) for (rev, le), v in grown.items() if rev == revision and le),
        key=lambda b: b[0],
    )
    # counts from separate pods' series can disagree in a bucket by a scrape: keep it cumulative
    out: list[tuple[float, float]] = []
    running = 0.0
    for edge, count in edges:
        running = max(running, float(count))
        out.append((edge, running))
    return tuple(out)
