"""Request and response events joined on `ce-id`, duplicates dropped, the unmatched counted.

The logger sends a request event for every request and a response event
only for an HTTP 200, each once, in no guaranteed order (a broker may
reorder, a retrying sender may repeat). `Joiner` keeps each half until its
partner arrives or `timeout_s` passes:

- a second event with the same (`ce-id`, `ce-type`) within `dedupe_s` is a
  duplicate and is dropped (counted);
- a request whose response never comes (the server refused it, or the
  response was lost) expires as unmatched `no_response`; a response whose
  request never comes as `no_request`;
- an event whose partner already expired is `late`: counted, never joined.

Time is passed in (`now`, seconds), so the joiner is a plain object that a
test drives with any clock.
"""

from __future__ import annotations

from collections import Counter, OrderedDict
from dataclasses import dataclass, field
from typing import Any

from churn_monitoring.events import REQUEST_TYPE, CloudEvent

UNMATCHED_REASONS = ("no_response", "no_request", "late")


@dataclass(frozen=True)
class Pair:
    """A request and its response."""

    request: CloudEvent
    response: CloudEvent
    received_at: float  # when the later of the two arrived


@dataclass
class JoinCounts:
    """What the joiner did with the events since the last `take_counts`."""

    duplicates: int = 0
    unmatched: Counter[str] = field(default_factory=Counter)


class Joiner:
    """Pairs request and response events by `ce-id` within `timeout_s`."""

    def __init__(self, timeout_s: float, dedupe_s: float) -> None:
        self.timeout_s = timeout_s
        self.dedupe_s = max(dedupe_s, timeout_s)
        # the keys are hashes of (ce-id, ce-type): a third of the memory of the strings, which
        # matters at thousands of events a second over `dedupe_s` (memory ~ rate x dedupe_s)
        self._seen: OrderedDict[int, float] = OrderedDict()
        self._waiting: OrderedDict[str, tuple[CloudEvent, float]] = OrderedDict()
        self._expired: OrderedDict[str, float] = OrderedDict()  # ids whose half timed out
        self._counts = JoinCounts()

    @property
    def waiting(self) -> int:
        """Halves waiting for their partner."""
        return len(self._waiting)

    def add(self, event: CloudEvent, now: float) -> Pair | None:
        """Take one event; the pair when it completes one, else None."""
        self.expire(now)
        key = hash(event.key)
        if key in self._seen:
            self._counts.duplicates += 1
            return None
        self._seen[key] = now
        if event.id in self._expired:
            self._counts.unmatched["late"] += 1
            return None
        held = self._waiting.pop(event.id, None)
        if held is None:
            self._waiting[event.id] = (event, now)
            return None
        other, _ = held
        if other.type == event.type:  # same type, other ce-id spelling cannot happen; be safe
            self._waiting[event.id] = held
            self._counts.duplicates += 1
            return None
        request, response = (other, event) if other.type == REQUEST_TYPE else (event, other)
        return Pair(request, response, now)

    def expire(self, now: float) -> None:
        """Count and forget halves older than `timeout_s`, and dedupe keys older than `dedupe_s`."""
        limit = now - self.timeout_s
        while self._waiting:
            event_id, (event, at) = next(iter(self._waiting.items()))
            if at > limit:
                break
            del self._waiting[event_id]
            reason = "no_response" if event.type == REQUEST_TYPE else "no_request"
            self._counts.unmatched[reason] += 1
            self._expired[event_id] = at
        forget = now - self.dedupe_s
        _forget_before(self._seen, forget)
        _forget_before(self._expired, forget)

    def flush(self) -> None:
        """Expire every waiting half now (at shutdown: they are unmatched)."""
        self.expire(float("inf"))

    def take_counts(self) -> JoinCounts:
        """The counts since the last call, reset."""
        counts, self._counts = self._counts, JoinCounts()
        return counts


def _forget_before(memory: OrderedDict[Any, float], limit: float) -> None:
    """Drop the entries (in time order) noted at or before `limit`."""
    while memory:
        key, at = next(iter(memory.items()))
        if at > limit:
            break
        del memory[key]
