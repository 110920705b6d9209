"""Emergencies in the database: open one by pre-empting lower precedence, end it and give back.

Around the pure parts: `rooms/emergency_decision.py` decides, on a snapshot read here, which rooms the
emergency gets and who gives what (rooms/preemption.py: rooms and congested links; rooms/caps.py turns
a step into a session's plan). Here, under the booking store's write lock:

- `preview`: the same snapshot and decision under a read transaction; nothing is taken (the duty
  officer's confirmation names who would give way).
- `open`: the decision applied: a room's lower-precedence holder moves to another room of its site or
  gives the room up (its site leaves that session while the room is taken); on congested links the
  overlapping sessions of lower precedence are capped; the emergency's own sites take what fits and it
  says which are limited and why.
- `end`: the emergency's occurrence ends now; every cap whose emergency is over is offered back,
  highest precedence first, as far as each link has room; a room given up comes back when it is free
  (a session that moved stays in the room it moved to: its people are there now).
- Every take and give-back is a `preemption` row: the sessions' history, exportable. For a room,
  `link` holds the room ("site/room"), `direction` is empty and `step` the room it went to.

Load on a link is counted conservatively over the emergency's window: the overlapping sessions'
holds are summed as if they all met at its busiest moment (the limit is raised by what they add
beyond that peak, so a link is congested exactly when admission says so).
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from typing import Any, Iterable

from sqlalchemy import Connection, insert, select, update

from rooms.admission import Accepted, BookingRequest, Occurrence, SiteChoice, evaluate, normalise
from rooms.booking_form import SessionMeta
from rooms.caps import DROPPED, WORDS, Capped, LinkDir, capped_plan, effective, ladder, plan_doc, sites_behind
from rooms.emergency_decision import EmergencyPlan, Holder, Holds, RoomGiven, Snapshot, Yielding, decide, room_words
from rooms.ids import PlanKind, RoomId, SessionId, SiteId, new_session_id
from rooms.plan import Layout
from rooms.preemption import Action, Holding, Precedence, RoomAction, main_first, restore
from rooms.store.bookings import BookingStore, NotFound, Outcome, new_revision, session_view
from rooms.store.engine import read_transaction, write_transaction
from rooms.store.held import held_from_row
from rooms.store.tables import PreemptionRow, SessionOccurrence, SessionRow
from rooms.timeline import MAX_OCCURRENCE_S, Booked, excess
from rooms.topology import Topology

PT = PreemptionRow.__table__
ST = SessionRow.__table__
OT = SessionOccurrence.__table__
RECORD_COLUMNS = ("at", "emergency_id", "session_id", "link", "direction", "kind", "step", "from_kbps", "to_kbps", "sites")


class NotAnEmergency(ValueError):
    pass


@dataclass(frozen=True)
class Change:
    """A session whose plan pre-emption changed: what each of its sites now receives."""
    session: str
    title: str
    layouts: dict[str, str]  # site -> speaker | audio (absent: the full program)
    dropped: list[str]
    kinds: frozenset[str]  # degrade, drop, restore, limit, move, release
    view: dict[str, Any] | None = None  # the session as stored now, when its rooms changed (its invites go again)


@dataclass
class Opened:
    outcome: Outcome
    records: list[dict[str, Any]] = field(default_factory=list)
    changes: list[Change] = field(default_factory=list)
    limited: list[dict[str, Any]] = field(default_factory=list)  # the emergency's own sites it could not serve fully


@dataclass
class Ended:
    session: dict[str, Any]
    records: list[dict[str, Any]] = field(default_factory=list)
    changes: list[Change] = field(default_factory=list)


@dataclass(frozen=True)
class Preview:
    """What opening would do now, taken from nobody."""
    plan: EmergencyPlan
    topology: Topology
    limited: list[dict[str, Any]]


@dataclass(frozen=True)
class _Victim:
    row: Any
    sites: list[SiteId]  # those taking part (not those that gave their room up)
    capped: Capped
    given: dict[SiteId, RoomGiven]


def _booked_layouts(plan: dict[str, Any]) -> dict[SiteId, Layout]:
    return {SiteId(s): Layout(l) for s, l in plan.get("layouts", {}).items()}


def _given(plan: dict[str, Any]) -> dict[SiteId, RoomGiven]:
    return {SiteId(s): RoomGiven(v["room"], v["by"], int(v["at"])) for s, v in (plan.get("rooms_given") or {}).items()}


def _capped(plan: dict[str, Any]) -> Capped:
    """The session's caps; the base keeps the layouts of sites that gave their room up (not in `layouts`)."""
    c = Capped.from_json(plan.get("preempted"), _booked_layouts(plan))
    kept = {SiteId(s): Layout(v["layout"]) for s, v in (plan.get("rooms_given") or {}).items() if v.get("layout")}
    return Capped({**kept, **c.base}, c.caps) if kept else c


class Preemptions:
    def __init__(self, bookings: BookingStore):
        self.bookings = bookings
        self.engine = bookings.engine

    # -- the snapshot the decision is made on ---------------------------------------------------
    def _snapshot(self, conn: Connection, req: BookingRequest, now: int) -> tuple[Snapshot, dict[str, Any]]:
        """Every booked session overlapping the request, and every one holding a room at its sites while a
        session that may have to move there meets; with their rows (by id)."""
        b = self.bookings
        topo = b.topology_in(conn)
        req = normalise(topo, req)
        first, last = req.occurrences[0].start, req.occurrences[-1].end
        rows = b.occurrences_in(conn, first, last)
        sites = set(req.site_ids)
        held = b.holdings(conn, rows)
        at_sites = {sid for sid, rev, _s, _e in rows if any(s in sites for s, _r in held[(sid, rev)].rooms)}
        found = self._rows(conn, {sid for sid, _r, _s, _e in rows})
        # A room's holder may move to another room of its site for all its occurrences to come: what
        # holds those rooms then is read too (rows without an occurrence in the emergency's window).
        later = [(s, e) for sid in at_sites if sid in found for s, e in json.loads(found[sid].occurrences_json) if e > now]
        extra: list[tuple[str, int, int, int]] = []
        if later:
            lo, hi = min(s for s, _e in later), max(e for _s, e in later)
            extra = b.occurrences_in(conn, lo, hi)
            held.update(b.holdings(conn, extra))
            found.update(self._rows(conn, {sid for sid, _r, _s, _e in extra} - set(found)))
        window = {(sid, s, e) for sid, _r, s, e in rows}
        spans: dict[str, list[tuple[int, int]]] = {}
        revs: dict[str, int] = {}
        for sid, rev, s, e in [*rows, *extra]:
            revs[sid] = rev
            if (sid, s, e) in window:
                spans.setdefault(sid, [])
                if (s, e) not in spans[sid]:
                    spans[sid].append((s, e))
        holders = []
        for sid, r in found.items():
            if sid not in revs:
                continue
            plan = json.loads(r.plan_json)
            h = held[(sid, revs[sid])]
            room_holds = tuple(x for x in h.rooms if x[0] in sites)
            if sid not in spans and not room_holds:
                continue  # met only outside the window, and not in a room that matters
            holders.append(Holder(
                r.id, r.title, r.organizer_id, Precedence(r.precedence or 0), r.created_at, r.profile, PlanKind(r.plan),
                tuple(SiteId(x["site"]) for x in json.loads(r.sites_json)),
                {SiteId(x["site"]): x["room"] for x in json.loads(r.sites_json)}, _capped(plan), _given(plan),
                tuple(sorted(spans.get(sid, []))),
                tuple(sorted((s, e) for s, e in json.loads(r.occurrences_json) if e > now)),
                Holds(h.links, h.rooms, h.nodes)))
        return Snapshot(topo, req, tuple(sorted(holders, key=lambda x: x.id))), found

    def _rows(self, conn: Connection, ids: set[str]) -> dict[str, Any]:
        if not ids:
            return {}
        return {r.id: r for r in conn.execute(select(ST).where(ST.c.id.in_(sorted(ids)), ST.c.status == "booked"))}

    # -- the dry check ---------------------------------------------------------------------------
    def preview(self, req: BookingRequest, precedence: Precedence, now: int) -> Preview:
        """What `open` would take now: the same snapshot and decision, under a read transaction."""
        with read_transaction(self.engine) as conn:
            snap, _rows = self._snapshot(conn, req, now)
            plan = decide(snap, self.bookings.plan(snap.topo, snap.request), precedence, "(this emergency)", now)
        return Preview(plan, snap.topo, _limited(snap.topo, plan.request.site_ids, plan.own) if plan.admitted else [])

    # -- open -------------------------------------------------------------------------------
    def open(self, req: BookingRequest, meta: SessionMeta, organizer_id: str, now: int) -> Opened:
        b = self.bookings
        with write_transaction(self.engine) as conn:
            sid = new_session_id()
            snap, rows = self._snapshot(conn, req, now)
            topo = snap.topo
            plan = decide(snap, b.plan(topo, snap.request), Precedence(meta.precedence), sid, now)
            if not isinstance(plan.decision, Accepted):
                return Opened(Outcome(plan.decision, topo, plan.request))  # nothing was taken
            records = [_step_record(topo, now, sid, st, plan) for st in plan.steps]
            changes = [self._rewrite(conn, topo, y, rows[y.before.id], sid, now) for y in plan.yielding.values()]
            acc, req = plan.decision, plan.request
            row = b.store_new(conn, SessionId(sid), Outcome(acc, topo, req), meta, organizer_id, now,
                              plan_doc(topo, acc.plan, req.site_ids, plan.own))
            self._insert_records(conn, records)
            return Opened(Outcome(acc, topo, req, row), _views(records), changes, _limited(topo, req.site_ids, plan.own))

    def _rewrite(self, conn: Connection, topo: Topology, y: Yielding, row: Any, by: str, now: int) -> Change:
        """Store what a session gives way with under a new revision: admission and joins follow it at once."""
        old = json.loads(row.plan_json)
        moved = dict(old.get("rooms_moved") or {})
        for s, room in y.rooms.items():
            if room != y.before.rooms.get(s):
                moved[s] = {"from": y.before.rooms.get(s), "to": room, "by": by, "at": now}
        return self._store(conn, topo, row, y.before.sites, y.capped, y.given, y.rooms, moved, set(y.kinds),
                           bump=any(k in y.kinds for k in ("move", "release")))

    def _store(self, conn: Connection, topo: Topology, row: Any, sites: Iterable[SiteId], capped: Capped,
               given: dict[SiteId, RoomGiven], rooms: dict[SiteId, str], moved: dict[str, Any], kinds: set[str],
               bump: bool) -> Change:
        profile = topo.profile(row.profile)
        assert profile is not None
        sites = list(sites)
        present = [s for s in sites if s not in given]
        plan = capped_plan(topo, profile, PlanKind(row.plan), present, capped)
        doc = plan_doc(topo, plan, present, capped)
        if given:
            doc["dropped"] = [s for s in sites if s in given or s in doc.get("dropped", [])]
            doc["rooms_given"] = {s: {"room": g.room, "by": g.by, "at": g.at,
                                      "layout": capped.base.get(s, Layout.FULL).value} for s, g in given.items()}
        if moved:
            doc["rooms_moved"] = moved
        rev = new_revision()
        plan_json = json.dumps(doc)
        sites_json = json.dumps([{"site": s, "room": rooms.get(s)} for s in sites])
        values: dict[str, Any] = {"plan_json": plan_json, "sites_json": sites_json, "revision": rev}
        if bump:
            values["sequence"] = (row.sequence or 0) + 1  # its rooms changed: invites go again
        conn.execute(update(ST).where(ST.c.id == row.id).values(**values))
        conn.execute(update(OT).where(OT.c.session_id == row.id).values(rev=rev))
        self.bookings.remember_held(row.id, rev, held_from_row(plan_json, sites_json))
        layouts, dropped = effective(topo, present, capped)
        view = session_view({**row._mapping, **values}) if bump else None
        return Change(row.id, row.title, {s: l.value for s, l in layouts.items()}, [*dropped, *given],
                      frozenset(kinds), view)

    def _insert_records(self, conn: Connection, records: list[dict[str, Any]]) -> None:
        if records:
            conn.execute(insert(PT), records)

    def _overlapping(self, conn: Connection, start: int, end: int) -> tuple[list[_Victim], dict[str, list[tuple[int, int]]]]:
        """Booked sessions with an occurrence overlapping [start, end), and those occurrences."""
        spans: dict[str, list[tuple[int, int]]] = {}
        for s_id, _rev, s, e in self.bookings.occurrences_in(conn, start, end):
            spans.setdefault(s_id, []).append((s, e))
        out = []
        for r in self._rows(conn, set(spans)).values():
            plan = json.loads(r.plan_json)
            given = _given(plan)
            out.append(_Victim(r, [SiteId(x["site"]) for x in json.loads(r.sites_json) if x["site"] not in given],
                               _capped(plan), given))
        return out, spans

    # -- end --------------------------------------------------------------------------------
    def end(self, emergency_id: str, now: int) -> Ended:
        """The emergency ends now; what emergencies that are over took is offered back where it fits."""
        b = self.bookings
        with write_transaction(self.engine) as conn:
            row = b.row(conn, emergency_id)
            if (row.precedence or 0) < int(Precedence.EMERGENCY):
                raise NotAnEmergency(f"session {emergency_id} is not an emergency")
            if row.status != "booked" or row.last_end <= now:
                raise NotAnEmergency(f"emergency {emergency_id} is already over")
            start = min(row.start, now)
            conn.execute(update(ST).where(ST.c.id == emergency_id).values(
                end=now, last_end=now, occurrences_json=json.dumps([[start, now]])))
            conn.execute(update(OT).where(OT.c.session_id == emergency_id).values(end=now))
            topo = b.topology_in(conn)
            records, changes = self._give_back(conn, topo, emergency_id, now)
            ended = conn.execute(select(ST).where(ST.c.id == emergency_id)).first()
            return Ended(session_view(ended._mapping), _views(records), changes)

    def give_back(self, ended_by: str, now: int) -> Ended:
        """After an emergency was cancelled (not ended): offer back what emergencies that are over took."""
        with write_transaction(self.engine) as conn:
            topo = self.bookings.topology_in(conn)
            records, changes = self._give_back(conn, topo, ended_by, now)
            row = self.bookings.row(conn, ended_by)
            return Ended(session_view(row._mapping), _views(records), changes)

    def _give_back(self, conn: Connection, topo: Topology, ended_by: str, now: int) -> tuple[list[dict[str, Any]], list[Change]]:
        horizon = now + MAX_OCCURRENCE_S
        sessions, spans = self._overlapping(conn, now, horizon)
        running = {v.row.id for v in sessions if (v.row.precedence or 0) >= int(Precedence.EMERGENCY)
                   and any(s <= now < e for s, e in spans[v.row.id])}
        records, changes = self._links_back(conn, topo, sessions, spans, running, ended_by, now)
        # Rooms after links: a site back in its session puts its load on the links again, so it comes back
        # only where the links (as just given back) carry it.
        more, back = self._rooms_back(conn, topo, ended_by, now)
        records += more
        merged = {c.session: c for c in changes}
        for c in back:
            kinds = merged[c.session].kinds | c.kinds if c.session in merged else c.kinds
            merged[c.session] = replace(c, kinds=kinds)
        self._insert_records(conn, records)
        return records, list(merged.values())

    def _links_back(self, conn: Connection, topo: Topology, sessions: list[_Victim], spans: dict[str, list[tuple[int, int]]],
                    running: set[str], ended_by: str, now: int) -> tuple[list[dict[str, Any]], list[Change]]:
        horizon = now + MAX_OCCURRENCE_S
        # Caps of emergencies that are over (this one, and any an earlier ending could not give back).
        taken: list[tuple[LinkDir, Holding]] = []
        owners: dict[str, _Victim] = {}
        for v in sessions:
            profile = topo.profile(v.row.profile)
            if profile is None:
                continue
            for key, cap in v.capped.caps.items():
                if cap.by in running or cap.by == v.row.id:
                    continue
                rungs, here = ladder(topo, profile, PlanKind(v.row.plan), v.sites, v.capped, key)
                taken.append((key, Holding(v.row.id, Precedence(v.row.precedence or 0), v.row.created_at, rungs, here)))
                owners[v.row.id] = v
        if not taken:
            return [], []
        keys = {k for k, _h in taken}
        others: dict[LinkDir, int] = {}
        for key in keys:
            mine = {h.session for k, h in taken if k == key}
            booked = []
            for v in sessions:
                if v.row.id in mine or v.row.id == ended_by:
                    continue
                load = _load(topo, v, key)
                booked += [Booked(v.row.id, max(s, now), e, load) for s, e in spans[v.row.id] if load and e > now]
            others[key] = excess(booked, now, horizon, 0).peak
        limits = {k: topo.links[k[0]].limit_kbps for k in keys}
        records, kinds = [], {}
        for a in restore(taken, limits, others):
            v = owners[a.session]
            owners[a.session] = replace(v, capped=v.capped.with_cap((a.link, a.direction), a.step, ended_by, now))
            records.append(_record(now, ended_by, a.session, a, sites_behind(topo, v.sites, a.link)))
            kinds.setdefault(a.session, set()).add("restore")
        changes = []
        for sid, k in kinds.items():
            v = owners[sid]
            rooms = {SiteId(x["site"]): x["room"] for x in json.loads(v.row.sites_json)}
            changes.append(self._store(conn, topo, v.row, rooms, v.capped, v.given, rooms,
                                       json.loads(v.row.plan_json).get("rooms_moved") or {}, k, bump=False))
        return records, changes

    def _rooms_back(self, conn: Connection, topo: Topology, ended_by: str,
                    now: int) -> tuple[list[dict[str, Any]], list[Change]]:
        """Rooms given up: back to their sessions where the room (or, while an emergency still holds it,
        another of the site, main first) is free for every occurrence to come and the links carry the site."""
        records: list[dict[str, Any]] = []
        changes: list[Change] = []
        sessions, _spans = self._overlapping(conn, now, now + MAX_OCCURRENCE_S)  # as the links left them
        for v in sessions:
            back = dict(v.given)  # whoever took the room: another room of the site may be free now
            if not back:
                continue
            rooms = {SiteId(x["site"]): x["room"] for x in json.loads(v.row.sites_json)}
            given = dict(v.given)
            for site, g in back.items():
                for room in [g.room, *(r for r in main_first([x.id for x in topo.sites[site].rooms]) if r != g.room)]:
                    trial = {s: x for s, x in given.items() if s != site}
                    if self._fits(conn, topo, v.row, trial, {**rooms, site: room}, v.capped, now):
                        given, rooms[site] = trial, room
                        records.append(_room_record(now, ended_by, v.row.id, RoomAction(v.row.id, site, g.room, "restore", room)))
                        break
            if given != v.given:
                plan = json.loads(v.row.plan_json)
                changes.append(self._store(conn, topo, v.row, rooms, v.capped, given, rooms,
                                           plan.get("rooms_moved") or {}, {"restore"}, bump=True))
        return records, changes

    def _fits(self, conn: Connection, topo: Topology, row: Any, given: dict[SiteId, RoomGiven], rooms: dict[SiteId, str],
              capped: Capped, now: int) -> bool:
        """Would the session, with these sites in these rooms, be admitted for what is left of it?"""
        later = [Occurrence(max(s, now), e) for s, e in json.loads(row.occurrences_json) if e > now]
        profile = topo.profile(row.profile)
        if not later or profile is None:
            return False
        present = [SiteId(x["site"]) for x in json.loads(row.sites_json) if x["site"] not in given]
        req = normalise(topo, BookingRequest(SiteId(row.host_site), tuple(SiteChoice(s, RoomId(rooms[s])) for s in present),
                                             tuple(later), row.profile, PlanKind(row.plan)))
        existing = self.bookings.existing(conn, topo, req, later[0].start, later[-1].end, row.id)
        plan = capped_plan(topo, profile, PlanKind(row.plan), present, capped)
        return isinstance(evaluate(topo, existing, req, plan), Accepted)

    # -- reads ------------------------------------------------------------------------------
    def records(self, session: str | None = None, emergency: str | None = None, limit: int = 5000) -> list[dict[str, Any]]:
        q = select(PT).order_by(PT.c.at, PT.c.id).limit(limit)
        if session is not None:
            q = q.where((PT.c.session_id == session) | (PT.c.emergency_id == session))
        if emergency is not None:
            q = q.where(PT.c.emergency_id == emergency)
        with read_transaction(self.engine) as conn:
            return [{**{c: r._mapping[c] for c in RECORD_COLUMNS}, "sites": r.sites.split()} for r in conn.execute(q)]

    def get_emergency(self, emergency_id: str) -> dict[str, Any]:
        s = self.bookings.get(emergency_id)
        if s["precedence"] != "emergency":
            raise NotFound(f"session {emergency_id} is not an emergency")
        return s


def _load(topo: Topology, v: _Victim, key: LinkDir) -> int:
    profile = topo.profile(v.row.profile)
    return 0 if profile is None else capped_plan(topo, profile, PlanKind(v.row.plan), v.sites, v.capped).load(*key)


def _views(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{**r, "sites": r["sites"].split()} for r in records]


def _record(now: int, emergency: str, session: str, a: Action, sites: list[SiteId]) -> dict[str, Any]:
    return {"at": now, "emergency_id": emergency, "session_id": session, "link": a.link, "direction": a.direction.value,
            "kind": a.kind, "step": a.step, "from_kbps": a.from_kbps, "to_kbps": a.to_kbps, "sites": " ".join(sites)}


def _room_record(now: int, emergency: str, session: str, a: RoomAction) -> dict[str, Any]:
    """A room taken (move, release) or given back (restore): `link` holds the room, `step` where it went."""
    return {"at": now, "emergency_id": emergency, "session_id": session, "link": f"{a.site}/{a.room}", "direction": "",
            "kind": a.kind, "step": a.to_room or "released", "from_kbps": 0, "to_kbps": 0, "sites": a.site}


def _step_record(topo: Topology, now: int, emergency: str, st: Any, plan: EmergencyPlan) -> dict[str, Any]:
    if st.room is not None:
        return _room_record(now, emergency, st.session, st.room)
    a = st.link
    sites = plan.yielding[st.session].present if st.session in plan.yielding else plan.request.site_ids
    return _record(now, emergency, st.session, a, sites_behind(topo, sites, a.link))


def what(topo: Topology, r: dict[str, Any]) -> str:
    """A record in words."""
    if r["direction"]:
        return f"{WORDS.get(r['step'], r['step'])} on {r['link']} ({r['direction']}): {r['from_kbps']} → {r['to_kbps']} kbit/s"
    site, _, room = r["link"].partition("/")
    if site not in topo.sites:
        return f"{r['kind']} {r['link']} → {r['step']}"
    names = {x.id: x.name for x in topo.sites[site].rooms}
    if r["kind"] == "restore":
        return f"{topo.sites[site].name} is back in the session, in {names.get(r['step'], r['step'])}"
    return room_words(topo, RoomAction(r["session_id"], site, room, r["kind"], None if r["step"] == "released" else r["step"]))


def _limited(topo: Topology, sites: list[SiteId], own: Capped) -> list[dict[str, Any]]:
    """The emergency's own sites that get less than it asked, each with the link and the reason in words."""
    out = []
    layouts, dropped = effective(topo, sites, own)
    for key, cap in sorted(own.caps.items()):
        link = topo.links[key[0]]
        behind = sites_behind(topo, sites, key[0])
        name = f"{topo.sites[link.child].name} – {topo.sites[link.parent].name}"
        for s in behind:
            got = DROPPED if s in dropped else layouts.get(s, Layout.FULL).value
            out.append({"site": s, "receives": got, "link": key[0], "direction": key[1].value,
                        "reason": f"{name} ({key[1].value}) has no room left for more even after every lower-precedence "
                                  f"session on it gave way: {topo.sites[s].name} gets {WORDS.get(got, got)}"})
    return out


def as_csv_rows(records: list[dict[str, Any]]) -> Iterable[list[Any]]:
    yield list(RECORD_COLUMNS)
    for r in records:
        yield [" ".join(r[c]) if c == "sites" else r[c] for c in RECORD_COLUMNS]

