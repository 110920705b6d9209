"""Admission control: a pure function of (topology, existing reservations, request).

`evaluate` answers accept-with-plan or the full list of violated constraints;
`alternatives` searches what would fit instead. The store loads reservations,
locks, and commits around these; nothing here does I/O.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from typing import Any, Callable

from rooms.ids import Direction, LinkId, NodeId, PlanKind, RoomId, SiteId
from rooms.later_start import Span, first_free, forbidden_shifts, intersect, merged, over_limit
from rooms.plan import Layout, MediaPlan, media_plan, thin_link_layouts
from rooms.timeline import Booked, Intervals, excess
from rooms.topology import Topology

DEFAULT_HORIZON_S = 7 * 24 * 3600
log = logging.getLogger("rooms.admission")


class RequestError(ValueError):
    """The request itself is wrong (unknown site, room, profile): not a capacity question."""

    def __init__(self, code: str, detail: str):
        self.code = code
        self.detail = detail
        super().__init__(detail)


@dataclass(frozen=True)
class SiteChoice:
    site: SiteId
    room: RoomId | None = None  # None: any free room at the site


@dataclass(frozen=True)
class Occurrence:
    start: int
    end: int


@dataclass(frozen=True)
class BookingRequest:
    host_site: SiteId
    sites: tuple[SiteChoice, ...]
    occurrences: tuple[Occurrence, ...]
    profile: str
    plan: PlanKind
    layouts: tuple[tuple[SiteId, Layout], ...] = ()  # sites given a smaller program by hand (or kept from a booking)
    auto_layouts: bool = False  # thin links: let admission step sites down until the session alone fits

    @property
    def site_ids(self) -> list[SiteId]:
        return [c.site for c in self.sites]

    def shifted(self, delta: int) -> "BookingRequest":
        return replace(self, occurrences=tuple(Occurrence(o.start + delta, o.end + delta) for o in self.occurrences))


@dataclass
class Existing:
    """Reservations already held, by resource."""

    links: dict[tuple[LinkId, Direction], Intervals] = field(default_factory=dict)
    rooms: dict[tuple[SiteId, RoomId], Intervals] = field(default_factory=dict)
    nodes: dict[NodeId, Intervals] = field(default_factory=dict)

    def link(self, link: LinkId, d: Direction) -> Intervals:
        return self.links.get((link, d)) or Intervals()

    def room(self, site: SiteId, room: RoomId) -> Intervals:
        return self.rooms.get((site, room)) or Intervals()

    def node(self, node: NodeId) -> Intervals:
        return self.nodes.get(node) or Intervals()


@dataclass(frozen=True)
class Violation:
    kind: str  # "link" | "room" | "media_node"
    occurrence_start: int
    start: int  # the part of the occurrence where the constraint is broken
    end: int
    link: LinkId | None = None
    direction: Direction | None = None
    demand_kbps: int | None = None
    available_kbps: int | None = None
    limit_kbps: int | None = None
    site: SiteId | None = None
    room: RoomId | None = None
    conflicting_sessions: tuple[str, ...] = ()
    node: NodeId | None = None
    demand_legs: int | None = None
    available_legs: int | None = None

    def to_dict(self, topo: Topology) -> dict[str, Any]:
        d: dict[str, Any] = {"kind": self.kind, "occurrence_start": self.occurrence_start,
                             "start": self.start, "end": self.end}
        if self.kind == "link" and self.link is not None and self.direction is not None:
            l = topo.links[self.link]
            d.update(link=self.link, direction=self.direction.value,
                     **{"from": l.child if self.direction is Direction.UP else l.parent,
                        "to": l.parent if self.direction is Direction.UP else l.child},
                     demand_kbps=self.demand_kbps, available_kbps=self.available_kbps,
                     limit_kbps=self.limit_kbps, rate_kbps=l.rate_kbps)
        elif self.kind == "room":
            d.update(site=self.site, room=self.room, conflicting_sessions=list(self.conflicting_sessions))
        else:
            d.update(node=self.node, demand_legs=self.demand_legs, available_legs=self.available_legs)
        return d


@dataclass(frozen=True)
class Accepted:
    plan: MediaPlan
    rooms: dict[SiteId, RoomId]
    occurrences: tuple[Occurrence, ...]


@dataclass(frozen=True)
class Alternative:
    profile: str | None = None
    plan: PlanKind | None = None
    shift_s: int | None = None  # move every occurrence by this much


@dataclass(frozen=True)
class Refused:
    violations: tuple[Violation, ...]
    alternatives: tuple[Alternative, ...] = ()


def normalise(topo: Topology, req: BookingRequest) -> BookingRequest:
    """Check names against the topology; put the host first and include it."""
    if topo.profile(req.profile) is None:
        raise RequestError("unknown_profile", f"unknown profile {req.profile!r}; known: {[p.name for p in topo.profiles]}")
    if req.host_site not in topo.sites:
        raise RequestError("unknown_site", f"host_site {req.host_site!r} is not a site of the topology")
    seen: dict[SiteId, SiteChoice] = {}
    for c in req.sites:
        site = topo.sites.get(c.site)
        if site is None:
            raise RequestError("unknown_site", f"site {c.site!r} is not a site of the topology")
        if c.room is not None and all(r.id != c.room for r in site.rooms):
            raise RequestError("unknown_room", f"site {c.site} has no room {c.room!r}; rooms: {[r.id for r in site.rooms]}")
        prior = seen.get(c.site)
        if prior is not None and prior.room and c.room and prior.room != c.room:
            raise RequestError("duplicate_site", f"site {c.site} is listed twice with different rooms")
        if prior is None or prior.room is None:
            seen[c.site] = c  # a pinned room wins over "any room"
    for s, _layout in req.layouts:
        if s not in seen:
            raise RequestError("unknown_site", f"a layout is given for {s!r}, which does not take part")
    host = seen.pop(req.host_site, SiteChoice(req.host_site))
    if not req.occurrences:
        raise RequestError("no_occurrences", "the request has no occurrence to book")
    occ = sorted(req.occurrences, key=lambda o: o.start)
    for a, b in zip(occ, occ[1:]):
        if b.start < a.end:
            raise RequestError("overlapping_occurrences", "occurrences of the series overlap each other")
    return replace(req, sites=(host, *seen.values()), occurrences=tuple(occ))


def plan_for(topo: Topology, req: BookingRequest) -> MediaPlan:
    profile = topo.profile(req.profile)
    if profile is None:
        raise RequestError("unknown_profile", f"unknown profile {req.profile!r}")
    layouts = dict(req.layouts)
    if req.auto_layouts:
        layouts = thin_link_layouts(topo, profile, req.plan, req.site_ids, layouts)
    return media_plan(topo, profile, req.plan, req.site_ids, layouts=layouts)


def evaluate(topo: Topology, existing: Existing, req: BookingRequest, plan: MediaPlan | None = None) -> Accepted | Refused:
    """Every constraint of every occurrence; `req` must be normalised.

    `plan` may be passed when the caller already computed it for the same sites, profile and plan kind.
    """
    plan = plan or plan_for(topo, req)
    violations: list[Violation] = []
    rooms: dict[SiteId, RoomId] = {}
    for choice in req.sites:
        # One rule for booking and editing: the room asked for, else the site's main room (its first), then
        # its other meeting rooms; never its emergency office unless asked (rooms/presets.py pins it), or a
        # routine booking would silently hold the room the next emergency needs.
        candidates = [choice.room] if choice.room else topo.sites[choice.site].bookable_rooms
        conflicts: dict[RoomId, list[tuple[Occurrence, list[Booked]]]] = {}
        for room in candidates:
            clashes = [(o, hits) for o in req.occurrences if (hits := existing.room(choice.site, room).overlapping(o.start, o.end))]
            if not clashes:
                rooms[choice.site] = room
                break
            conflicts[room] = clashes
        else:
            for room, clashes in conflicts.items():
                for o, hits in clashes:
                    violations.append(Violation(
                        "room", o.start, max(o.start, min(h.start for h in hits)), min(o.end, max(h.end for h in hits)),
                        site=choice.site, room=room, conflicting_sessions=tuple(sorted({h.session for h in hits}))))
    for o in req.occurrences:
        for load in plan.loads:
            link = topo.links[load.link]
            threshold = link.limit_kbps - load.kbps
            hits = existing.link(load.link, load.direction).overlapping(o.start, o.end)
            if threshold >= 0 and sum(h.amount for h in hits) <= threshold:
                continue  # even all of them at once leave room: no need for the peak
            ex = excess(hits, o.start, o.end, threshold)
            if ex.over_start is not None or threshold < 0:
                whole = threshold < 0 or ex.over_end is None  # the session alone is too big
                violations.append(Violation(
                    "link", o.start, o.start if whole else ex.over_start, o.end if whole else ex.over_end,
                    link=load.link, direction=load.direction, demand_kbps=load.kbps,
                    available_kbps=max(0, link.limit_kbps - ex.peak), limit_kbps=link.limit_kbps))
        for node_id, legs in plan.node_legs.items():
            cap = topo.nodes[node_id].capacity_legs
            hits = existing.node(node_id).overlapping(o.start, o.end)
            if legs <= cap and sum(h.amount for h in hits) <= cap - legs:
                continue
            ex = excess(hits, o.start, o.end, cap - legs)
            if ex.over_start is not None or legs > cap:
                whole = legs > cap or ex.over_end is None
                violations.append(Violation(
                    "media_node", o.start, o.start if whole else ex.over_start, o.end if whole else ex.over_end,
                    node=node_id, demand_legs=legs, available_legs=max(0, cap - ex.peak)))
    if violations:
        return Refused(tuple(violations))
    return Accepted(plan, rooms, req.occurrences)


def alternatives(topo: Topology, existing: Existing, req: BookingRequest, horizon_s: int = DEFAULT_HORIZON_S) -> tuple[Alternative, ...]:
    """What would fit instead: a lower profile, the other plan, the earliest later start.

    `existing` must cover every occurrence extended by the horizon.
    """
    out = list(same_time_alternatives(topo, existing, req))
    shift = earliest_shift(topo, existing, req, horizon_s)
    if shift is not None:
        out.append(Alternative(shift_s=shift))
    return tuple(out)


def same_time_alternatives(topo: Topology, existing: Existing, req: BookingRequest,
                           plan_of: Callable[[BookingRequest], MediaPlan] | None = None,
                           refused: Refused | None = None) -> tuple[Alternative, ...]:
    """At the same time: the best lower profile that fits, and the other plan if it fits.
    `existing` needs to cover the occurrences only; `plan_of` may memoise plan_for. `refused`, the
    request's own refusal: where it names a room, none can fit (evaluate picks rooms the same way
    whatever the profile and plan), so none is planned and evaluated."""
    if refused is not None and any(v.kind == "room" for v in refused.violations):
        return ()
    plan_of = plan_of or (lambda r: plan_for(topo, r))
    out: list[Alternative] = []
    names = [p.name for p in topo.profiles]
    for name in names[names.index(req.profile) + 1:]:
        lower = replace(req, profile=name)
        if isinstance(evaluate(topo, existing, lower, plan_of(lower)), Accepted):
            out.append(Alternative(profile=name, plan=req.plan))
            break
    other = PlanKind.CENTRAL if req.plan is PlanKind.CASCADE else PlanKind.CASCADE
    switched = replace(req, plan=other)
    if isinstance(evaluate(topo, existing, switched, plan_of(switched)), Accepted):
        out.append(Alternative(profile=req.profile, plan=other))
    return tuple(out)


def earliest_shift(topo: Topology, existing: Existing, req: BookingRequest, horizon_s: int,
                   plan: MediaPlan | None = None) -> int | None:
    """Smallest delay (≤ horizon) that makes every occurrence fit with the same profile and plan,
    by interval arithmetic (rooms/later_start.py); tests/test_later_start.py holds it against a
    scan of every candidate start on random calendars. `plan`: the request's, if already computed."""
    plan = plan or plan_for(topo, req)  # shifting in time never changes the plan
    if not fits_when_alone(topo, plan):
        return None  # too big for a link or node on its own: no start time helps
    found = _shift_by_intervals(topo, existing, req, plan, horizon_s)
    # One evaluation confirms it: the interval sets and evaluate() state the same constraints twice.
    if found is not None and not isinstance(evaluate(topo, existing, req.shifted(found), plan), Accepted):
        log.error("later-start search disagrees with admission at +%d s for %s; no later start offered", found, req)
        return None
    return found


def _shift_by_intervals(topo: Topology, existing: Existing, req: BookingRequest, plan: MediaPlan,
                        horizon_s: int) -> int | None:
    def shifts_blocked_by(over: list[Span]) -> list[Span]:
        return [f for o in req.occurrences for f in forbidden_shifts(over, o.start, o.end)]

    forbidden: list[Span] = []
    for load in plan.loads:
        limit = topo.links[load.link].limit_kbps
        forbidden += shifts_blocked_by(_over(existing.link(load.link, load.direction), limit - load.kbps))
    for node_id, legs in plan.node_legs.items():
        forbidden += shifts_blocked_by(_over(existing.node(node_id), topo.nodes[node_id].capacity_legs - legs))
    for choice in req.sites:
        # A site keeps one room for every occurrence (as evaluate chooses it): a shift is blocked
        # for the site where it is blocked in each of its rooms.
        rooms = [choice.room] if choice.room else topo.sites[choice.site].bookable_rooms  # as evaluate's rule
        site_blocked: list[Span] | None = None
        for room in rooms:
            blocked = merged(shifts_blocked_by(over_limit(existing.room(choice.site, room), 0)))
            site_blocked = blocked if site_blocked is None else intersect(site_blocked, blocked)
        forbidden += site_blocked or []
    return first_free(forbidden, 1, horizon_s)


def _over(held: Intervals, threshold: int) -> list[Span]:
    """Where the held load exceeds the threshold. Most links of a request stay below it even with
    everything in the window at once: those need no sweep (the refusal path's main cost)."""
    if threshold >= 0 and held.total() <= threshold:
        return []
    return over_limit(held, threshold)


def fits_when_alone(topo: Topology, plan: MediaPlan) -> bool:
    """Would the plan fit on an empty network? If not, no later start can help."""
    return all(load.kbps <= topo.links[load.link].limit_kbps for load in plan.loads) and all(
        legs <= topo.nodes[n].capacity_legs for n, legs in plan.node_legs.items())
