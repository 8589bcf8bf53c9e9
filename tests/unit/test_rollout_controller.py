"""The rollout controller over the chart's real InferenceService, patched with merge semantics.

No API server runs here: `InMemoryCluster` applies the controller's exact
patches as the API server would (RFC 7386, status a subresource) and checks
every result strictly against the KServe CRD; KServe's reconcile is played by
`reconcile_kserve_status`. The windows the gates judge are given as data.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field
from typing import Any

import helm_python as helm
import pytest
import yaml

from churn_core.config import RolloutConfig
from churn_core.errors import ChurnError, InvalidInput
from churn_rollout.controller import (
    STATE_ANNOTATION,
    VERDICTS_ANNOTATION,
    Outcome,
    RolloutController,
    read_state,
    read_verdicts,
    storage_uri,
    traffic_split,
)
from churn_rollout.gates import RevisionWindow, StepWindow
from churn_rollout.kube import InMemoryCluster, merge_patch
from tests.k8s_schema import custom_resource_errors
from tests.unit.test_helm_chart import CHART

NAME, NS = "churn", "churn"
STABLE = "churn-predictor-00001"
CANARY = "churn-predictor-00002"
NEW_URI = "https://churnartifacts.blob.core.windows.net/churn/bundles/churn/2"
CONFIG = RolloutConfig(drift=False, deadline_seconds=1000, step_window_seconds=60)
EDGES = (0.1, 0.3, 0.5, 0.7, 0.9, 1.0, float("inf"))


def rendered_isvc() -> dict[str, Any]:
    with helm.Chart.load(CHART) as chart:
        out = chart.render({}, name=NAME, namespace=NS, is_install=True, is_upgrade=False)
    for path, text in out.items():
        if not path.endswith(".yaml"):
            continue
        for doc in yaml.safe_load_all(text):
            if doc and doc["kind"] == "InferenceService":
                return dict(doc)
    raise AssertionError("the chart renders no InferenceService")


@pytest.fixture(scope="module")
def isvc() -> dict[str, Any]:
    return rendered_isvc()


@pytest.fixture
def cluster(isvc: dict[str, Any]) -> InMemoryCluster:
    return InMemoryCluster([isvc], validate=custom_resource_errors)


def revision(n: int, errors: int = 0, positive_share: float = 0.3) -> RevisionWindow:
    cumulative = [round(n * s) for s in (0.2, 0.45, 0.7, 0.85, 0.95, 1.0, 1.0)]
    latency = tuple(zip((0.005, 0.01, 0.025, float("inf")), (0, n // 2, n, n), strict=True))
    return RevisionWindow(
        requests=n,
        errors=errors,
        latency_buckets=latency,
        probability_buckets=tuple(zip(EDGES, cumulative, strict=True)),
        predictions=n,
        positives=round(n * positive_share),
    )


@dataclass
class Windows:
    """The windows the gates see, in order (test data, not Prometheus)."""

    windows: list[StepWindow]
    asked: list[tuple[str, str]] = field(default_factory=list)

    def window(self, stable: str, canary: str, start: float, end: float, drift: bool = True):
        self.asked.append((stable, canary))
        return self.windows.pop(0)


GOOD = StepWindow(revision(40_000), revision(4_000))
BAD = StepWindow(revision(40_000, errors=400), revision(4_000, errors=120))
SMALL = StepWindow(revision(200), revision(10))


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def controller(cluster, windows, dry_run=False, out=None, config=CONFIG) -> RolloutController:
    clock = Clock()
    return RolloutController(
        cluster,
        NAME,
        NS,
        config,
        windows,
        dry_run=dry_run,
        clock=clock,
        sleep=clock.sleep,
        emit=(out.append if out is not None else print),
    )


# -- merge patch semantics ----------------------------------------------------------------


def test_merge_patch_follows_rfc_7386() -> None:
    # the RFC's appendix A examples
    assert merge_patch({"a": "b"}, {"a": "c"}) == {"a": "c"}
    assert merge_patch({"a": "b"}, {"b": "c"}) == {"a": "b", "b": "c"}
    assert merge_patch({"a": "b"}, {"a": None}) == {}
    assert merge_patch({"a": [{"b": "c"}]}, {"a": [1]}) == {"a": [1]}  # lists are replaced
    assert merge_patch({"a": {"b": "c"}}, {"a": {"b": "d", "c": None}}) == {"a": {"b": "d"}}
    assert merge_patch(["a"], {"a": "b"}) == {"a": "b"}
    assert merge_patch({}, {"a": {"bb": {"ccc": None}}}) == {"a": {"bb": {}}}


def test_the_in_memory_cluster_refuses_what_the_crd_refuses(cluster) -> None:
    before = cluster.get(NAME, NS)
    with pytest.raises(InvalidInput, match="canaryTraficPercent"):
        cluster.patch(NAME, NS, {"spec": {"predictor": {"canaryTraficPercent": 5}}})
    with pytest.raises(InvalidInput, match="canaryTrafficPercent"):
        cluster.patch(NAME, NS, {"spec": {"predictor": {"canaryTrafficPercent": "five"}}})
    assert cluster.get(NAME, NS) == before


def test_a_patch_never_changes_status_and_generation_follows_the_spec(cluster) -> None:
    obj = cluster.patch(NAME, NS, {"status": {"url": "http://elsewhere"}})
    assert obj["status"]["url"] != "http://elsewhere"
    assert obj["metadata"]["generation"] == 1
    obj = cluster.patch(NAME, NS, {"metadata": {"annotations": {"a": "b"}}})
    assert obj["metadata"]["generation"] == 1
    obj = cluster.patch(NAME, NS, {"spec": {"predictor": {"minReplicas": 2}}})
    assert obj["metadata"]["generation"] == 2
    assert traffic_split(obj) == {}  # the status describes generation 1: not current


# -- a whole rollout ----------------------------------------------------------------------


def test_a_good_canary_steps_to_25_then_is_promoted(cluster) -> None:
    windows = Windows([GOOD, GOOD])
    ctl = controller(cluster, windows)
    assert ctl.start(NEW_URI, expect_revision=STABLE) is Outcome.STARTED
    # the patch: new bundle at 5%, containers whole (a merge patch replaces lists)
    _, _, first = cluster.patches[0]
    assert first["spec"]["predictor"]["canaryTrafficPercent"] == 5
    (container,) = first["spec"]["predictor"]["containers"]
    env = {e["name"]: e["value"] for e in container["env"]}
    assert env["STORAGE_URI"] == NEW_URI and "CHURN_LOG_LEVEL" in env
    assert container["securityContext"]["readOnlyRootFilesystem"] is True

    # KServe has not reconciled yet: the controller waits, judges nothing
    assert ctl.step() is Outcome.WAITING
    assert windows.asked == []
    assert ctl.step() is Outcome.OPENED  # the status now shows 5/95
    assert traffic_split(cluster.get(NAME, NS)) == {CANARY: 5, STABLE: 95}
    assert ctl.step() is Outcome.STEPPED
    assert windows.asked == [(STABLE, CANARY)]
    assert cluster.get(NAME, NS)["spec"]["predictor"]["canaryTrafficPercent"] == 25
    assert ctl.step() is Outcome.OPENED
    assert traffic_split(cluster.get(NAME, NS)) == {CANARY: 25, STABLE: 75}
    assert ctl.step() is Outcome.PROMOTED

    obj = cluster.reconcile(NAME, NS)
    assert "canaryTrafficPercent" not in obj["spec"]["predictor"]
    assert traffic_split(obj) == {CANARY: 100}
    predictor = obj["status"]["components"]["predictor"]
    assert predictor["latestRolledoutRevision"] == CANARY
    assert predictor["previousRolledoutRevision"] == STABLE
    assert storage_uri(obj) == NEW_URI
    state = read_state(obj)
    assert state["phase"] == "promoted"
    assert [h["verdict"] for h in state["history"]] == ["PASS", "PASS", "promoted"]
    # only the InferenceService was touched, every patch on it
    assert {(ns, name) for ns, name, _ in cluster.patches} == {(NS, NAME)}


def test_a_failing_gate_rolls_back_to_the_stable_revision(cluster) -> None:
    ctl = controller(cluster, Windows([BAD]))
    ctl.start(NEW_URI)
    assert ctl.step() is Outcome.WAITING
    assert ctl.step() is Outcome.OPENED
    assert ctl.step() is Outcome.ROLLED_BACK
    obj = cluster.reconcile(NAME, NS)
    assert obj["spec"]["predictor"]["canaryTrafficPercent"] == 0
    assert traffic_split(obj) == {STABLE: 100, CANARY: 0}
    assert obj["status"]["components"]["predictor"]["latestRolledoutRevision"] == STABLE
    verdicts = read_verdicts(obj)
    assert verdicts["verdict"] == "FAIL"
    error = next(g for g in verdicts["gates"] if g["gate"] == "error_rate")
    assert error["verdict"] == "FAIL"
    assert error["n_stable"] == 40_000 and error["n_canary"] == 4_000
    assert error["p_value"] < error["details"]["alpha"]
    assert error["threshold"] == CONFIG.error_rate_difference and error["min_n"] > 0
    # after a rollback the stable one is rolled out: a new canary may start
    assert ctl.start(NEW_URI.replace("/2", "/3"), expect_revision=STABLE) is Outcome.STARTED


def test_little_traffic_holds_then_ends_inconclusive_with_stable_serving(cluster) -> None:
    ctl = controller(cluster, Windows([SMALL, SMALL, SMALL]))
    ctl.start(NEW_URI)
    ctl.step()
    assert ctl.step() is Outcome.OPENED
    assert ctl.step() is Outcome.HELD
    verdicts = read_verdicts(cluster.get(NAME, NS))
    assert verdicts["verdict"] == "HOLD"
    held = {g["gate"]: g for g in verdicts["gates"]}
    assert held["error_rate"]["verdict"] == "HOLD" and held["error_rate"]["n_canary"] == 10
    assert cluster.get(NAME, NS)["spec"]["predictor"]["canaryTrafficPercent"] == 5
    ctl.clock.now += CONFIG.deadline_seconds  # type: ignore[attr-defined]
    assert ctl.step() is Outcome.INCONCLUSIVE
    obj = cluster.reconcile(NAME, NS)
    assert obj["spec"]["predictor"]["canaryTrafficPercent"] == 0
    assert traffic_split(obj) == {STABLE: 100, CANARY: 0}
    assert read_state(obj)["phase"] == "inconclusive"


def test_run_drives_the_whole_loop(cluster) -> None:
    ctl = controller(cluster, Windows([GOOD, GOOD]))
    assert ctl.run(NEW_URI, expect_revision=STABLE) is Outcome.PROMOTED
    assert traffic_split(cluster.get(NAME, NS)) == {CANARY: 100}


def test_a_step_already_passed_keeps_its_pass_within_the_step(cluster) -> None:
    # the error test passes on the first look; the probabilities hold (too few rows)
    few_rows = StepWindow(
        revision(40_000),
        RevisionWindow(**{**revision(4_000).__dict__, "predictions": 50, "positives": 15}),
    )
    worse = StepWindow(revision(40_000, errors=400), revision(4_000, errors=120))
    ctl = controller(cluster, Windows([few_rows, worse]))
    ctl.start(NEW_URI)
    ctl.step()
    ctl.step()
    assert ctl.step() is Outcome.HELD
    # the second look would fail the error test, but it already passed in this step
    assert ctl.step() is Outcome.STEPPED


# -- refusals -----------------------------------------------------------------------------


def test_refuses_when_the_rolled_out_revision_is_not_the_expected_one(cluster) -> None:
    ctl = controller(cluster, Windows([]))
    with pytest.raises(ChurnError, match="not the expected churn-predictor-00007"):
        ctl.start(NEW_URI, expect_revision="churn-predictor-00007")
    assert cluster.patches == []


def test_refuses_a_second_canary_while_one_runs(cluster) -> None:
    ctl = controller(cluster, Windows([]))
    ctl.start(NEW_URI)
    with pytest.raises(ChurnError, match="already in progress"):
        ctl.start(NEW_URI.replace("/2", "/3"))


def test_refuses_while_kserve_has_not_rolled_out_the_spec(isvc) -> None:
    cluster = InMemoryCluster([isvc], validate=custom_resource_errors, lag=None)
    cluster.patch(NAME, NS, {"spec": {"predictor": {"minReplicas": 2}}})  # not reconciled
    with pytest.raises(ChurnError, match="no revision is rolled out at 100%"):
        controller(cluster, Windows([])).start(NEW_URI)


def test_refuses_the_bundle_already_served(cluster) -> None:
    current = storage_uri(cluster.get(NAME, NS))
    with pytest.raises(InvalidInput, match="already serves"):
        controller(cluster, Windows([])).start(current)


def test_step_without_a_rollout_is_an_error(cluster) -> None:
    with pytest.raises(ChurnError, match="no rollout in progress"):
        controller(cluster, Windows([])).step()


def test_a_status_that_never_shows_the_split_ends_inconclusive(isvc) -> None:
    cluster = InMemoryCluster([isvc], validate=custom_resource_errors, lag=None)
    ctl = controller(cluster, Windows([]))
    ctl.start(NEW_URI)
    assert ctl.step() is Outcome.WAITING
    ctl.clock.now += CONFIG.status_timeout_seconds + 1  # type: ignore[attr-defined]
    assert ctl.step() is Outcome.INCONCLUSIVE
    assert cluster.get(NAME, NS)["spec"]["predictor"]["canaryTrafficPercent"] == 0


# -- dry run and annotations -------------------------------------------------------------


def test_dry_run_prints_the_patches_and_sends_none(cluster) -> None:
    before = cluster.get(NAME, NS)
    out: list[str] = []
    ctl = controller(cluster, Windows([]), dry_run=True, out=out)
    assert ctl.run(NEW_URI, expect_revision=STABLE) is Outcome.STARTED
    assert cluster.patches == []
    assert cluster.get(NAME, NS) == before
    printed = [json.loads(text) for text in out]
    shares = [p["merge-patch+json"]["spec"]["predictor"]["canaryTrafficPercent"] for p in printed]
    assert shares == [5, 25, None, 0]
    # each printed patch, applied, gives an object the CRD accepts
    for p in printed:
        assert (
            custom_resource_errors(merge_patch(copy.deepcopy(before), p["merge-patch+json"])) == []
        )


def test_annotations_hold_the_state_and_the_evidence_as_json(cluster) -> None:
    ctl = controller(cluster, Windows([GOOD]))
    ctl.start(NEW_URI)
    ctl.step()
    ctl.step()
    ctl.step()
    annotations = cluster.get(NAME, NS)["metadata"]["annotations"]
    state = json.loads(annotations[STATE_ANNOTATION])
    assert state["stable_revision"] == STABLE and state["canary_revision"] == CANARY
    assert state["percent"] == 25 and state["storage_uri"] == NEW_URI
    verdicts = json.loads(annotations[VERDICTS_ANNOTATION])
    assert verdicts["verdict"] == "PASS" and verdicts["percent"] == 5
    gates = {g["gate"] for g in verdicts["gates"]}
    assert gates == {"error_rate", "latency", "probability_ks", "positive_rate"}
    for g in verdicts["gates"]:
        assert {"n_stable", "n_canary", "statistic", "threshold", "verdict"} <= set(g)
    # the chart's own annotations survive the merge patches
    assert annotations["serving.kserve.io/deploymentMode"] == "Serverless"


def test_a_revision_made_by_the_controllers_own_annotations_stops_the_rollout(isvc) -> None:
    # KServe copies annotations outside serviceAnnotationDisallowedList to the revision
    # template: then each verdict written would make a new revision. The controller must
    # notice and stop, not judge a revision it did not ask for.
    copied = frozenset({STATE_ANNOTATION, VERDICTS_ANNOTATION})
    cluster = InMemoryCluster([isvc], validate=custom_resource_errors, copied_annotations=copied)
    ctl = controller(cluster, Windows([SMALL]))
    ctl.start(NEW_URI)
    ctl.step()
    assert ctl.step() is Outcome.OPENED  # this annotation write makes revision 00003
    cluster.reconcile(NAME, NS)
    assert ctl.step() is Outcome.INCONCLUSIVE
    obj = cluster.get(NAME, NS)
    assert "serviceAnnotationDisallowedList" in read_verdicts(obj)["reason"]
    assert obj["spec"]["predictor"]["canaryTrafficPercent"] == 0
