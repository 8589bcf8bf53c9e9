"""The canary state machine over one KServe InferenceService.

start (new bundle at `steps[0]`%) -> each step's gates PASS -> next step ->
... -> promote (`canaryTrafficPercent` removed); any gate FAIL -> roll back
(`canaryTrafficPercent: 0`); still HOLD at the deadline -> INCONCLUSIVE (the
share goes to 0: the stable model keeps serving). The controller edits only
the InferenceService, and reads its state from KServe's status
(`components.predictor.traffic`, `latestRolledoutRevision`,
`previousRolledoutRevision`) and from its own annotation
(`rollout.churn.io/state`, written in the same patch as each change, before
anything is acted on, so a restarted controller resumes where it was). A
step's window opens only once the status shows the split that was asked for
at the current generation. Every verdict is logged and written, with its
evidence, to `rollout.churn.io/verdicts`.
"""

from __future__ import annotations

import copy
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Protocol

from churn_core.config import RolloutConfig
from churn_core.errors import ChurnError, InvalidInput
from churn_rollout.gates import (
    GateResult,
    StepWindow,
    Verdict,
    evaluate_gates,
    merge_looks,
    step_verdict,
)
from churn_rollout.kube import ClusterApi

logger = logging.getLogger(__name__)

STATE_ANNOTATION = "rollout.churn.io/state"
VERDICTS_ANNOTATION = "rollout.churn.io/verdicts"
SERVING_CONTAINER = "kserve-container"


class Outcome(StrEnum):
    """What one controller action ended in."""

    STARTED = "started"
    WAITING = "waiting"  # for KServe to show the asked split
    OPENED = "opened"  # the split is shown: the step's window runs from now
    HELD = "held"  # gates hold: more traffic needed
    STEPPED = "stepped"  # to the next canary share
    PROMOTED = "promoted"
    ROLLED_BACK = "rolled_back"
    INCONCLUSIVE = "inconclusive"


# `churn rollout` exit codes (README of rollout/): 2 is any error or refusal (churn_core.cli)
EXIT_CODES = {
    Outcome.PROMOTED: 0,
    Outcome.STARTED: 0,
    Outcome.STEPPED: 0,
    Outcome.ROLLED_BACK: 1,
    Outcome.INCONCLUSIVE: 3,
    Outcome.HELD: 4,
    Outcome.WAITING: 4,
    Outcome.OPENED: 4,
}
TERMINAL = {Outcome.PROMOTED, Outcome.ROLLED_BACK, Outcome.INCONCLUSIVE}


class MetricsSource(Protocol):
    """Both revisions' counts over a window (Prometheus in production)."""

    def window(
        self, stable: str, canary: str, start: float, end: float, drift: bool = True
    ) -> StepWindow:
        """The step window between `start` and `end` (Unix seconds)."""
        ...


# -- reading KServe's status -----------------------------------------------------------


def predictor_status(obj: dict[str, Any]) -> dict[str, Any]:
    """`status.components.predictor` ({} before KServe reconciled)."""
    found: dict[str, Any] = obj.get("status", {}).get("components", {}).get("predictor", {})
    return found


def traffic_split(obj: dict[str, Any]) -> dict[str, int]:
    """Revision -> percent, as the status shows it (only when it is current)."""
    status = obj.get("status", {})
    if int(status.get("observedGeneration", 0)) < int(obj["metadata"].get("generation", 1)):
        return {}  # the status still describes an older spec
    split: dict[str, int] = {}
    for entry in predictor_status(obj).get("traffic", []):
        rev = entry.get("revisionName")
        if rev:
            split[rev] = split.get(rev, 0) + int(entry.get("percent", 0))
    return split


def _serving(predictor: dict[str, Any]) -> dict[str, Any]:
    containers = predictor.get("containers") or []
    named = [c for c in containers if c.get("name") == SERVING_CONTAINER] or containers[:1]
    if not named:
        raise InvalidInput("the InferenceService predictor has no container")
    found: dict[str, Any] = named[0]
    return found


def storage_uri(obj: dict[str, Any]) -> str | None:
    """The bundle the predictor serves: its container's STORAGE_URI (the chart's)."""
    for env in _serving(obj["spec"]["predictor"]).get("env", []):
        if env.get("name") == "STORAGE_URI":
            value: str | None = env.get("value")
            return value
    return None


def read_state(obj: dict[str, Any]) -> dict[str, Any] | None:
    """The controller's own record of the rollout (None: never started here)."""
    raw = obj["metadata"].get("annotations", {}).get(STATE_ANNOTATION)
    if not raw:
        return None
    try:
        state: dict[str, Any] = json.loads(raw)
    except json.JSONDecodeError as err:
        raise InvalidInput(f"annotation {STATE_ANNOTATION} is not JSON: {raw[:80]!r}") from err
    return state


def read_verdicts(obj: dict[str, Any]) -> dict[str, Any] | None:
    """The last look's verdicts with their evidence."""
    raw = obj["metadata"].get("annotations", {}).get(VERDICTS_ANNOTATION)
    return json.loads(raw) if raw else None


# -- the patches ------------------------------------------------------------------------


def _annotations(state: dict[str, Any], verdicts: dict[str, Any] | None = None) -> dict[str, Any]:
    out = {STATE_ANNOTATION: json.dumps(state, sort_keys=True)}
    if verdicts is not None:
        out[VERDICTS_ANNOTATION] = json.dumps(verdicts, sort_keys=True)
    return {"metadata": {"annotations": out}}


def start_patch(obj: dict[str, Any], uri: str, percent: int, state: dict[str, Any]) -> dict:
    """The new bundle at `percent`: containers sent whole (a merge patch replaces lists)."""
    containers = copy.deepcopy(obj["spec"]["predictor"]["containers"])
    serving = _serving({"containers": containers})
    env = [e for e in serving.get("env", []) if e.get("name") != "STORAGE_URI"]
    serving["env"] = [{"name": "STORAGE_URI", "value": uri}, *env]
    patch = {"spec": {"predictor": {"canaryTrafficPercent": percent, "containers": containers}}}
    return {**patch, **_annotations(state, {})}


def share_patch(percent: int | None, state: dict[str, Any], verdicts: dict | None) -> dict:
    """Set the canary's share (None removes it: promote; 0 rolls back)."""
    return {
        "spec": {"predictor": {"canaryTrafficPercent": percent}},
        **_annotations(state, verdicts),
    }


# -- the controller ---------------------------------------------------------------------


@dataclass
class RolloutController:
    """Drives one InferenceService's canary through its steps."""

    cluster: ClusterApi
    name: str
    namespace: str
    config: RolloutConfig
    metrics: MetricsSource | None = None
    dry_run: bool = False
    clock: Callable[[], float] = time.time
    sleep: Callable[[float], None] = time.sleep
    emit: Callable[[str], None] = print  # where dry-run patches go

    def read(self) -> dict[str, Any]:
        """The InferenceService now."""
        return self.cluster.get(self.name, self.namespace)

    def _patch(self, patch: dict[str, Any], what: str) -> None:
        if self.dry_run:
            self.emit(json.dumps({"patch": what, "merge-patch+json": patch}, indent=2))
            return
        logger.info("patch %s/%s: %s", self.namespace, self.name, what)
        self.cluster.patch(self.name, self.namespace, patch)

    def start(self, uri: str, expect_revision: str | None = None) -> Outcome:
        """Start a canary of the bundle at `uri`, if the rolled-out revision is the expected one."""
        obj = self.read()
        stable = self._check_can_start(obj, uri, expect_revision)
        now = self.clock()
        first = self.config.steps[0]
        state = {
            "phase": "canary",
            "stable_revision": stable,
            "canary_revision": None,
            "storage_uri": uri,
            "previous_storage_uri": storage_uri(obj),
            "step": 0,
            "percent": first,
            "started_at": now,
            "asked_at": now,
            "step_started_at": None,
            "deadline": now + self.config.deadline_seconds,
            "history": [],
        }
        self._patch(start_patch(obj, uri, first, state), f"start canary at {first}%")
        logger.info("canary of %s started at %d%% beside %s", uri, first, stable)
        return Outcome.STARTED

    def _check_can_start(self, obj: dict[str, Any], uri: str, expect: str | None) -> str:
        where = f"InferenceService {self.namespace}/{self.name}"
        state = read_state(obj)
        if state and state.get("phase") == "canary":
            raise ChurnError(f"{where}: a rollout is already in progress: {state}")
        status = predictor_status(obj)
        stable = status.get("latestRolledoutRevision")
        split = traffic_split(obj)
        if not stable or split.get(stable) != 100:
            raise ChurnError(
                f"{where}: no revision is rolled out at 100% (status: latestRolledoutRevision="
                f"{stable}, traffic {split or 'not current'}); wait for KServe before a canary"
            )
        if expect is not None and stable != expect:
            raise ChurnError(
                f"{where}: the rolled-out revision is {stable}, not the expected {expect}: "
                "someone else changed the service; refusing to start a canary"
            )
        if storage_uri(obj) == uri and obj["spec"]["predictor"].get("canaryTrafficPercent") is None:
            raise InvalidInput(f"{where} already serves {uri}: a canary needs a new bundle")
        return str(stable)

    def step(self) -> Outcome:
        """One look: wait for the split, or judge the step's window and act on it."""
        obj = self.read()
        state = read_state(obj)
        if not state or state.get("phase") != "canary":
            phase = state.get("phase") if state else "none"
            raise ChurnError(
                f"InferenceService {self.namespace}/{self.name}: no rollout in progress "
                f"(last phase: {phase}); run `churn rollout start` first"
            )
        now = self.clock()
        if state["step_started_at"] is None:
            return self._confirm_split(obj, state, now)
        latest = predictor_status(obj).get("latestCreatedRevision")
        if latest and latest != state["canary_revision"]:
            # a revision nobody asked the controller for: judging on would mix two models
            verdicts = {"step": state["step"], "verdict": str(Verdict.INCONCLUSIVE), "at": now}
            verdicts["reason"] = (
                f"revision {latest} appeared during the canary of {state['canary_revision']}: "
                "the spec was changed elsewhere, or KServe copied the controller's annotations "
                f"to the revision ({STATE_ANNOTATION} and {VERDICTS_ANNOTATION} belong in "
                "inferenceservice-config's serviceAnnotationDisallowedList)"
            )
            logger.warning("%s", verdicts["reason"])
            return self._finish(state, verdicts, 0, "inconclusive", Outcome.INCONCLUSIVE)
        if self.metrics is None:
            raise ChurnError("judging a step needs Prometheus: give --prometheus-url")
        window = self.metrics.window(
            state["stable_revision"],
            state["canary_revision"],
            state["step_started_at"],
            now,
            drift=self.config.drift,
        )
        previous = [_result(r) for r in (read_verdicts(obj) or {}).get("gates", [])]
        same_step = (read_verdicts(obj) or {}).get("step") == state["step"]
        results = evaluate_gates(window, self.config)
        if same_step:
            results = merge_looks(previous, results)
        verdict = step_verdict(results)
        for r in results:
            logger.info(
                "gate %s %s: n stable %d canary %d, statistic %s, p %s, threshold %s (%s)",
                r.gate, r.verdict, r.n_stable, r.n_canary, r.statistic, r.p_value,
                r.threshold, r.reason,
            )  # fmt: skip
        verdicts = {
            "step": state["step"],
            "percent": state["percent"],
            "verdict": str(verdict),
            "window": [state["step_started_at"], now],
            "at": now,
            "gates": [r.to_dict() for r in results],
        }
        logger.info("step at %d%%: %s", state["percent"], verdict)
        if verdict is Verdict.FAIL:
            return self._finish(state, verdicts, 0, "rolled_back", Outcome.ROLLED_BACK)
        if verdict is Verdict.PASS:
            state["history"].append({"percent": state["percent"], "verdict": "PASS", "at": now})
            if state["step"] + 1 < len(self.config.steps):
                state["step"] += 1
                state["percent"] = self.config.steps[state["step"]]
                state.update(step_started_at=None, asked_at=now)
                self._patch(share_patch(state["percent"], state, verdicts), "next step")
                return Outcome.STEPPED
            return self._finish(state, verdicts, None, "promoted", Outcome.PROMOTED)
        if now >= state["deadline"]:
            return self._finish(state, verdicts, 0, "inconclusive", Outcome.INCONCLUSIVE)
        self._patch(_annotations(state, verdicts), "record verdicts")
        return Outcome.HELD

    def _confirm_split(self, obj: dict[str, Any], state: dict[str, Any], now: float) -> Outcome:
        """Open the step's window once the status shows the asked split; else wait."""
        status = predictor_status(obj)
        stable = state["stable_revision"]
        canary = state["canary_revision"] or status.get("latestCreatedRevision")
        split = traffic_split(obj)
        wanted = {canary: state["percent"], stable: 100 - state["percent"]}
        if (
            canary
            and canary != stable
            and status.get("latestReadyRevision") == canary
            and status.get("latestRolledoutRevision") == stable
            and {r: p for r, p in split.items() if p} == {r: p for r, p in wanted.items() if p}
        ):
            state.update(canary_revision=canary, step_started_at=now)
            self._patch(_annotations(state), f"window opens at {state['percent']}%")
            logger.info("status shows %s; the step's window opens", split)
            return Outcome.OPENED
        logger.info("waiting for KServe to show %s (status: %s)", wanted, split or "not current")
        if now - state["asked_at"] > self.config.status_timeout_seconds or now >= state["deadline"]:
            verdicts = {"step": state["step"], "verdict": str(Verdict.INCONCLUSIVE), "at": now}
            verdicts["reason"] = f"status did not show {wanted} in time (shows {split})"
            return self._finish(state, verdicts, 0, "inconclusive", Outcome.INCONCLUSIVE)
        return Outcome.WAITING

    def _finish(
        self,
        state: dict[str, Any],
        verdicts: dict[str, Any],
        percent: int | None,
        phase: str,
        outcome: Outcome,
    ) -> Outcome:
        state["history"].append({"percent": state["percent"], "verdict": phase, "at": self.clock()})
        state["phase"] = phase
        self._patch(share_patch(percent, state, verdicts), phase)
        logger.info("rollout %s: %s", phase, verdicts.get("verdict"))
        return outcome

    def wait_for(self, revision: str, timeout: float | None = None) -> dict[str, Any]:
        """Poll until `revision` takes 100% of the traffic (after a promotion or rollback)."""
        limit = self.clock() + (timeout or self.config.status_timeout_seconds)
        while True:
            obj = self.read()
            if traffic_split(obj).get(revision) == 100:
                return obj
            if self.clock() > limit:
                raise ChurnError(f"status does not show {revision} at 100%: {traffic_split(obj)}")
            self.sleep(self.config.poll_seconds)

    def run(self, uri: str, expect_revision: str | None = None) -> Outcome:
        """The whole rollout: start, then look after each window until it ends."""
        if self.dry_run:
            return self.plan(uri, expect_revision)
        self.start(uri, expect_revision)
        while True:
            outcome = self.step()
            if outcome in TERMINAL:
                state = read_state(self.read()) or {}
                final = (
                    state["canary_revision"]
                    if outcome is Outcome.PROMOTED
                    else state["stable_revision"]
                )
                if final:
                    self.wait_for(final)
                return outcome
            judged_next = outcome in (Outcome.HELD, Outcome.OPENED)
            self.sleep(self.config.step_window_seconds if judged_next else self.config.poll_seconds)

    def plan(self, uri: str, expect_revision: str | None = None) -> Outcome:
        """Dry run: print every patch a rollout may send (start, steps, promote, roll back)."""
        obj = self.read()
        stable = self._check_can_start(obj, uri, expect_revision)
        state: dict[str, Any] = {"phase": "canary", "stable_revision": stable, "storage_uri": uri}
        self._patch(start_patch(obj, uri, self.config.steps[0], state), "start")
        for percent in self.config.steps[1:]:
            self._patch(share_patch(percent, state, None), f"step to {percent}%")
        self._patch(share_patch(None, {**state, "phase": "promoted"}, None), "promote")
        self._patch(share_patch(0, {**state, "phase": "rolled_back"}, None), "roll back")
        return Outcome.STARTED


def _result(raw: dict[str, Any]) -> GateResult:
    """A gate result back from its annotation."""
    fields = {k: raw[k] for k in GateResult.__dataclass_fields__ if k in raw}
    fields["verdict"] = Verdict(raw["verdict"])
    return GateResult(**fields)


def status_summary(obj: dict[str, Any]) -> dict[str, Any]:
    """What `churn rollout status` prints: KServe's view and the controller's."""
    status = predictor_status(obj)
    return {
        "name": obj["metadata"]["name"],
        "namespace": obj["metadata"].get("namespace"),
        "storage_uri": storage_uri(obj),
        "canaryTrafficPercent": obj["spec"]["predictor"].get("canaryTrafficPercent"),
        "traffic": traffic_split(obj),
        "latestRolledoutRevision": status.get("latestRolledoutRevision"),
        "previousRolledoutRevision": status.get("previousRolledoutRevision"),
        "latestCreatedRevision": status.get("latestCreatedRevision"),
        "state": read_state(obj),
        "verdicts": read_verdicts(obj),
    }
