"""The retraining trigger's state machine: every transition, the rules, the stored state."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from churn_core.config import FloorsConfig, TriggerConfig
from churn_core.errors import InvalidInput
from churn_monitoring.trigger import TriggerMachine, WindowEvidence, causes

T0 = datetime(2026, 1, 1, tzinfo=UTC)
FLOORS = FloorsConfig(roc_auc=0.75, f1=0.5)


def ev(window_id: int, *, bad: bool = False, samples: int = 500, **kw: Any) -> WindowEvidence:
    fields: dict[str, Any] = {
        "drifted_features": ("tenure",) if bad else (),
        "effects": {"tenure": 0.25 if bad else 0.02, "MonthlyCharges": 0.01},
    }
    fields.update(kw)
    return WindowEvidence(
        window_id=window_id,
        model="churn",
        model_version="3",
        samples=samples,
        closed_at=T0 + timedelta(days=window_id),
        **fields,
    )


def machine(**kw: Any) -> TriggerMachine:
    base = {"k": 3, "n": 5, "cooldown_windows": 4, "min_samples": 200}
    return TriggerMachine(TriggerConfig(**{**base, **kw}), FLOORS)


def feed(m: TriggerMachine, pattern: str, start: int = 1) -> list[tuple[str, str, bool]]:
    """Observe one window per character: B bad, g good, s small; (before, after, fired)."""
    out = []
    for i, c in enumerate(pattern, start):
        t = m.observe(ev(i, bad=c == "B", samples=100 if c == "s" else 500))
        out.append((t.before, t.after, t.fired))
    return out


def test_good_windows_stay_ok() -> None:
    assert feed(machine(), "ggggggg") == [("OK", "OK", False)] * 7


def test_ok_suspect_triggered_cooldown_ok() -> None:
    steps = feed(machine(), "gBgBB" + "gggg" + "g")
    assert steps == [
        ("OK", "OK", False),
        ("OK", "SUSPECT", False),
        ("SUSPECT", "SUSPECT", False),
        ("SUSPECT", "SUSPECT", False),
        ("SUSPECT", "TRIGGERED", True),  # 3 of the last 5
        ("TRIGGERED", "COOLDOWN", False),
        ("COOLDOWN", "COOLDOWN", False),
        ("COOLDOWN", "COOLDOWN", False),
        ("COOLDOWN", "OK", False),  # 4 cooldown windows
        ("OK", "OK", False),
    ]


def test_suspect_returns_to_ok_when_the_bad_windows_leave_the_last_n() -> None:
    steps = feed(machine(), "BBggggg")
    assert [s[1] for s in steps] == ["SUSPECT"] * 6 + ["OK"]
    assert not any(s[2] for s in steps)


def test_k_bad_windows_spread_wider_than_n_never_fire() -> None:
    m = machine()
    steps = feed(m, "BggggBggggBgggg" * 4)
    assert not any(s[2] for s in steps) and m.fired == 0


def test_k_of_1_fires_from_ok_directly() -> None:
    assert feed(machine(k=1, n=1), "B")[0] == ("OK", "TRIGGERED", True)


def test_fires_exactly_once_per_episode_however_long_the_drift_lasts() -> None:
    m = machine(cooldown_windows=4)
    steps = feed(m, "B" * 12)
    fired = [i for i, s in enumerate(steps, 1) if s[2]]
    # fires at 3; windows 4-7 are the cooldown (not counted); a new episode needs k more
    assert fired == [3, 10]
    assert m.fired == 2


def test_cooldown_windows_are_not_counted_and_history_restarts_empty() -> None:
    m = machine(cooldown_windows=2)
    feed(m, "BBB")
    assert m.state == "TRIGGERED"
    feed(m, "BB", start=4)  # cooldown: bad, but not counted
    assert m.state == "OK" and m.history == []
    steps = feed(m, "BB", start=6)
    assert steps == [("OK", "SUSPECT", False), ("SUSPECT", "SUSPECT", False)]


def test_no_cooldown_counts_the_next_window_from_an_empty_history() -> None:
    m = machine(cooldown_windows=0, k=2, n=2)
    steps = feed(m, "BBBB")
    assert steps == [
        ("OK", "SUSPECT", False),
        ("SUSPECT", "TRIGGERED", True),
        ("TRIGGERED", "SUSPECT", False),
        ("SUSPECT", "TRIGGERED", True),
    ]


def test_small_windows_count_neither_way() -> None:
    m = machine()
    steps = feed(m, "BsBsssB")
    assert [s[2] for s in steps] == [False] * 6 + [True]
    assert [h["evidence"]["window_id"] for h in m.history] == [1, 3, 7]
    # a small window does not push a bad one out of the last n either
    m = machine(k=2, n=2)
    assert feed(m, "Bsssss" + "B")[-1] == ("SUSPECT", "TRIGGERED", True)
    t = machine().observe(ev(1, bad=True, samples=199))
    assert (t.after, t.fired) == ("OK", False)
    assert "199 samples < min_samples 200" in t.reason


def test_a_small_window_still_counts_as_a_cooldown_window() -> None:
    m = machine(cooldown_windows=2)
    feed(m, "BBBss")
    assert m.state == "OK"


def test_the_features_filter() -> None:
    cfg = TriggerConfig(features=("Contract", "tenure"))
    assert causes(ev(1, drifted_features=("MonthlyCharges",)), cfg, FLOORS) == []
    assert causes(ev(1, drifted_features=("MonthlyCharges", "tenure")), cfg, FLOORS) == [
        "drift on tenure (effect 0.020)"
    ]
    every = TriggerConfig(features=())
    assert causes(ev(1, drifted_features=("MonthlyCharges",)), every, FLOORS) == [
        "drift on MonthlyCharges (effect 0.010)"
    ]


def test_estimate_floors_count_only_when_the_estimate_is_reliable() -> None:
    cfg = TriggerConfig()
    low = {"roc_auc": 0.72, "f1": 0.55}
    assert causes(ev(1, estimate_low=low, estimate_reliable=True), cfg, FLOORS) == [
        "estimated roc_auc lower bound 0.720 < floor 0.750"
    ]
    assert causes(ev(1, estimate_low=low, estimate_reliable=False), cfg, FLOORS) == []
    above = {"roc_auc": 0.80, "f1": 0.55}
    assert causes(ev(1, estimate_low=above, estimate_reliable=True), cfg, FLOORS) == []
    f1 = {"f1": 0.45}
    assert causes(ev(1, estimate_low=f1, estimate_reliable=True), cfg, FLOORS) == [
        "estimated f1 lower bound 0.450 < floor 0.500"
    ]
    m = machine(k=1, n=1)
    t = m.observe(ev(1, estimate_low=low, estimate_reliable=True))
    assert t.fired and "estimated roc_auc lower bound 0.720 < floor 0.750" in t.reason


def test_decay_alone_makes_a_window_bad() -> None:
    cfg = TriggerConfig(decay_cohorts=2)
    assert causes(ev(1, decay=True), cfg, FLOORS) == ["realized decay (2 cohorts below a floor)"]
    assert causes(ev(1, decay=True, samples=10), cfg, FLOORS) == []
    m = machine(k=2, n=3)
    steps = [m.observe(ev(i, decay=True)) for i in (1, 2)]
    assert [t.fired for t in steps] == [False, True]


def test_the_reason_names_rule_features_effects_estimates_and_windows() -> None:
    m = machine()
    m.observe(ev(10, bad=True))
    m.observe(ev(11))
    m.observe(ev(12, drifted_features=("Contract",), effects={"Contract": 0.31}, decay=False))
    t = m.observe(ev(13, estimate_low={"roc_auc": 0.70}, estimate_reliable=True))
    assert t.fired
    assert t.reason == (
        "retraining churn (serving version 3): 3 of the last 4 windows of at least 200 "
        "samples were bad (rule: 3 of the last 5, then 4 windows of cooldown): "
        "window 10: drift on tenure (effect 0.250); "
        "window 12: drift on Contract (effect 0.310); "
        "window 13: estimated roc_auc lower bound 0.700 < floor 0.750."
    )
    assert [e["evidence"]["window_id"] for e in t.evidence] == [10, 11, 12, 13]
    assert [e["bad"] for e in t.evidence] == [True, False, True, True]
    json.dumps(t.as_dict())  # recorded with the trigger and sent to the run as JSON


def test_a_non_firing_transition_explains_itself() -> None:
    t = machine().observe(ev(7, bad=True))
    assert t.reason == (
        "window 7 bad: drift on tenure (effect 0.250); 1 of the last 1 counted windows (7) "
        "bad (trigger at 3 of 5)"
    )


def test_state_round_trip_continues_identically() -> None:
    pattern = "gBsBgBBBBgggBBgBBB" * 2
    straight = machine()
    expected = [
        straight.observe(ev(i, bad=c == "B", samples=100 if c == "s" else 500))
        for i, c in enumerate(pattern, 1)
    ]
    resumed = machine()
    got = []
    for i, c in enumerate(pattern, 1):
        state = json.loads(json.dumps(resumed.to_state()))  # as the service stores it
        resumed = TriggerMachine(resumed.config, FLOORS, state)
        got.append(resumed.observe(ev(i, bad=c == "B", samples=100 if c == "s" else 500)))
    assert got == expected
    assert resumed.to_state() == straight.to_state()
    assert sum(t.fired for t in got) >= 2


def test_a_window_seen_again_after_a_restart_repeats_nothing() -> None:
    m = machine()
    feed(m, "BBB")
    assert m.state == "TRIGGERED"
    state = m.to_state()
    again = TriggerMachine(m.config, FLOORS, state)
    t = again.observe(ev(3, bad=True))
    assert (t.before, t.after, t.fired) == ("TRIGGERED", "TRIGGERED", False)
    assert "already observed" in t.reason
    assert again.to_state() == state


def test_evidence_round_trip_and_clear_errors() -> None:
    e = ev(5, bad=True, estimate_low={"roc_auc": 0.8, "f1": 0.6}, estimate_reliable=True)
    assert WindowEvidence.from_dict(json.loads(json.dumps(e.as_dict()))) == e
    with pytest.raises(InvalidInput, match="missing keys \\['samples'\\]"):
        WindowEvidence.from_dict({k: v for k, v in e.as_dict().items() if k != "samples"})
    with pytest.raises(InvalidInput, match="unknown keys \\['colour'\\]"):
        WindowEvidence.from_dict({**e.as_dict(), "colour": 1})
    with pytest.raises(InvalidInput, match="estimate_low figure 'pr_auc'"):
        ev(1, estimate_low={"pr_auc": 0.1})
    with pytest.raises(InvalidInput, match="closed_at 'yesterday'"):
        WindowEvidence.from_dict({**e.as_dict(), "closed_at": "yesterday"})


def test_evidence_of_another_model_and_bad_state_are_refused() -> None:
    m = machine()
    m.observe(ev(1))
    other = WindowEvidence(2, "other", "1", 500, T0)
    with pytest.raises(InvalidInput, match="this machine watches 'churn'"):
        m.observe(other)
    with pytest.raises(InvalidInput, match="format"):
        TriggerMachine(TriggerConfig(), FLOORS, {"format": 99})
    with pytest.raises(InvalidInput, match="state 'LOST'"):
        TriggerMachine(TriggerConfig(), FLOORS, {**m.to_state(), "state": "LOST"})
