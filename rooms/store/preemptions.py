"""Emergencies in the database: open one by pre-empting lower precedence, end it and give back.

Around the pure parts: `rooms/preemption.py` decides who gives what on a congested link,
`rooms/caps.py` turns a step into a session's plan. Here, under the booking store's write lock:

- `open`: admit the emergency; where links refuse it, pre-empt the overlapping sessions of lower
  precedence on exactly those links (their plans are rewritten with caps, so admission and the media
  follow), and if a link still lacks room, cap the emergency's own sites behind it (speaker, audio,
  then left out) — it starts with what fits and says which sites are limited and why.
- `end`: the emergency's occurrence ends now; every cap whose emergency is over is offered back,
  highest precedence first, as far as each link has room.
- Every take and give-back is a `preemption` row: the sessions' history, exportable.

Load on a link is counted conservatively over the emergency's window: the overlapping sessions'
holds are summed as if they all met at its busiest moment (the limit is raised by what they add
beyond that peak, so a link is congested exactly when admission says so).
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Iterable

from sqlalchemy import Connection, insert, select, update

from rooms.admission import Accepted, BookingRequest, Refused, evaluate
from rooms.booking_form import SessionMeta
from rooms.caps import AS_BOOKED, DROPPED, WORDS, Capped, LinkDir, capped_plan, effective, ladder, next_step, \
    plan_doc, sites_behind
from rooms.ids import PlanKind, SiteId, new_session_id
from rooms.plan import Layout
from rooms.preemption import Action, Holding, Precedence, preempt, restore
from rooms.store.bookings import BookingStore, NotFound, Outcome, _session_values, new_revision, session_view
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


class _StillRefused(Exception):
    """Raised inside the write transaction so that what victims gave up is rolled back."""

    def __init__(self, outcome: Outcome):
        self.outcome = outcome


@dataclass(frozen=True)
class Change:
    """A session whose plan pre-emption changed: what each of its sites now receives."""
    session: str
    title: str
    layouts: dict[str, str]  # site -> speaker | audio (absent: the full program)
    dropped: list[str]
    kinds: frozenset[str]  # degrade, drop, restore, limit


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
class _Victim:
    row: Any
    sites: list[SiteId]
    capped: Capped


def _booked_layouts(plan: dict[str, Any]) -> dict[SiteId, Layout]:
    return {SiteId(s): Layout(l) for s, l in plan.get("layouts", {}).items()}


class Preemptions:
    def __init__(self, bookings: BookingStore):
        self.bookings = bookings
        self.engine = bookings.engine

    # -- open -------------------------------------------------------------------------------
    def open(self, req: BookingRequest, meta: SessionMeta, organizer_id: str, now: int) -> Opened:
        try:
            return self._open(req, meta, organizer_id, now)
        except _StillRefused as refused:  # rolled back: nobody gave way for an emergency that does not start
            return Opened(refused.outcome)

    def _open(self, req: BookingRequest, meta: SessionMeta, organizer_id: str, now: int) -> Opened:
        b = self.bookings
        with write_transaction(self.engine) as conn:
            out = b._decide(conn, req, None)
            topo, req = out.topology, out.request
            sid = new_session_id()
            precedence = Precedence(meta.precedence)
            first, last = req.occurrences[0].start, req.occurrences[-1].end
            profile = topo.profile(req.profile)
            assert profile is not None  # normalised
            sites = req.site_ids
            own = Capped(dict(b._plan(topo, req).layouts))
            records: list[dict[str, Any]] = []
            touched: dict[str, tuple[_Victim, set[str]]] = {}
            changes: list[Change] = []
            decision = out.decision
            if isinstance(decision, Refused) and _link_keys(decision):
                demand = {k: capped_plan(topo, profile, req.plan, sites, own).load(*k) for k in _link_keys(decision)}
                taken = self._preempt(conn, topo, demand, first, last, precedence, sid, now)
                for victim, action in taken:
                    records.append(_record(now, sid, victim.row.id, action, sites_behind(topo, victim.sites, action.link)))
                    touched.setdefault(victim.row.id, (victim, set()))[1].add(action.kind)
                # Rewritten now, so the emergency is admitted against what the victims hold after giving way.
                changes = [self._rewrite(conn, topo, v, kinds) for v, kinds in touched.values()]
                decision = self._evaluate(conn, topo, req, own, profile)
            # Still short: the emergency's own sites behind those links take less, as far as needed.
            for _ in range(4 * max(1, len(sites))):
                if not (isinstance(decision, Refused) and _link_keys(decision)):
                    break
                for key in _link_keys(decision):
                    cur = own.caps[key].step if key in own.caps else AS_BOOKED
                    before = capped_plan(topo, profile, req.plan, sites, own).load(*key)
                    step = next_step(cur)
                    if step is None:
                        continue
                    own = own.with_cap(key, step, sid, now)
                    after = capped_plan(topo, profile, req.plan, sites, own).load(*key)
                    if after < before:  # a step that frees nothing here (an uplink's picture) is passed over
                            records.append(_record(now, sid, sid, Action(sid, key[0], key[1], "limit", step, before, after),
                                               sites_behind(topo, sites, key[0])))
                decision = self._evaluate(conn, topo, req, own, profile)
            if isinstance(decision, Refused):
                raise _StillRefused(Outcome(decision, topo, req))  # rooms or media nodes: nothing pre-empts those
            acc = decision
            outcome = Outcome(acc, topo, req)
            row = _session_values(sid, outcome, meta, organizer_id, now)
            row["plan_json"] = json.dumps(plan_doc(topo, acc.plan, sites, own))
            b._insert_session(conn, row)
            b._insert_occurrences(conn, sid, row["revision"], acc)
            self._insert_records(conn, records)
            limited = _limited(topo, sites, own)
            return Opened(Outcome(acc, topo, req, row), _views(records), changes, limited)

    def _evaluate(self, conn: Connection, topo: Topology, req: BookingRequest, own: Capped, profile: Any) -> Accepted | Refused:
        first, last = req.occurrences[0].start, req.occurrences[-1].end
        existing = self.bookings._existing(conn, topo, req, first, last, None)
        return evaluate(topo, existing, req, capped_plan(topo, profile, req.plan, req.site_ids, own))

    def _overlapping(self, conn: Connection, topo: Topology, start: int, end: int,
                     exclude: Iterable[str] = ()) -> tuple[list[_Victim], dict[str, list[tuple[int, int]]]]:
        """Booked sessions with an occurrence overlapping [start, end), and those occurrences."""
        rows = self.bookings._sql.window(conn, start - MAX_OCCURRENCE_S, end, start, "")
        spans: dict[str, list[tuple[int, int]]] = {}
        for s_id, _rev, s, e in rows:
            if s_id not in exclude:
                spans.setdefault(s_id, []).append((s, e))
        if not spans:
            return [], {}
        found = conn.execute(select(ST).where(ST.c.id.in_(sorted(spans)), ST.c.status == "booked")).fetchall()
        out = []
        for r in found:
            plan = json.loads(r.plan_json)
            out.append(_Victim(r, [SiteId(x["site"]) for x in json.loads(r.sites_json)],
                               Capped.from_json(plan.get("preempted"), _booked_layouts(plan))))
        return out, spans

    def _preempt(self, conn: Connection, topo: Topology, demand: dict[LinkDir, int], start: int, end: int,
                 precedence: Precedence, sid: str, now: int) -> list[tuple[_Victim, Action]]:
        """Run the decision on the congested links and apply it to the victims' caps (not yet written)."""
        sessions, spans = self._overlapping(conn, topo, start, end)
        limits: dict[LinkDir, int] = {}
        held: dict[LinkDir, list[Holding]] = {}
        by_id = {v.row.id: v for v in sessions}
        for key in demand:
            holdings: list[Holding] = []
            booked: list[Booked] = []
            for v in sessions:
                profile = topo.profile(v.row.profile)
                if profile is None:
                    continue
                rungs, here = ladder(topo, profile, PlanKind(v.row.plan), v.sites, v.capped, key)
                mine = rungs[here][1] if here < len(rungs) else 0
                if mine <= 0:
                    continue
                mine_prec = Precedence(v.row.precedence or 0)
                # Equal or higher precedence holds what it holds: a one-rung ladder it is never moved on.
                holdings.append(Holding(v.row.id, mine_prec, v.row.created_at,
                                        rungs if mine_prec < precedence else ((rungs[here][0], mine),),
                                        here if mine_prec < precedence else 0))
                booked += [Booked(v.row.id, s, e, mine) for s, e in spans[v.row.id]]
            peak = excess(booked, start, end, 0).peak
            limits[key] = topo.links[key[0]].limit_kbps + sum(h.kbps for h in holdings) - peak
            held[key] = holdings
        decision = preempt(demand, limits, held, precedence)
        taken: list[tuple[_Victim, Action]] = []
        for a in decision.actions:
            v = by_id[a.session]
            by_id[a.session] = v = _Victim(v.row, v.sites, v.capped.with_cap((a.link, a.direction), a.step, sid, now))
            taken.append((v, a))
        # Every action of a session is applied to its last state.
        return [(by_id[v.row.id], a) for v, a in taken]

    def _rewrite(self, conn: Connection, topo: Topology, v: _Victim, kinds: set[str]) -> Change:
        """Store a victim's capped plan under a new revision: admission and joins follow it at once."""
        profile = topo.profile(v.row.profile)
        assert profile is not None
        plan = capped_plan(topo, profile, PlanKind(v.row.plan), v.sites, v.capped)
        doc = plan_doc(topo, plan, v.sites, v.capped)
        rev = new_revision()
        plan_json = json.dumps(doc)
        conn.execute(update(ST).where(ST.c.id == v.row.id).values(plan_json=plan_json, revision=rev))
        conn.execute(update(OT).where(OT.c.session_id == v.row.id).values(rev=rev))
        self.bookings._held.put(v.row.id, rev, held_from_row(plan_json, v.row.sites_json))
        layouts, dropped = effective(topo, v.sites, v.capped)
        return Change(v.row.id, v.row.title, {s: l.value for s, l in layouts.items()}, list(dropped), frozenset(kinds))

    def _insert_records(self, conn: Connection, records: list[dict[str, Any]]) -> None:
        if records:
            conn.execute(insert(PT), records)

    # -- end --------------------------------------------------------------------------------
    def end(self, emergency_id: str, now: int) -> Ended:
        """The emergency ends now; what emergencies that are over took is offered back where it fits."""
        b = self.bookings
        with write_transaction(self.engine) as conn:
            row = b._row(conn, emergency_id)
            if (row.precedence or 0) < int(Precedence.EMERGENCY):
                raise NotAnEmergency(f"session {emergency_id} is not an emergency")
            if row.status != "booked" or row.last_end <= now:
                raise NotAnEmergency(f"emergency {emergency_id} is already over")
            start = min(row.start, now)
            conn.execute(update(ST).where(ST.c.id == emergency_id).values(
                end=now, last_end=now, occurrences_json=json.dumps([[start, now]])))
            conn.execute(update(OT).where(OT.c.session_id == emergency_id).values(end=now))
            topo = b._topology(conn)
            records, changes = self._give_back(conn, topo, emergency_id, now)
            ended = conn.execute(select(ST).where(ST.c.id == emergency_id)).first()
            return Ended(session_view(ended._mapping), _views(records), changes)

    def give_back(self, ended_by: str, now: int) -> Ended:
        """After an emergency was cancelled (not ended): offer back what emergencies that are over took."""
        with write_transaction(self.engine) as conn:
            topo = self.bookings._topology(conn)
            records, changes = self._give_back(conn, topo, ended_by, now)
            row = self.bookings._row(conn, ended_by)
            return Ended(session_view(row._mapping), _views(records), changes)

    def _give_back(self, conn: Connection, topo: Topology, ended_by: str, now: int) -> tuple[list[dict[str, Any]], list[Change]]:
        horizon = now + MAX_OCCURRENCE_S
        sessions, spans = self._overlapping(conn, topo, now, horizon)
        running = {v.row.id for v in sessions if (v.row.precedence or 0) >= int(Precedence.EMERGENCY)
                   and any(s <= now < e for s, e in spans[v.row.id])}
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
        actions = restore(taken, limits, others)
        records, kinds = [], {}
        for a in actions:
            v = owners[a.session]
            owners[a.session] = _Victim(v.row, v.sites, v.capped.with_cap((a.link, a.direction), a.step, ended_by, now))
            records.append(_record(now, ended_by, a.session, a, sites_behind(topo, v.sites, a.link)))
            kinds.setdefault(a.session, set()).add("restore")
        self._insert_records(conn, records)
        return records, [self._rewrite(conn, topo, owners[s], k) for s, k in kinds.items()]

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


def _link_keys(decision: Refused) -> list[LinkDir]:
    return sorted({(v.link, v.direction) for v in decision.violations
                   if v.kind == "link" and v.link is not None and v.direction is not None})


def _record(now: int, emergency: str, session: str, a: Action, sites: list[SiteId]) -> dict[str, Any]:
    return {"at": now, "emergency_id": emergency, "session_id": session, "link": a.link, "direction": a.direction.value,
            "kind": a.kind, "step": a.step, "from_kbps": a.from_kbps, "to_kbps": a.to_kbps, "sites": " ".join(sites)}


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

