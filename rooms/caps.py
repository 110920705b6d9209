"""What pre-emption does to a session's media plan: caps on the sites behind a link. Pure.

A session keeps the layouts it was booked with (`base`). Pre-emption (rooms/preemption.py) moves it
down a ladder on one (link, direction); that step is stored as a cap on the sites behind the link:
they receive at most the speaker, or the audio, or nothing (dropped: their legs leave the session
while the cap holds). Caps from several links combine (the poorest wins); removing a cap is the
restoration. An emergency that exceeds a link even after pre-emption caps its own sites the same
way, so what it could not give them is said in the same words.

A ladder for one (link, direction) is what the session would put on it at each cap, the other caps
kept: richest first, strictly decreasing, so the pure decision never takes a step that frees nothing.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

from rooms.ids import Direction, LinkId, PlanKind, SiteId
from rooms.plan import RICHEST_FIRST, Layout, MediaPlan, media_plan
from rooms.profiles import MediaProfile
from rooms.topology import Topology

LinkDir = tuple[LinkId, Direction]
AS_BOOKED = "as booked"
DROPPED = "dropped"
STEPS = (AS_BOOKED, Layout.SPEAKER.value, Layout.AUDIO.value)  # then DROPPED
WORDS = {AS_BOOKED: "as booked", "speaker": "the speaker only", "audio": "audio only", DROPPED: "dropped"}


def key_str(key: LinkDir) -> str:
    return f"{key[0]}/{key[1].value}"


def key_of(text: str) -> LinkDir:
    link, d = text.rsplit("/", 1)
    return LinkId(link), Direction(d)


@dataclass(frozen=True)
class Cap:
    step: str  # speaker | audio | dropped
    by: str  # the session (an emergency) that took it
    at: int  # when


@dataclass(frozen=True)
class Capped:
    """A session's booked layouts and the caps pre-emption put on it."""
    base: dict[SiteId, Layout] = field(default_factory=dict)
    caps: dict[LinkDir, Cap] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any] | None:
        if not self.caps:
            return None
        return {"base": {s: l.value for s, l in self.base.items()},
                "caps": {key_str(k): {"step": c.step, "by": c.by, "at": c.at} for k, c in self.caps.items()}}

    @classmethod
    def from_json(cls, doc: Mapping[str, Any] | None, booked: Mapping[SiteId, Layout]) -> "Capped":
        if not doc:
            return cls(dict(booked))
        return cls({SiteId(s): Layout(l) for s, l in doc.get("base", {}).items()},
                   {key_of(k): Cap(v["step"], v["by"], int(v["at"])) for k, v in doc.get("caps", {}).items()})

    def with_cap(self, key: LinkDir, step: str, by: str, at: int) -> "Capped":
        caps = dict(self.caps)
        if step == AS_BOOKED:
            caps.pop(key, None)
        else:
            caps[key] = Cap(step, by, at)
        return Capped(self.base, caps)


def _poorer(a: Layout, step: str) -> Layout:
    if step == AS_BOOKED:
        return a
    b = Layout(step)
    return a if RICHEST_FIRST.index(a) >= RICHEST_FIRST.index(b) else b


def effective(topo: Topology, sites: Iterable[SiteId], capped: Capped) -> tuple[dict[SiteId, Layout], list[SiteId]]:
    """(layouts, dropped sites) once every cap is applied to the sites behind its link."""
    layouts: dict[SiteId, Layout] = {}
    dropped: list[SiteId] = []
    for s in sites:
        lay = capped.base.get(s, Layout.FULL)
        gone = False
        for (link, _d), cap in capped.caps.items():
            if topo.in_subtree(s, topo.links[link].child):
                if cap.step == DROPPED:
                    gone = True
                else:
                    lay = _poorer(lay, cap.step)
        if gone:
            dropped.append(s)
        elif lay is not Layout.FULL:
            layouts[s] = lay
    return layouts, dropped


def capped_plan(topo: Topology, profile: MediaProfile, kind: PlanKind, sites: list[SiteId], capped: Capped) -> MediaPlan:
    """The plan the session runs on: dropped sites have no legs; the rest take their capped layouts."""
    layouts, dropped = effective(topo, sites, capped)
    return media_plan(topo, profile, kind, [s for s in sites if s not in dropped], layouts=layouts)


def plan_doc(topo: Topology, plan: MediaPlan, sites: list[SiteId], capped: Capped) -> dict[str, Any]:
    """The plan as stored: MediaPlan.to_dict plus what pre-emption took (`dropped`, `preempted`)."""
    doc = plan.to_dict(topo)
    _layouts, dropped = effective(topo, sites, capped)
    if dropped:
        doc["dropped"] = list(dropped)
    if capped.caps:
        doc["preempted"] = capped.to_json()
    return doc


def ladder(topo: Topology, profile: MediaProfile, kind: PlanKind, sites: list[SiteId], capped: Capped,
           key: LinkDir) -> tuple[tuple[tuple[str, int], ...], int]:
    """(the ladder on `key`, the index of where the session is on it now; len(ladder) = dropped)."""
    now = capped.caps.get(key)
    rungs: list[tuple[str, int]] = []
    here = 0
    for i, step in enumerate(STEPS):
        kbps = capped_plan(topo, profile, kind, sites, capped.with_cap(key, step, "", 0)).load(*key)
        if not rungs or kbps < rungs[-1][1]:
            rungs.append((step, kbps))
        if now is not None and now.step == step or (now is None and i == 0):
            here = len(rungs) - 1
    if now is not None and now.step == DROPPED:
        here = len(rungs)
    return tuple(rungs), here


def sites_behind(topo: Topology, sites: Iterable[SiteId], link: LinkId) -> list[SiteId]:
    return [s for s in sites if topo.in_subtree(s, topo.links[link].child)]


def next_step(current: str) -> str | None:
    """The next cap down: as booked → speaker → audio → dropped → none."""
    order = (*STEPS, DROPPED)
    i = order.index(current)
    return order[i + 1] if i + 1 < len(order) else None
