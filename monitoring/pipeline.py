"""The quality pipeline: every leg sampled every SAMPLE_S, scored, and kept for 15 minutes.

Each sample reads the nodes' cumulative counters (the in-process node directly, node processes
through their /figures) and turns the differences since the previous sample into rates: loss %
of what the site sends, jitter and RTT from RTCP, kbit/s each way, the frame rate the site
delivers, freezes the node saw while forwarding to it, an audio MOS (monitoring/emodel.py) and a
video score (monitoring/video_score.py). Node-to-node legs (trunks) are sampled for kbit/s.
`sample` is pure over the figures it is given, so it is tested without a network.
"""
from __future__ import annotations

import logging
from collections import deque
from dataclasses import asdict, dataclass
from typing import Any, Sequence

from media.contracts.node import EndedLeg, PhoneLeg, SessionFigures, WebrtcLeg
from monitoring.emodel import OPUS, G711, audio_mos
from monitoring.video_score import video_score

log = logging.getLogger("monitoring.pipeline")
SAMPLE_S = 3.0
HISTORY_S = 15 * 60
PLAYOUT_MS = 40  # jitter buffer and codec delay added to half the RTT for the E-model's mouth-to-ear delay


@dataclass(frozen=True)
class LegSample:
    t: float  # epoch seconds
    session: str
    node: str
    site: str  # a trunk's "child->parent"
    kind: str  # webrtc | sip | trunk
    kbps_in: float
    kbps_out: float
    loss_pct: float | None = None
    jitter_ms: float | None = None
    rtt_ms: float | None = None
    fps: float | None = None
    resolution: str | None = None
    freezes: int = 0
    mos: float | None = None
    video_score: float | None = None
    # jitter by medium, where the node reports it so ("jitter_ms_by_kind"; a phone is audio only);
    # `jitter_ms` is then the larger of the two, as a node that reports one figure gives it
    jitter_audio_ms: float | None = None
    jitter_video_ms: float | None = None
    policed_frames: int = 0  # the node's count of the site's camera frames dropped over its reservation (cumulative)

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.session, self.node, self.site)


@dataclass
class Figures:
    """What the nodes said in one round: each session's live legs and trunks, and legs that ended lately."""
    sessions: list[SessionFigures]
    ended: list[EndedLeg]


def _pixels(resolution: str | None) -> int | None:
    try:
        w, h = (int(x) for x in (resolution or "").split("x"))
        return w * h
    except ValueError:
        return None


class QualityPipeline:
    def __init__(self) -> None:
        self.history: dict[tuple[str, str, str], deque[LegSample]] = {}
        self.latest: dict[tuple[str, str, str], LegSample] = {}
        self._prev: dict[tuple[str, str, str], tuple[float, Counters]] = {}
        self.first_seen: dict[tuple[str, str, str], float] = {}
        self.vanished: list[tuple[tuple[str, str, str], float, float]] = []  # (key, first seen, last seen), last sample

    def sample(self, sessions: Sequence[SessionFigures], now: float) -> list[LegSample]:
        """One sample of every leg in `sessions` (the nodes' figures); legs gone since are dropped."""
        out: list[LegSample] = []
        seen: set[tuple[str, str, str]] = set()
        for s in sessions:
            node = s.node or "in-process"
            for leg in s.legs:
                key = (str(s.session), leg.node or node, str(leg.site))
                counters = _counters(leg)
                seen.add(key)
                sample = self._leg(key, counters, leg, now)
                if sample is not None:
                    out.append(sample)
            for trunk in s.trunks or []:
                key = (str(s.session), node, f"{trunk.child}->{trunk.parent}")
                seen.add(key)
                counters = Counters(trunk.bytes_up, trunk.bytes_down)
                prev = self._prev.get(key)
                self._prev[key] = (now, counters)
                if prev is not None and now > prev[0]:
                    dt = now - prev[0]
                    out.append(LegSample(now, key[0], node, key[2], "trunk",
                                         _rate(counters.bytes_in, prev[1].bytes_in, dt), _rate(counters.bytes_out, prev[1].bytes_out, dt)))
        self.vanished = []
        for key in set(self._prev) - seen:  # a leg that vanished between samples: forget it, keep its history
            last_seen = self._prev.pop(key)[0]
            self.vanished.append((key, self.first_seen.pop(key, last_seen), last_seen))
            self.latest.pop(key, None)
        for key in seen:
            self.first_seen.setdefault(key, now)
        for key in [k for k, h in self.history.items() if k not in self.latest and h and h[-1].t < now - HISTORY_S]:
            del self.history[key]  # a leg gone for 15 minutes: its minutes and call record are stored
        for smp in out:
            self.latest[smp.key] = smp
            self.history.setdefault(smp.key, deque(maxlen=int(HISTORY_S / SAMPLE_S))).append(smp)
        return out

    def _leg(self, key: tuple[str, str, str], c: Counters, leg: WebrtcLeg | PhoneLeg,
             now: float) -> LegSample | None:
        prev = self._prev.get(key)
        self._prev[key] = (now, c)
        if prev is None or now <= prev[0]:
            return None
        dt, p = now - prev[0], prev[1]
        lost, got = max(0.0, c.lost - p.lost), max(0.0, c.received - p.received)
        if isinstance(leg, PhoneLeg):  # the gateway's phone: audio only, no RTCP of its own here
            loss = 100 * lost / (lost + got) if lost + got else None
            return LegSample(now, key[0], key[1], key[2], "sip", _rate(c.bytes_in, p.bytes_in, dt),
                             _rate(c.bytes_out, p.bytes_out, dt), None if loss is None else round(loss, 2), None, None,
                             None, None, 0, audio_mos(G711, loss or 0.0, PLAYOUT_MS), None, None, None)
        loss = 100 * lost / (lost + got) if lost + got else 0.0
        rtt = leg.rtt_ms
        one_way = (rtt / 2 if rtt is not None else 0) + PLAYOUT_MS
        fps = round(max(0.0, c.frames - p.frames) / dt, 1)
        freezes = int(max(0, c.freezes - p.freezes))
        by_kind = leg.jitter_ms_by_kind or {}
        return LegSample(
            now, key[0], key[1], key[2], "webrtc", _rate(c.bytes_in, p.bytes_in, dt), _rate(c.bytes_out, p.bytes_out, dt),
            round(loss, 2), leg.jitter_ms, rtt, fps, leg.resolution, freezes, audio_mos(OPUS, loss, one_way),
            video_score(fps, freezes, loss, _pixels(leg.resolution), None), by_kind.get("audio"), by_kind.get("video"),
            leg.policed_frames or 0)

    def leg_history(self, key: tuple[str, str, str]) -> list[dict[str, Any]]:
        return [asdict(s) for s in self.history.get(key, ())]


@dataclass(frozen=True)
class Counters:
    """The cumulative counters of a leg or trunk that a sample takes differences of."""
    bytes_in: float
    bytes_out: float
    lost: float = 0
    received: float = 0
    frames: float = 0
    freezes: float = 0


def _counters(leg: WebrtcLeg | PhoneLeg) -> Counters:
    if isinstance(leg, PhoneLeg):
        return Counters(sum(leg.bytes_in.values()), 0)
    return Counters(sum(leg.bytes_in.values()), leg.bytes_forwarded, leg.packets_lost or 0, leg.packets_received or 0,
                    leg.frames_in.get("video", 0), leg.freezes)


def _rate(now_bytes: float, then_bytes: float, dt: float) -> float:
    return round(8 * max(0.0, now_bytes - then_bytes) / dt / 1000, 1)
