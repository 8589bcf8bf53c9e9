"""The controller's decisions from a real Prometheus scraping real `churn serve` revisions.

Four real servers play four Knative revisions: the stable bundle, a bad
canary (the same model with its threshold at 0.1: it predicts churn for far
more customers), a canary that rejects a third of its requests (the test
sends it customers with a contract the model refuses, as a broken client
rollout or schema change would) and a good canary (the stable bundle again). Prometheus
scrapes each with the revision label set in its scrape config, as the chart's
PodMonitor does from Knative's pod label. No API server runs here: the
InferenceService is the chart's, held by `InMemoryCluster`, which applies the
controller's exact merge patches, checks every result against the KServe CRD
and rewrites the status as KServe would (revisions `churn-predictor-00001`,
`-00002`, ...). The test sends the traffic a revision's share would bring.

One rollout history: the bad canary first holds on too little traffic, then
is rolled back; the rejecting one is rolled back on its error rate; the good
canary passes 5%, then 25%, and is promoted.
"""

from __future__ import annotations

import time
from typing import Any

import pytest
import requests

from churn_core.config import RolloutConfig
from churn_rollout.controller import Outcome, RolloutController, read_verdicts, traffic_split
from churn_rollout.kube import InMemoryCluster
from churn_rollout.prometheus import PrometheusSource, revision_scrape_config
from tests.fixtures.model_server import serve_bundle, v2_body
from tests.fixtures.prometheus import PrometheusHandle, prometheus_binary, start_prometheus
from tests.k8s_schema import custom_resource_errors
from tests.unit.test_rollout_controller import NAME, NS, rendered_isvc

pytestmark = pytest.mark.integration

STABLE, BAD, REJECTING, GOOD = (f"churn-predictor-{i:05d}" for i in (1, 2, 3, 4))
BLOB = "https://churnartifacts.blob.core.windows.net/churn/bundles/churn"
# differences large enough to be told apart with the few hundred rows a test sends
CONFIG = RolloutConfig(
    error_rate_difference=0.2,
    positive_rate_difference=0.2,
    ks_distance=0.4,
    latency_quantile=0.9,
    latency_tail=5,
    latency_ratio=20.0,  # two servers sharing two busy cores: latency is not what is judged
    drift=False,  # the drift service is not part of this test (see the drift-gate test)
    deadline_seconds=600,
)
REQUESTS, ROWS = 80, 5


@pytest.fixture(scope="module")
def revisions(tmp_path_factory, bundle_dir, customer_split) -> Any:
    """The three servers and the Prometheus scraping them."""
    from tests.fixtures.bundles import build_bundle

    prometheus_binary()
    root = tmp_path_factory.mktemp("rollout")
    stable_bundle = bundle_dir("xgboost")
    bad_bundle = build_bundle(
        root / "bad", "xgboost", customer_split[0], version="8", threshold=0.1
    )
    servers: dict[str, Any] = {}
    prom = None
    try:
        bundles = {STABLE: stable_bundle, BAD: bad_bundle, REJECTING: stable_bundle}
        for rev, bundle in {**bundles, GOOD: stable_bundle}.items():
            servers[rev] = serve_bundle(bundle, root / rev, extra_args=("--no-grpc",))
        scrape = revision_scrape_config({r: f"127.0.0.1:{s.http_port}" for r, s in servers.items()})
        prom = start_prometheus([], root / "prom", config=scrape)
        yield servers, prom
    finally:
        if prom is not None:
            prom.stop()
        for server in servers.values():
            server.stop()


def send(server: Any, frame: Any, n: int, rejected_every: int = 0) -> None:
    for i in range(n):
        start = (i * ROWS) % (len(frame) - ROWS)
        body = v2_body(frame.iloc[start : start + ROWS])
        bad = rejected_every and i % rejected_every == 0
        if bad:
            contract = next(t for t in body["inputs"] if t["name"] == "Contract")
            contract["data"][0] = "Weekly"
        r = requests.post(f"{server.url}/v2/models/churn/infer", json=body, timeout=30)
        assert r.status_code == (400 if bad else 200), r.text


def scraped(prom: PrometheusHandle, counts: dict[str, int]) -> None:
    """Wait until Prometheus holds each revision's request count."""
    for rev, n in counts.items():
        prom.wait_for(
            f'sum(request_preprocess_seconds_count{{model_name="churn", revision="{rev}"}})',
            lambda r, n=n: bool(r) and float(r[0]["value"][1]) >= n,
        )


def gates(cluster: InMemoryCluster) -> dict[str, dict[str, Any]]:
    verdicts = read_verdicts(cluster.get(NAME, NS)) or {}
    return {g["gate"]: g for g in verdicts.get("gates", [])}


def test_bad_canary_holds_then_rolls_back_good_canary_is_promoted(
    revisions, customer_split
) -> None:
    servers, prom = revisions
    held_out = customer_split[1]
    cluster = InMemoryCluster([rendered_isvc()], validate=custom_resource_errors)
    source = PrometheusSource(prom.url, "churn", "revision")
    ctl = RolloutController(cluster, NAME, NS, CONFIG, source)
    sent = {STABLE: 0, BAD: 0, REJECTING: 0, GOOD: 0}

    def traffic(rev: str, n: int, rejected_every: int = 0) -> None:
        send(servers[rev], held_out, n, rejected_every)
        sent[rev] += n

    # -- the bad canary: too little traffic holds, then the shifted predictions roll it back
    assert ctl.start(f"{BLOB}/8", expect_revision=STABLE) is Outcome.STARTED
    assert ctl.step() is Outcome.WAITING
    assert ctl.step() is Outcome.OPENED
    assert traffic_split(cluster.get(NAME, NS)) == {BAD: 5, STABLE: 95}
    traffic(STABLE, 4)
    traffic(BAD, 2)
    scraped(prom, {STABLE: sent[STABLE], BAD: sent[BAD]})
    assert ctl.step() is Outcome.HELD
    held = gates(cluster)
    assert held["error_rate"]["verdict"] == "HOLD"
    assert (held["error_rate"]["n_stable"], held["error_rate"]["n_canary"]) == (4, 2)
    assert held["positive_rate"]["verdict"] == "HOLD"
    assert held["positive_rate"]["n_canary"] == 2 * ROWS
    traffic(STABLE, REQUESTS)
    traffic(BAD, REQUESTS)
    scraped(prom, {STABLE: sent[STABLE], BAD: sent[BAD]})
    assert ctl.step() is Outcome.ROLLED_BACK
    failed = gates(cluster)
    assert failed["positive_rate"]["verdict"] == "FAIL", failed
    assert failed["positive_rate"]["n_canary"] == (REQUESTS + 2) * ROWS
    assert (
        failed["positive_rate"]["details"]["rate_canary"]
        > failed["positive_rate"]["details"]["rate_stable"]
    )
    assert failed["error_rate"]["verdict"] in ("PASS", "HOLD")  # the bad canary errs no more
    obj = cluster.reconcile(NAME, NS)
    assert traffic_split(obj) == {STABLE: 100, BAD: 0}

    # -- the rejecting canary: its error rate rolls it back
    assert ctl.start(f"{BLOB}/9", expect_revision=STABLE) is Outcome.STARTED
    assert ctl.step() is Outcome.WAITING
    assert ctl.step() is Outcome.OPENED
    traffic(STABLE, REQUESTS)
    traffic(REJECTING, REQUESTS, rejected_every=3)
    scraped(prom, {STABLE: sent[STABLE], REJECTING: sent[REJECTING]})
    assert ctl.step() is Outcome.ROLLED_BACK
    failed = gates(cluster)
    assert failed["error_rate"]["verdict"] == "FAIL", failed
    assert (failed["error_rate"]["n_stable"], failed["error_rate"]["n_canary"]) == (
        REQUESTS,
        REQUESTS,
    )
    assert failed["error_rate"]["details"]["rate_canary"] == pytest.approx(27 / REQUESTS)
    assert failed["error_rate"]["details"]["rate_stable"] == 0
    assert failed["positive_rate"]["verdict"] == "PASS"  # the same model otherwise
    assert traffic_split(cluster.reconcile(NAME, NS)) == {STABLE: 100, REJECTING: 0}

    # -- the good canary: passes 5%, then 25%, and is promoted
    assert ctl.start(f"{BLOB}/10", expect_revision=STABLE) is Outcome.STARTED
    assert ctl.step() is Outcome.WAITING
    assert ctl.step() is Outcome.OPENED
    assert traffic_split(cluster.get(NAME, NS)) == {GOOD: 5, STABLE: 95}
    for step_outcome, split in ((Outcome.STEPPED, {GOOD: 25, STABLE: 75}), (Outcome.PROMOTED, {})):
        traffic(STABLE, REQUESTS)
        traffic(GOOD, REQUESTS)
        scraped(prom, {STABLE: sent[STABLE], GOOD: sent[GOOD]})
        outcome = ctl.step()
        assert outcome is step_outcome, gates(cluster)
        assert {g["verdict"] for g in gates(cluster).values()} == {"PASS"}
        if split:
            assert ctl.step() is Outcome.OPENED
            assert traffic_split(cluster.get(NAME, NS)) == split
    obj = cluster.reconcile(NAME, NS)
    assert traffic_split(obj) == {GOOD: 100}
    predictor = obj["status"]["components"]["predictor"]
    assert (predictor["latestRolledoutRevision"], predictor["previousRolledoutRevision"]) == (
        GOOD,
        STABLE,
    )


def test_without_the_drift_metric_the_drift_gate_holds(revisions) -> None:
    _, prom = revisions
    source = PrometheusSource(prom.url, "churn", "revision")
    now = time.time()
    window = source.window(STABLE, GOOD, now - 30, now, drift=True)
    assert window.drift is None  # no drift service scraped: absent, not "no drift"
    from churn_rollout.gates import Verdict, drift_gate

    assert drift_gate(window, CONFIG).verdict is Verdict.HOLD
    assert source.canary_version(BAD, now) == "8"  # churn_model_info by revision
