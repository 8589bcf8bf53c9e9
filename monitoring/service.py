"""The drift service's core: events in, predictions stored, windows tested, one trigger per episode.

`Monitor` is a plain object driven by one worker thread (`churn_monitoring.app`
puts the HTTP intake in front of it). For each batch of accepted events it

1. joins request and response on `ce-id` (`Joiner`: duplicates and unmatched
   halves counted),
2. decodes the pair into one `Prediction` per customer (the contract's
   attributes, the served probability and decision, the customer and request
   ids) and stores them (`MonitorStore.add_predictions`: a prediction already
   stored is not stored again, so a duplicate never counts twice, even across
   a restart),
3. adds the newly stored rows to their model version's open window and closes
   what is due: each tested window gets the bundle's drift detector and, when
   the bundle has one, the label-free performance estimate,
4. feeds the window's evidence to the model's `TriggerMachine` and records the
   window, the machine's new state and a fired trigger in ONE transaction
   (`MonitorStore.close_window`): a restart re-tests no window and repeats no
   trigger,
5. starts the training run of a fired trigger (`Launcher`) off the worker
   thread and records its run id.

The database is the memory: on start (`restore`) the open windows are rebuilt
from the stored predictions not yet in a window, the trigger state is read
back, and a trigger recorded without a run is started.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pandas as pd

from churn_core.config import ChurnConfig
from churn_core.errors import BundleUnusable, InvalidInput
from churn_model.bundle import verify_bundle
from churn_model.contract import FEATURE_COLUMNS
from churn_model.drift import DriftDetector, load_detector
from churn_monitoring.events import (
    CloudEvent,
    EventRejected,
    check_pair,
    decode_request,
    decode_response,
    feature_rows,
)
from churn_monitoring.join import Joiner, Pair
from churn_monitoring.labels import decay_confirmed, realized_performance
from churn_monitoring.metrics import MonitorMetrics
from churn_monitoring.records import Label, Prediction, TriggerRecord, WindowRecord
from churn_monitoring.store import MonitorStore, StoreUnavailable
from churn_monitoring.trigger import TriggerMachine, WindowEvidence
from churn_monitoring.windows import ClosedWindow, OpenWindow, take_windows

logger = logging.getLogger(__name__)

FEATURE_NAMES = tuple(c.name for c in FEATURE_COLUMNS)
ESTIMATOR_FILE = "monitor/estimator.json"


class Launcher(Protocol):
    """Starts one training run for a trigger (`churn_monitoring.launch`); returns its id."""

    def launch(self, trigger: Mapping[str, Any]) -> str:
        """Start the run for ``{"reason": ..., "evidence": [...]}``; raise when it cannot."""
        ...


@dataclass(frozen=True)
class WatchedModel:
    """What the service needs of the served bundle: its names, detector and estimator."""

    name: str
    version: str
    threshold: float
    detector: DriftDetector
    estimator: Any | None  # churn_model.estimate.PerformanceEstimator


def load_watched(bundle_dir: str | Path) -> WatchedModel:
    """The watched model from a bundle folder (every file's sha256 checked first)."""
    bundle = Path(bundle_dir)
    metadata = verify_bundle(bundle)
    drift = metadata.get("drift") or {}
    if not drift.get("dir"):
        raise BundleUnusable(f"{bundle}: the bundle carries no drift detector (metadata 'drift')")
    detector = load_detector(bundle / drift["dir"])
    estimator = None
    if (bundle / ESTIMATOR_FILE).exists():
        from churn_model.estimate import load_estimator

        estimator = load_estimator((bundle / ESTIMATOR_FILE).parent)
    return WatchedModel(
        name=str(metadata["name"]),
        version=str(metadata["version"]),
        threshold=float(metadata["threshold"]),
        detector=detector,
        estimator=estimator,
    )


@dataclass(frozen=True)
class Incoming:
    """One accepted event and when it arrived (epoch seconds)."""

    event: CloudEvent
    at: float


def _utc(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, UTC)


class Monitor:
    """Joins, stores, windows, tests and triggers; one worker thread calls it."""

    def __init__(
        self,
        config: ChurnConfig,
        store: MonitorStore,
        watched: WatchedModel,
        metrics: MonitorMetrics,
        launcher: Launcher | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self.store = store
        self.watched = watched
        self.metrics = metrics
        self.launcher = launcher
        self.clock = clock
        events = config.monitor.events
        self.joiner = Joiner(events.join_timeout_seconds, events.dedupe_seconds)
        self.open: dict[tuple[str, str], OpenWindow] = {}
        self.machines: dict[str, TriggerMachine] = {}
        self.decay: dict[str, bool] = {}
        self._next_window_id = 1
        self._unstored: list[Prediction] = []
        self._launches: list[threading.Thread] = []

    # -- start -------------------------------------------------------------------------
    def restore(self) -> None:
        """Rebuild the open windows, trigger state and metrics from the database."""
        name = self.watched.name
        self.metrics.start(name, self.watched.version, FEATURE_NAMES, self.clock())
        self._reload(name)
        for window in self.open.values():
            self.metrics.open_samples.labels(window.model, window.model_version).set(
                len(window.rows)
            )
        last = self.store.windows(name, limit=1)
        if last and last[-1].id is not None:
            self._next_window_id = last[-1].id + 1
        if last:
            window = last[-1]
            self.metrics.last_window.labels(name).set(window.closed_at.timestamp())
            if window.result and "features" in window.result:
                self.metrics.record_window(name, window.model_version, window.result)
            if window.estimate:
                self.metrics.record_estimate(name, window.model_version, window.estimate)
        machine = self._machine(name)
        self.metrics.set_trigger_state(name, machine.state)
        self.refresh_realized()
        for trigger in self.store.triggers(name):
            if trigger.run_id is None and trigger.run_status in (None, "pending"):
                logger.warning("trigger %s was recorded without a run: starting it", trigger.id)
                self._launch(trigger)

    # -- events ------------------------------------------------------------------------
    def handle(self, items: Sequence[Incoming]) -> int:
        """Process a batch of accepted events; the number of predictions newly stored.

        The joined predictions are held until the database takes them: when
        it raises `StoreUnavailable` they stay held and the next `handle` or
        `tick` stores them first (the events are never joined twice).
        """
        for item in items:
            self.metrics.received.labels(item.event.type).inc()
            pair = self.joiner.add(item.event, item.at)
            if pair is not None:
                self._unstored.extend(self._predictions(pair))
        self._count_joins()
        return self._flush()

    def _flush(self) -> int:
        """Store the held predictions, reload the open windows, close what is due.

        The open windows are read back from the database (the predictions not
        yet in a window): it is the one memory, so what a restart sees is
        exactly what the running service saw.
        """
        if not self._unstored:
            self.close_due(self.clock())
            return 0
        rows, self._unstored = self._unstored, []
        try:
            by_model = self.store.store_predictions(rows)
        except StoreUnavailable:
            self._unstored = rows  # held: stored once the database answers again
            raise
        except InvalidInput as err:  # rows the database refuses: counted, never retried forever
            self.metrics.rejected.labels("internal").inc(len(rows))
            logger.error("%d prediction(s) could not be stored: %s", len(rows), err)
            return 0
        for model, count in by_model.items():
            self._reload(model)
            self.metrics.predictions.labels(model).inc(count)
        self.close_due(self.clock())
        return sum(by_model.values())

    def _reload(self, model: str) -> None:
        """The model's open windows as the database holds them."""
        for key in [k for k in self.open if k[0] == model]:
            del self.open[key]
        for row in self.store.open_rows(model):
            self._window(row.model, row.model_version).rows.append(row)

    def tick(self) -> None:
        """Expire unmatched halves, store what is held, close windows that are old enough."""
        self.joiner.expire(self.clock())
        self._count_joins()
        self._flush()

    def _count_joins(self) -> None:
        counts = self.joiner.take_counts()
        if counts.duplicates:
            self.metrics.duplicates.inc(counts.duplicates)
        for reason, n in counts.unmatched.items():
            self.metrics.unmatched.labels(reason).inc(n)

    def _predictions(self, pair: Pair) -> list[Prediction]:
        """One Prediction per customer of a joined pair ([] when it is refused, counted)."""
        try:
            if pair.request.component == "explainer" or pair.request.model.endswith("-explainer"):
                self.metrics.ignored.labels("explainer").inc()
                return []
            response = decode_response(pair.response.body)
            if response.model_name.endswith("-explainer"):
                self.metrics.ignored.labels("explainer").inc()
                return []
            request = decode_request(pair.request.body)
            check_pair(request, response)
        except EventRejected as err:
            self.metrics.rejected.labels(err.reason).inc()
            logger.warning("event %s refused (%s): %s", pair.request.id, err.reason, err)
            return []
        model = response.model_name or pair.request.model or self.watched.name
        version = response.model_version or self.watched.version
        ids = request.ids if request.ids is not None else response.ids
        at = _utc(pair.received_at)
        features = feature_rows(request.columns)
        return [
            Prediction(
                event_id=pair.request.id,
                row=i,
                request_id=pair.request.id,
                customer_id=None if ids is None else str(ids[i]),
                model=model,
                model_version=version,
                probability=float(response.probability[i]),
                decision=int(response.decision[i]),
                received_at=at,
                features=features[i],
            )
            for i in range(request.rows)
        ]

    # -- windows -----------------------------------------------------------------------
    def _window(self, model: str, version: str) -> OpenWindow:
        key = (model, version)
        window = self.open.get(key)
        if window is None:
            window = self.open[key] = OpenWindow(model, version)
        return window

    def _machine(self, model: str) -> TriggerMachine:
        machine = self.machines.get(model)
        if machine is None:
            state = self.store.load_trigger_state(model)
            trigger = self.config.monitor.trigger
            machine = TriggerMachine(trigger, self.config.monitor.floors, state)
            self.machines[model] = machine
        return machine

    def close_due(self, now: float) -> None:
        """Close, test and record every window that is full or old enough."""
        for window in list(self.open.values()):
            due = take_windows(window, self.config.drift, _utc(now))
            for i, closed in enumerate(due):
                try:
                    self._record(closed, now)
                except Exception:
                    # not recorded: its rows (and those of the windows after it) go back
                    window.rows = [r for c in due[i:] for r in c.rows] + window.rows
                    raise
            self.metrics.open_samples.labels(window.model, window.model_version).set(
                len(window.rows)
            )

    def _record(self, closed: ClosedWindow, now: float) -> None:
        result: dict[str, Any] = {"tested": False, "why": closed.why, "n": len(closed.rows)}
        estimate: dict[str, Any] | None = None
        drift = False
        drifted: tuple[str, ...] = ()
        effects: dict[str, float] = {}
        if closed.tested:
            frame = pd.DataFrame([r.features for r in closed.rows], columns=list(FEATURE_NAMES))
            verdict = self.watched.detector.test(frame)
            result = {**verdict.as_dict(), "tested": True, "why": closed.why}
            drift = verdict.drift
            drifted = tuple(verdict.drifted_features)
            effects = {f.name: float(f.effect) for f in verdict.features}
            if self.watched.estimator is not None:
                probabilities = np.asarray([r.probability for r in closed.rows])
                estimate = self.watched.estimator.estimate(probabilities, frame).as_dict()
        window_id = self._next_window_id
        closed_at = _utc(now)
        evidence = WindowEvidence(
            window_id=window_id,
            model=closed.model,
            model_version=closed.model_version,
            samples=len(closed.rows) if closed.tested else 0,
            closed_at=closed_at,
            drifted_features=drifted,
            effects=effects,
            estimate_low=_lows(estimate),
            estimate_reliable=bool(estimate and estimate.get("reliable")),
            decay=self.decay.get(closed.model, False),
        )
        # observed on a copy: the machine moves on only once the window is recorded
        machine = self._machine(closed.model)
        candidate = TriggerMachine(
            self.config.monitor.trigger, self.config.monitor.floors, machine.to_state()
        )
        transition = candidate.observe(evidence)
        record = WindowRecord(
            id=window_id,
            model=closed.model,
            model_version=closed.model_version,
            opened_at=closed.rows[0].received_at,
            closed_at=closed_at,
            samples=len(closed.rows),
            drift=drift,
            result=result,
            estimate=estimate,
        )
        trigger = None
        if transition.fired:
            trigger = TriggerRecord(
                model=closed.model,
                fired_at=closed_at,
                state=transition.after,
                reason=transition.reason,
                evidence={"windows": transition.evidence, "model_version": closed.model_version},
                run_status="pending",
            )
        ids = [r.id for r in closed.rows if r.id is not None]
        stored_id = self.store.close_window(record, ids, candidate.to_state(), trigger)
        self.machines[closed.model] = candidate
        self._next_window_id = stored_id + 1
        if stored_id != window_id:  # another writer on this database: ids in evidence are off
            logger.warning("window recorded as %d, expected %d", stored_id, window_id)
        model, version = closed.model, closed.model_version
        outcome = "too_small" if not closed.tested else ("drift" if drift else "no_drift")
        self.metrics.windows.labels(model, version, outcome).inc()
        self.metrics.last_window.labels(model).set(now)
        if closed.tested:
            self.metrics.record_window(model, version, result)
            if estimate is not None:
                self.metrics.record_estimate(model, version, estimate)
        self.metrics.set_trigger_state(model, transition.after)
        logger.info(
            "window %d of %s v%s: %d rows, %s%s",
            window_id,
            model,
            version,
            len(closed.rows),
            outcome,
            f", drifted: {', '.join(drifted)}" if drifted else "",
        )
        if trigger is not None:
            recorded = self.store.triggers(model)[-1]  # the one just recorded (one writer)
            self.metrics.triggers.labels(model).inc()
            logger.warning(
                "retraining trigger %s for %s: %s", recorded.id, model, transition.reason
            )
            self._launch(recorded)

    # -- triggers ----------------------------------------------------------------------
    def _launch(self, trigger: TriggerRecord) -> None:
        """Start the trigger's training run off the worker thread; record its id or failure."""
        if self.launcher is None:
            logger.warning("no launcher configured: trigger %s starts no run", trigger.id)
            self.store.update_trigger_run(trigger.id, None, "no_launcher")
            return
        launcher = self.launcher

        def start() -> None:
            try:
                run_id = launcher.launch(
                    {
                        "reason": trigger.reason,
                        "evidence": trigger.evidence.get("windows", []),
                        "model": trigger.model,
                        "trigger_id": trigger.id,
                    }
                )
            except Exception as err:  # the reason is recorded with the trigger
                logger.error("trigger %s: the training run did not start: %s", trigger.id, err)
                self.store.update_trigger_run(trigger.id, None, f"failed: {err}"[:500])
                return
            logger.info("trigger %s started training run %s", trigger.id, run_id)
            self.store.update_trigger_run(trigger.id, run_id, "started")

        thread = threading.Thread(target=start, name=f"launch-{trigger.id}", daemon=True)
        thread.start()
        self._launches.append(thread)

    def wait_for_launches(self, timeout_s: float | None = None) -> None:
        """Wait for started launches (tests and shutdown)."""
        for thread in self._launches:
            thread.join(timeout_s)

    # -- labels ------------------------------------------------------------------------
    def ingest_labels(self, labels: Sequence[Label]) -> int:
        """Store delayed labels and refresh the realized figures; the labels newly stored."""
        stored = self.store.add_labels(labels)
        self.refresh_realized()
        return stored

    def refresh_realized(self) -> None:
        """Realized performance per version and cohort from the labels in; decay for the trigger."""
        name = self.watched.name
        cohorts = realized_performance(self.store, name, self.config)
        scored = [c for c in cohorts if c.scored]
        if not scored:
            return
        newest = scored[-1]
        for figure in ("roc_auc", "f1"):
            value = getattr(newest, figure)
            if value is not None:
                self.metrics.realized[figure].labels(name, newest.model_version).set(value)
        if newest.gap is not None:
            self.metrics.estimate_gap.labels(name, newest.model_version).set(newest.gap)
        decay = decay_confirmed(
            scored, self.config.monitor.floors, self.config.monitor.trigger.decay_cohorts
        )
        self.decay[name] = bool(decay)

    # -- status ------------------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        """What the service knows, JSON-ready (for `GET /status` and the demo)."""
        name = self.watched.name
        machine = self._machine(name)
        windows = self.store.windows(name, limit=5)
        return {
            "model": name,
            "model_version": self.watched.version,
            "open_windows": {f"{m} v{v}": len(w.rows) for (m, v), w in self.open.items()},
            "waiting_halves": self.joiner.waiting,
            "trigger_state": machine.state,
            "decay": self.decay.get(name, False),
            "recent_windows": [
                {
                    "id": w.id,
                    "model_version": w.model_version,
                    "closed_at": w.closed_at.isoformat(),
                    "samples": w.samples,
                    "drift": w.drift,
                    "drifted_features": (w.result or {}).get("drifted_features", []),
                }
                for w in windows
            ],
            "triggers": [
                {
                    "id": t.id,
                    "fired_at": t.fired_at.isoformat(),
                    "reason": t.reason,
                    "run_id": t.run_id,
                    "run_status": t.run_status,
                }
                for t in self.store.triggers(name)
            ],
        }


def _lows(estimate: dict[str, Any] | None) -> dict[str, float] | None:
    """The lower interval bounds of an estimate's ROC-AUC and F1."""
    if not estimate:
        return None
    out = {}
    for figure in ("roc_auc", "f1"):
        entry = estimate.get(figure)
        if isinstance(entry, dict) and entry.get("low") is not None:
            out[figure] = float(entry["low"])
    return out
