"""The retraining trigger: one state machine per model, fed one evidence record per window.

::

    OK -> SUSPECT -> TRIGGERED -> COOLDOWN -> OK

A window is *bad* when it has at least ``min_samples`` rows and shows drift on a
feature that counts (``trigger.features``; every feature when empty), a
reliable label-free estimate whose lower bound is below its floor
(``monitor.floors``), or realized decay. A smaller window is no evidence: it
counts neither way. False alarms are budgeted over time, not per window: the
trigger fires when ``k`` of the last ``n`` counted windows are bad (a 5% false
alarm per window alone gives a 75% chance of one in 30 windows), exactly once,
then ignores ``cooldown_windows`` windows and starts again from OK with an
empty history.

`TriggerMachine.to_state()` is plain JSON: the drift service stores it in the
same transaction as the window, so a restart continues where it stopped and a
window seen twice (same or lower ``window_id``) changes nothing and fires
nothing.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal

from churn_core.config import FloorsConfig, TriggerConfig
from churn_core.errors import InvalidInput

if TYPE_CHECKING:
    from churn_model.drift import DriftResult

State = Literal["OK", "SUSPECT", "TRIGGERED", "COOLDOWN"]
STATES: tuple[State, ...] = ("OK", "SUSPECT", "TRIGGERED", "COOLDOWN")
FIGURES = tuple(FloorsConfig.model_fields)  # the estimated figures that have a floor
STATE_FORMAT = 1


def _bad_record(what: str, value: Any, expected: str) -> InvalidInput:
    return InvalidInput(f"trigger evidence: {what} {value!r}: expected {expected}")


@dataclass(frozen=True)
class WindowEvidence:
    """What one tested window says about one model version (the trigger's only input)."""

    window_id: int
    model: str
    model_version: str
    samples: int
    closed_at: datetime
    drifted_features: tuple[str, ...] = ()
    effects: dict[str, float] = field(default_factory=dict)  # effect size per feature
    estimate_low: dict[str, float] | None = None  # lower bounds of the estimated figures
    estimate_reliable: bool = False
    decay: bool = False  # realized figures below a floor for `decay_cohorts` cohorts

    def __post_init__(self) -> None:
        if isinstance(self.window_id, bool) or not isinstance(self.window_id, int):
            raise _bad_record("window_id", self.window_id, "an integer")
        if isinstance(self.samples, bool) or not isinstance(self.samples, int):
            raise _bad_record("samples", self.samples, "an integer")
        if self.samples < 0:
            raise _bad_record("samples", self.samples, "a count >= 0")
        if not self.model:
            raise _bad_record("model", self.model, "a model name")
        if not isinstance(self.closed_at, datetime):
            raise _bad_record("closed_at", self.closed_at, "a datetime")
        object.__setattr__(self, "drifted_features", tuple(self.drifted_features))
        for name, value in self.effects.items():
            if not isinstance(value, int | float) or math.isnan(value):
                raise _bad_record(f"effects[{name!r}]", value, "a number")
        for name, value in (self.estimate_low or {}).items():
            if name not in FIGURES:
                raise _bad_record("estimate_low figure", name, f"one of {FIGURES}")
            if not isinstance(value, int | float) or math.isnan(value):
                raise _bad_record(f"estimate_low[{name!r}]", value, "a number")

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready: `closed_at` as ISO 8601, tuples as lists."""
        return {
            "window_id": self.window_id,
            "model": self.model,
            "model_version": self.model_version,
            "samples": self.samples,
            "closed_at": self.closed_at.isoformat(),
            "drifted_features": list(self.drifted_features),
            "effects": {k: float(v) for k, v in self.effects.items()},
            "estimate_low": None
            if self.estimate_low is None
            else {k: float(v) for k, v in self.estimate_low.items()},
            "estimate_reliable": self.estimate_reliable,
            "decay": self.decay,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> WindowEvidence:
        """The record `as_dict` wrote; a missing or unknown key is an InvalidInput naming it."""
        required = ("window_id", "model", "model_version", "samples", "closed_at")
        optional = ("drifted_features", "effects", "estimate_low", "estimate_reliable", "decay")
        if not isinstance(data, Mapping):
            raise _bad_record("record", type(data).__name__, "a JSON object")
        missing = [k for k in required if k not in data]
        unknown = sorted(set(data) - set(required) - set(optional))
        if missing or unknown:
            raise InvalidInput(
                f"trigger evidence: missing keys {missing}, unknown keys {unknown}"
                f" (expected {required + optional})"
            )
        closed_at = data["closed_at"]
        if isinstance(closed_at, str):
            try:
                closed_at = datetime.fromisoformat(closed_at)
            except ValueError as err:
                raise _bad_record("closed_at", closed_at, "an ISO 8601 time") from err
        low = data.get("estimate_low")
        return cls(
            window_id=data["window_id"],
            model=str(data["model"]),
            model_version=str(data["model_version"]),
            samples=data["samples"],
            closed_at=closed_at,
            drifted_features=tuple(str(f) for f in data.get("drifted_features", ())),
            effects={str(k): v for k, v in dict(data.get("effects", {})).items()},
            estimate_low=None if low is None else {str(k): v for k, v in dict(low).items()},
            estimate_reliable=bool(data.get("estimate_reliable", False)),
            decay=bool(data.get("decay", False)),
        )


def from_drift(
    result: DriftResult,
    *,
    window_id: int,
    model: str,
    model_version: str,
    closed_at: datetime,
    estimate_low: dict[str, float] | None = None,
    estimate_reliable: bool = False,
    decay: bool = False,
) -> WindowEvidence:
    """The evidence of a window tested by `churn_model.drift` (its rows, drifted features)."""
    return WindowEvidence(
        window_id=window_id,
        model=model,
        model_version=model_version,
        samples=result.n,
        closed_at=closed_at,
        drifted_features=tuple(result.drifted_features),
        effects={f.name: float(f.effect) for f in result.features},
        estimate_low=estimate_low,
        estimate_reliable=estimate_reliable,
        decay=decay,
    )


def causes(evidence: WindowEvidence, config: TriggerConfig, floors: FloorsConfig) -> list[str]:
    """Why a window is bad, one phrase per cause; empty when it is not (or is no evidence)."""
    if evidence.samples < config.min_samples:
        return []
    out = []
    counted = [f for f in evidence.drifted_features if not config.features or f in config.features]
    if counted:
        parts = [
            f"{f} (effect {evidence.effects[f]:.3f})" if f in evidence.effects else f
            for f in counted
        ]
        out.append("drift on " + ", ".join(parts))
    if evidence.estimate_reliable and evidence.estimate_low:
        for name, low in evidence.estimate_low.items():
            floor = float(getattr(floors, name))
            if low < floor:
                out.append(f"estimated {name} lower bound {low:.3f} < floor {floor:.3f}")
    if evidence.decay:
        out.append(f"realized decay ({config.decay_cohorts} cohorts below a floor)")
    return out


@dataclass(frozen=True)
class Transition:
    """One step of the machine: the states around a window, and whether it fired."""

    before: State
    after: State
    fired: bool
    reason: str
    evidence: list[dict[str, Any]]  # the windows behind the step (each with `bad`, `causes`)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready, as the drift service records a trigger."""
        return {
            "before": self.before,
            "after": self.after,
            "fired": self.fired,
            "reason": self.reason,
            "evidence": self.evidence,
        }


def _window_list(ids: Sequence[int]) -> str:
    return ", ".join(str(i) for i in ids)


class TriggerMachine:
    """OK -> SUSPECT -> TRIGGERED -> COOLDOWN -> OK for one model, k of the last n windows.

    `state` is what `to_state()` returned: a machine rebuilt from it continues
    identically. The machine belongs to the first model it sees (or the one in
    `state`); evidence of another model is refused.
    """

    def __init__(
        self, config: TriggerConfig, floors: FloorsConfig, state: dict[str, Any] | None = None
    ) -> None:
        self.config = config
        self.floors = floors
        self.state: State = "OK"
        self.model: str | None = None
        self.history: list[dict[str, Any]] = []  # the last n counted windows, oldest first
        self.cooldown_left = 0
        self.last_window_id: int | None = None
        self.fired = 0  # triggers so far
        if state is not None:
            self._load(state)

    # -- state -------------------------------------------------------------------------

    def to_state(self) -> dict[str, Any]:
        """The machine as plain JSON (stored with the window, atomically)."""
        return {
            "format": STATE_FORMAT,
            "model": self.model,
            "state": self.state,
            "history": [dict(h) for h in self.history],
            "cooldown_left": self.cooldown_left,
            "last_window_id": self.last_window_id,
            "fired": self.fired,
        }

    def _load(self, state: Mapping[str, Any]) -> None:
        if not isinstance(state, Mapping) or state.get("format") != STATE_FORMAT:
            got = state.get("format") if isinstance(state, Mapping) else type(state).__name__
            raise InvalidInput(f"trigger state: format {got!r}: expected {STATE_FORMAT}")
        if state.get("state") not in STATES:
            raise InvalidInput(f"trigger state: state {state.get('state')!r}: expected {STATES}")
        try:
            history = [
                {
                    "bad": bool(h["bad"]),
                    "causes": [str(c) for c in h["causes"]],
                    "evidence": WindowEvidence.from_dict(h["evidence"]).as_dict(),
                }
                for h in state["history"]
            ]
            self.cooldown_left = int(state["cooldown_left"])
            self.fired = int(state["fired"])
            last = state["last_window_id"]
        except (KeyError, TypeError, ValueError) as err:
            raise InvalidInput(f"trigger state: malformed ({err!r})") from err
        self.state = state["state"]
        self.model = state.get("model")
        self.history = history[-self.config.n :]
        self.last_window_id = None if last is None else int(last)

    # -- one window --------------------------------------------------------------------

    def observe(self, evidence: WindowEvidence) -> Transition:
        """Take one window's evidence; the transition it caused (`fired` at most once)."""
        if self.model is None:
            self.model = evidence.model
        elif evidence.model != self.model:
            raise InvalidInput(
                f"trigger evidence: model {evidence.model!r}: this machine watches {self.model!r}"
            )
        before = self.state
        w = evidence.window_id
        if self.last_window_id is not None and w <= self.last_window_id:
            return Transition(
                before,
                before,
                False,
                f"window {w} was already observed (last {self.last_window_id}): nothing changes",
                [],
            )
        self.last_window_id = w
        if before in ("TRIGGERED", "COOLDOWN") and self.cooldown_left > 0:
            self.cooldown_left -= 1
            if self.cooldown_left > 0:
                self.state = "COOLDOWN"
                why = f"cooldown: window {w} not counted, {self.cooldown_left} windows left"
            else:
                self.state, self.history = "OK", []
                why = f"cooldown over after window {w} (not counted): OK with an empty history"
            return Transition(before, self.state, False, why, [])
        if before in ("TRIGGERED", "COOLDOWN"):  # no cooldown configured
            self.state, self.history = "OK", []
        return self._count(before, evidence)

    def _count(self, before: State, evidence: WindowEvidence) -> Transition:
        cfg, w = self.config, evidence.window_id
        if evidence.samples < cfg.min_samples:
            return Transition(
                before,
                self.state,
                False,
                f"window {w} has {evidence.samples} samples < min_samples {cfg.min_samples}: "
                "no evidence either way",
                [],
            )
        why = causes(evidence, cfg, self.floors)
        entry = {"bad": bool(why), "causes": why, "evidence": evidence.as_dict()}
        self.history = [*self.history, entry][-cfg.n :]
        bad = [h for h in self.history if h["bad"]]
        ids = [h["evidence"]["window_id"] for h in self.history]
        verdict = f"window {w} bad: {'; '.join(why)}" if why else f"window {w} not bad"
        tally = (
            f"{len(bad)} of the last {len(self.history)} counted windows ({_window_list(ids)}) bad"
        )
        if len(bad) >= cfg.k:
            self.state, self.cooldown_left = "TRIGGERED", cfg.cooldown_windows
            self.fired += 1
            return Transition(before, "TRIGGERED", True, self._reason(bad), [*self.history])
        self.state = "SUSPECT" if bad else "OK"
        rule = f"(trigger at {cfg.k} of {cfg.n})"
        return Transition(before, self.state, False, f"{verdict}; {tally} {rule}", [entry])

    def _reason(self, bad: list[dict[str, Any]]) -> str:
        cfg = self.config
        ev = bad[-1]["evidence"]
        windows = "; ".join(
            f"window {h['evidence']['window_id']}: {', '.join(h['causes'])}" for h in bad
        )
        return (
            f"retraining {ev['model']} (serving version {ev['model_version']}): "
            f"{len(bad)} of the last {len(self.history)} windows of at least "
            f"{cfg.min_samples} samples were bad (rule: {cfg.k} of the last {cfg.n}, "
            f"then {cfg.cooldown_windows} windows of cooldown): {windows}."
        )
