"""Alarms with hysteresis: an explicit state machine per (kind, subject), pure over observations.

Each sampling round the rules (monitoring/alarm_rules.py) turn the figures into observations:
a value, the threshold it must cross to raise, and the level it must return to before clearing.
An alarm raises after `raise_samples` consecutive observations beyond its threshold and clears
after `clear_samples` consecutive ones back within the clear level, so a value wavering at the
threshold neither floods the operators nor hides. A subject that is no longer observed (the leg
left, the node came back) counts as within. Conditions already debounced where they are measured
(a node down, a site absent for minutes) are `immediate`: one observation raises or clears.
"""
from __future__ import annotations

import enum
import logging
from dataclasses import dataclass, field
from typing import Any

from monitoring.alarm_config import Hysteresis

log = logging.getLogger("monitoring.alarms")


class AlarmKind(str, enum.Enum):
    LOSS = "leg_loss"
    JITTER = "leg_jitter"  # one figure for audio and video together (a node that reports them so)
    JITTER_AUDIO = "leg_jitter_audio"
    JITTER_VIDEO = "leg_jitter_video"
    RTT = "leg_rtt"
    MOS = "leg_mos"
    OVER_RESERVED = "link_over_reserved"
    OVER_RATE = "link_over_rate"
    ABSENT = "site_absent"
    NODE_DOWN = "node_down"
    OVER_RESERVATION = "over_reservation"  # a site's camera sends above its reserved rate: the node drops frames


class AlarmState(str, enum.Enum):
    OK = "ok"
    PENDING = "pending"  # beyond, not yet long enough to raise
    RAISED = "raised"
    CLEARING = "clearing"  # raised, back within, not yet long enough to clear


@dataclass(frozen=True)
class Observation:
    kind: AlarmKind
    subject: str  # what the alarm is about: "ses_x/cc-antu", "cc-antu/down", "node-cc"
    value: float
    threshold: float
    clear_at: float
    message: str  # words for a person: "Antu County: 7.5 % packet loss (alarm above 2 %)"
    below: bool = False  # raises when the value falls below the threshold (MOS)
    immediate: bool = False
    context: dict[str, str | None] = field(default_factory=dict)  # session, site, link, node

    def beyond(self) -> bool:
        return self.value < self.threshold if self.below else self.value > self.threshold

    def within_clear(self) -> bool:
        return self.value >= self.clear_at if self.below else self.value <= self.clear_at


@dataclass(frozen=True)
class AlarmEvent:
    event: str  # raised | cleared
    kind: AlarmKind
    subject: str
    value: float | None
    threshold: float
    message: str
    context: dict[str, str | None]
    at: float

    def to_dict(self) -> dict[str, Any]:
        return {"event": self.event, "kind": self.kind.value, "subject": self.subject, "value": self.value,
                "threshold": self.threshold, "message": self.message, **self.context, "at": self.at}


@dataclass
class _Tracked:
    state: AlarmState
    count: int
    last: Observation


class AlarmEngine:
    def __init__(self, hysteresis: Hysteresis = Hysteresis()):
        self.h = hysteresis
        self.tracked: dict[tuple[AlarmKind, str], _Tracked] = {}
        self.transitions: list[tuple[str, str, str]] = []  # (subject, old, new): tests read the sequence

    def adopt(self, row: dict[str, Any]) -> tuple[AlarmKind, str] | None:
        """An alarm another holder raised (a stored row): tracked as raised, so it clears, not re-raises."""
        try:
            kind = AlarmKind(row["kind"])
        except ValueError:
            return None
        value = float(row.get("value") or 0.0)
        threshold = float(row.get("threshold") or 0.0)
        o = Observation(kind, row["subject"], value, threshold, threshold, row["message"],
                        context={"session": row.get("session_id"), "site": row.get("site_id"),
                                 "link": row.get("link_id"), "node": row.get("node_id")})
        key = (kind, row["subject"])
        self.tracked[key] = _Tracked(AlarmState.RAISED, 0, o)
        return key

    def raised(self) -> list[Observation]:
        return [t.last for t in self.tracked.values() if t.state in (AlarmState.RAISED, AlarmState.CLEARING)]

    def step(self, observations: list[Observation], now: float) -> list[AlarmEvent]:
        events: list[AlarmEvent] = []
        seen = set()
        for o in observations:
            key = (o.kind, o.subject)
            seen.add(key)
            events += self._observe(key, o, o.beyond(), o.within_clear(), now)
        for key in [k for k in self.tracked if k not in seen]:  # not observed: within
            t = self.tracked[key]
            events += self._observe(key, t.last, False, True, now, gone=True)
        return events

    def _set(self, key: tuple[AlarmKind, str], t: _Tracked, new: AlarmState, count: int) -> None:
        if new is not t.state:
            log.info("alarm %s %s: %s -> %s", key[0].value, key[1], t.state.value, new.value)
            self.transitions.append((key[1], t.state.value, new.value))
        t.state, t.count = new, count

    def _observe(self, key: tuple[AlarmKind, str], o: Observation, beyond: bool, within: bool, now: float,
                 gone: bool = False) -> list[AlarmEvent]:
        t = self.tracked.get(key)
        if t is None:
            if not beyond:
                return []
            t = self.tracked[key] = _Tracked(AlarmState.OK, 0, o)
        if not gone:
            t.last = o
        need_raise = 1 if o.immediate else self.h.raise_samples
        need_clear = 1 if o.immediate or gone else self.h.clear_samples
        if t.state in (AlarmState.OK, AlarmState.PENDING):
            if not beyond:
                self._set(key, t, AlarmState.OK, 0)
                del self.tracked[key]
                return []
            count = t.count + 1
            if count >= need_raise:
                self._set(key, t, AlarmState.RAISED, 0)
                return [self._event("raised", o, now)]
            self._set(key, t, AlarmState.PENDING, count)
            return []
        if not within:  # raised, still (or again) beyond the clear level
            self._set(key, t, AlarmState.RAISED, 0)
            return []
        count = t.count + 1 if t.state is AlarmState.CLEARING else 1
        if count >= need_clear:
            self._set(key, t, AlarmState.OK, 0)
            del self.tracked[key]
            return [self._event("cleared", t.last, now, value=None if gone else o.value)]
        self._set(key, t, AlarmState.CLEARING, count)
        return []

    @staticmethod
    def _event(kind: str, o: Observation, now: float, value: float | None = ...) -> AlarmEvent:  # type: ignore[assignment]
        return AlarmEvent(kind, o.kind, o.subject, o.value if value is ... else value, o.threshold, o.message,
                          dict(o.context), now)
