"""What opening an emergency takes, decided before anything is taken. Pure.

The store reads a snapshot under its lock (rooms/store/preemptions.py): the topology, the request, and
every booked session overlapping the emergency (or holding a room at one of its sites while a session
that may have to move there meets). `decide` works on that snapshot alone:

1. rooms (rooms/preemption.py `take_rooms`): the room each site gets; lower-precedence holders move
   to another room of their site or give the room up;
2. links (rooms/preemption.py `preempt`): where links refuse, lower-precedence sessions degrade, then drop;
3. the emergency's own sites behind a link still short take less (speaker, audio, left out).

The real opening applies the result; the dry check (POST /api/emergencies/preview) shows it. Both
call this function on the same inputs, so the confirmation names exactly who would give way.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from rooms.admission import Accepted, BookingRequest, Existing, Refused, SiteChoice, evaluate
from rooms.caps import AS_BOOKED, Capped, LinkDir, capped_plan, ladder, next_step
from rooms.ids import Direction, LinkId, NodeId, PlanKind, SiteId
from rooms.plan import MediaPlan
from rooms.preemption import Action, Holding, Precedence, RoomAction, RoomHold, preempt, take_rooms
from rooms.timeline import Booked, Intervals, excess
from rooms.topology import Topology


@dataclass(frozen=True)
class Holds:
    """What a session holds in each of its occurrences (as rooms/store/held.py reads it)."""
    links: tuple[tuple[LinkId, Direction, int], ...]
    rooms: tuple[tuple[SiteId, str], ...]
    nodes: tuple[tuple[NodeId, int], ...]


@dataclass(frozen=True)
class RoomGiven:
    """A room a session gave up for an emergency: its site is out of that session until it comes back."""
    room: str
    by: str
    at: int


@dataclass(frozen=True)
class Holder:
    """A booked session as the snapshot found it."""
    id: str
    title: str
    organizer_id: str
    precedence: Precedence
    created_at: int
    profile: str
    plan: PlanKind
    sites: tuple[SiteId, ...]
    rooms: dict[SiteId, str]  # as booked (or moved): the room of each site
    capped: Capped
    given: dict[SiteId, RoomGiven]  # rooms given up, by site
    spans: tuple[tuple[int, int], ...]  # its occurrences overlapping the emergency
    later: tuple[tuple[int, int], ...]  # every occurrence still to come
    holds: Holds

    @property
    def present(self) -> list[SiteId]:
        """Its sites that still have a room (those that gave one up take no part)."""
        return [s for s in self.sites if s not in self.given]


@dataclass(frozen=True)
class Snapshot:
    topo: Topology
    request: BookingRequest  # normalised
    holders: tuple[Holder, ...]


@dataclass(frozen=True)
class Yielding:
    """A session that gives way, as it is to be stored."""
    before: Holder
    capped: Capped
    rooms: dict[SiteId, str]
    given: dict[SiteId, RoomGiven]
    kinds: frozenset[str]  # degrade, drop, move, release

    @property
    def present(self) -> list[SiteId]:
        return [s for s in self.before.sites if s not in self.given]


@dataclass(frozen=True)
class Step:
    """One thing taken: on a link (Action) or a room (RoomAction), from `session`."""
    session: str
    link: Action | None = None
    room: RoomAction | None = None


@dataclass
class EmergencyPlan:
    request: BookingRequest  # with the rooms it gets
    decision: Accepted | Refused
    own: Capped  # caps on its own sites (what even pre-emption could not give them)
    steps: list[Step] = field(default_factory=list)
    yielding: dict[str, Yielding] = field(default_factory=dict)

    @property
    def admitted(self) -> bool:
        return isinstance(self.decision, Accepted)


def holds_of(topo: Topology, h: Holder, capped: Capped, rooms: dict[SiteId, str], given: dict[SiteId, RoomGiven]) -> Holds:
    profile = topo.profile(h.profile)
    present = [s for s in h.sites if s not in given]
    if profile is None:
        return h.holds
    plan = capped_plan(topo, profile, h.plan, present, capped)
    return Holds(tuple((l.link, l.direction, l.kbps) for l in plan.loads if l.kbps > 0),
                 tuple((s, rooms[s]) for s in present if s in rooms),
                 tuple((n, legs) for n, legs in plan.node_legs.items() if legs > 0))


class _Desk:
    """The snapshot with the changes decided so far."""

    def __init__(self, snap: Snapshot):
        self.snap = snap
        self.topo = snap.topo
        self.by_id = {h.id: h for h in snap.holders}
        self.state: dict[str, Yielding] = {}

    def capped(self, h: Holder) -> Capped:
        return self.state[h.id].capped if h.id in self.state else h.capped

    def present(self, h: Holder) -> list[SiteId]:
        return self.state[h.id].present if h.id in self.state else h.present

    def change(self, sid: str, kind: str, *, capped: Capped | None = None, room: tuple[SiteId, str] | None = None,
               given: tuple[SiteId, RoomGiven] | None = None) -> None:
        h = self.by_id[sid]
        y = self.state.get(sid) or Yielding(h, h.capped, dict(h.rooms), dict(h.given), frozenset())
        rooms, gone = dict(y.rooms), dict(y.given)
        if room is not None:
            rooms[room[0]] = room[1]
        if given is not None:
            gone[given[0]] = given[1]
        self.state[sid] = Yielding(h, capped or y.capped, rooms, gone, y.kinds | {kind})

    def holds(self, h: Holder) -> Holds:
        if h.id not in self.state:
            return h.holds
        y = self.state[h.id]
        return holds_of(self.topo, h, y.capped, y.rooms, y.given)

    def existing(self) -> Existing:
        ex = Existing()
        for h in self.snap.holders:
            if not h.spans:
                continue
            held = self.holds(h)
            for s, e in h.spans:
                for l, d, kbps in held.links:
                    ex.links.setdefault((l, d), Intervals()).add(Booked(h.id, s, e, kbps))
                for site, room in held.rooms:
                    ex.rooms.setdefault((site, room), Intervals()).add(Booked(h.id, s, e, 1))  # type: ignore[index]
                for n, legs in held.nodes:
                    ex.nodes.setdefault(n, Intervals()).add(Booked(h.id, s, e, legs))
        return ex


def decide(snap: Snapshot, own_plan: MediaPlan, precedence: Precedence, sid: str, now: int) -> EmergencyPlan:
    """What the emergency `sid` (request and plan as booked) gets, and what every other session gives."""
    topo, req = snap.topo, snap.request
    desk = _Desk(snap)
    first, last = req.occurrences[0].start, req.occurrences[-1].end
    profile = topo.profile(req.profile)
    assert profile is not None  # normalised
    steps: list[Step] = []

    # 1. Rooms.
    holds = [RoomHold(h.id, s, r, h.precedence, h.created_at, h.later or h.spans)
             for h in snap.holders for s, r in desk.holds(h).rooms]
    taking = take_rooms([(c.site, c.room) for c in req.sites], {s: [r.id for r in topo.sites[s].rooms] for s in req.site_ids},
                        holds, first, last, precedence)
    for a in taking.actions:
        if a.kind == "move":
            desk.change(a.session, "move", room=(SiteId(a.site), a.to_room or ""))
        else:
            desk.change(a.session, "release", given=(SiteId(a.site), RoomGiven(a.room, sid, now)))
        steps.append(Step(a.session, room=a))
    req = replace(req, sites=tuple(SiteChoice(c.site, taking.rooms.get(c.site, c.room)) for c in req.sites))

    # 2. Links.
    own = Capped(dict(own_plan.layouts))
    sites = req.site_ids

    def evaluate_now() -> Accepted | Refused:
        return evaluate(topo, desk.existing(), req, capped_plan(topo, profile, req.plan, sites, own))

    decision = evaluate_now()
    if isinstance(decision, Refused) and link_keys(decision):
        demand = {k: capped_plan(topo, profile, req.plan, sites, own).load(*k) for k in link_keys(decision)}
        for action in _preempt_links(desk, demand, first, last, precedence):
            h = desk.by_id[action.session]
            capped = desk.capped(h).with_cap((action.link, action.direction), action.step, sid, now)
            desk.change(action.session, action.kind, capped=capped)
            steps.append(Step(action.session, link=action))
        decision = evaluate_now()

    # 3. Still short: the emergency's own sites behind those links take less, as far as needed.
    for _ in range(4 * max(1, len(sites))):
        if not (isinstance(decision, Refused) and link_keys(decision)):
            break
        for key in link_keys(decision):
            cur = own.caps[key].step if key in own.caps else AS_BOOKED
            before = capped_plan(topo, profile, req.plan, sites, own).load(*key)
            step = next_step(cur)
            if step is None:
                continue
            own = own.with_cap(key, step, sid, now)
            after = capped_plan(topo, profile, req.plan, sites, own).load(*key)
            if after < before:  # a step that frees nothing here (an uplink's picture) is passed over
                steps.append(Step(sid, link=Action(sid, key[0], key[1], "limit", step, before, after)))
        decision = evaluate_now()
    return EmergencyPlan(req, decision, own, steps, desk.state)


def _preempt_links(desk: _Desk, demand: dict[LinkDir, int], start: int, end: int,
                   precedence: Precedence) -> list[Action]:
    """The link decision on the congested links, each session at its current state."""
    topo = desk.topo
    limits: dict[LinkDir, int] = {}
    held: dict[LinkDir, list[Holding]] = {}
    sessions = [h for h in desk.snap.holders if h.spans]
    for key in demand:
        holdings: list[Holding] = []
        booked: list[Booked] = []
        for h in sessions:
            profile = topo.profile(h.profile)
            if profile is None:
                continue
            rungs, here = ladder(topo, profile, h.plan, desk.present(h), desk.capped(h), key)
            mine = rungs[here][1] if here < len(rungs) else 0
            if mine <= 0:
                continue
            # Equal or higher precedence holds what it holds: a one-rung ladder it is never moved on.
            weaker = h.precedence < precedence
            holdings.append(Holding(h.id, h.precedence, h.created_at, rungs if weaker else ((rungs[here][0], mine),),
                                    here if weaker else 0))
            booked += [Booked(h.id, s, e, mine) for s, e in h.spans]
        # Counted as if all met at the busiest moment: the limit is raised by what they add beyond that peak.
        peak = excess(booked, start, end, 0).peak
        limits[key] = topo.links[key[0]].limit_kbps + sum(x.kbps for x in holdings) - peak
        held[key] = holdings
    return list(preempt(demand, limits, held, precedence).actions)


def link_keys(decision: Refused) -> list[LinkDir]:
    return sorted({(v.link, v.direction) for v in decision.violations
                   if v.kind == "link" and v.link is not None and v.direction is not None})


def giving_way(plan: EmergencyPlan, topo: Topology, names: dict[str, str] | None = None) -> list[dict[str, Any]]:
    """Per session that gives way: its title, organizer, and what it gives, in words (for the confirmation)."""
    out = []
    for sid, y in plan.yielding.items():
        h = y.before
        what = []
        for st in plan.steps:
            if st.session != sid:
                continue
            if st.room is not None:
                what.append(room_words(topo, st.room))
            elif st.link is not None:
                a = st.link
                what.append(f"{_step_words(a.step)} on the {topo.sites[topo.links[a.link].child].name} link "
                            f"({a.direction.value}), {a.from_kbps} → {a.to_kbps} kbit/s")
        out.append({"session": sid, "title": h.title, "organizer_id": h.organizer_id,
                    "organizer": (names or {}).get(h.organizer_id, h.organizer_id),
                    "kinds": sorted(y.kinds), "what": what})
    return out


def room_words(topo: Topology, a: RoomAction) -> str:
    site = topo.sites[SiteId(a.site)]
    names = {r.id: r.name for r in site.rooms}
    if a.kind == "move":
        return f"{site.name} moves from {names.get(a.room, a.room)} to {names.get(a.to_room or '', a.to_room)}"
    return f"{site.name} gives up {names.get(a.room, a.room)} (no other room is free) and leaves the session until it is back"


def _step_words(step: str) -> str:
    from rooms.caps import WORDS
    return {"dropped": "dropped"}.get(step, f"down to {WORDS.get(step, step)}")
