"""What a capacity case measures and what the model says about it: pure, tested on its own.

A case is one link (its class: a county's uplink, a prefecture's uplink to the province),
one profile and one plan. Each session of the case is the same small meeting whose program
crosses that link: for a county link, its prefecture hosting with the county and a second
county of the same prefecture (the county receives two videos and one audio); for a
prefecture's uplink, the province hosting with two of the prefecture's counties (the link
carries what the plan routes over it). The model's figures for k such sessions come from
rooms/plan.py, the same code admission uses.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rooms.ids import Direction, LinkId, PlanKind, SiteId
from rooms.plan import media_plan, thin_link_layouts
from rooms.topology import Topology

MAX_LOSS_PCT = 1.0


@dataclass(frozen=True)
class Case:
    link: SiteId  # the child end of the measured link
    profile: str
    plan: PlanKind

    @property
    def name(self) -> str:
        return f"{self.link} {self.profile} {self.plan.value}"


@dataclass(frozen=True)
class ModelFigures:
    per_session_kbps: int  # the binding direction's load of one session on the link
    direction: Direction
    rate_kbps: int  # the link as emulated (scaled)
    limit_kbps: int  # the admitted share of it
    admitted: int  # sessions admission lets overlap on it
    carried: int  # sessions the model says the link physically carries (100 % of its rate)


def link_class(topo: Topology, link: SiteId) -> str:
    site = topo.sites[link]
    return f"{site.level} uplink {topo.links[LinkId(link)].rate_kbps / 1000:g} Mbit/s"


def session_sites(topo: Topology, link: SiteId, i: int = 0) -> list[SiteId]:
    """Session i of the case (host first). Its other counties rotate from session to session, so
    only the measured link carries every session and binds first."""
    site = topo.sites[link]
    parent = site.parent
    if parent is None:
        raise ValueError(f"{link} is the root: it has no uplink to measure")
    def counties(of: SiteId) -> list[SiteId]:  # not the thin mobile platforms: they would bind first
        return [c for c in topo.children[of] if topo.sites[c].level == "county" and not topo.children[c]]
    if topo.children[link]:  # a prefecture's uplink: the province with two of its counties
        own = counties(link)
        return [topo.root, own[(2 * i) % len(own)], own[(2 * i + 1) % len(own)]]
    if site.level == "mobile":  # a platform or the vehicle: its parent hosts, with a wired sibling
        wired = [c for c in topo.children[parent] if topo.sites[c].level != "mobile"]
        return [parent, link, wired[i % len(wired)]]
    others = [c for c in counties(parent) if c != link]
    return [parent, link, others[i % len(others)]]


def model(topo: Topology, case: Case, scale: float, scale_above_kbps: int = 0) -> ModelFigures:
    profile = topo.profile(case.profile)
    if profile is None:
        raise ValueError(f"unknown profile {case.profile}")
    sites = session_sites(topo, case.link)
    # Booked as the run books them: a thin link's site takes the layout admission picks (the speaker only).
    plan = media_plan(topo, profile, case.plan, sites, layouts=thin_link_layouts(topo, profile, case.plan, sites))
    lid = LinkId(case.link)
    direction = max((Direction.DOWN, Direction.UP), key=lambda d: plan.load(lid, d))
    load = plan.load(lid, direction)
    link = topo.links[lid]
    rate = max(8, round(link.rate_kbps * scale) if link.rate_kbps > scale_above_kbps else link.rate_kbps)
    limit = int(rate * link.admitted_share)
    return ModelFigures(load, direction, rate, limit, limit // load if load else 0, rate // load if load else 0)


MACHINE_DELAY_MS = 500  # above this p95 the machine is overloaded: its freezes count as failures


def step_passes(reports: list[dict[str, Any]], link_drops: int = 0) -> tuple[bool, str]:
    """A step passes when every stream at every site arrived with loss < 1 % and no freeze.

    A freeze charged to the link needs the link to have done something: dropped packets at its
    queue, or lost packets anywhere (a node re-sequences what it forwards, so loss upstream of it
    shows downstream as a freeze, and as drops at that link). A freeze with nothing lost, nothing
    dropped and delay normal is this 2-core machine stalling a process: reported, not charged."""
    stalls: list[str] = []
    lossless = all(leg["loss_pct"] == 0 for r in reports for leg in r.get("legs", []))
    delays = [s["delay_ms_p95"] for r in reports for leg in r.get("legs", []) for s in leg["streams"]
              if s["delay_ms_p95"] is not None]
    calm = not delays or max(delays) < MACHINE_DELAY_MS
    for r in reports:
        if "error" in r:
            return False, f"{r['site']}: {r['error']}"
        for leg in r["legs"]:
            if leg["loss_pct"] >= MAX_LOSS_PCT:
                return False, f"{r['site']} lost {leg['loss_pct']} % in {leg['session']}"
            for s in leg["streams"]:
                if s["fps"] == 0:
                    return False, f"{r['site']}: nothing arrived from {s['from']}"
                if s["freezes"]:
                    what = f"{r['site']}: {s['freezes']} freezes of {s['from']}'s video (longest {s['max_gap_ms']} ms)"
                    if link_drops or not lossless or not calm:
                        return False, what
                    stalls.append(what)
    if stalls:
        return True, "within 1 % loss; machine stalls, not the link (nothing lost or dropped): " + "; ".join(stalls)
    return True, "every stream within 1 % loss, no freeze"


def measured_capacity(steps: list[dict[str, Any]]) -> int:
    """The largest count that passed with every smaller count passing too."""
    best = 0
    for step in sorted(steps, key=lambda s: s["sessions"]):
        if not step["passed"]:
            break
        best = step["sessions"]
    return best
