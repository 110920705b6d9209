"""The booking store: admission applied atomically, edits and cancellations re-admitted.

Every write runs under `write_transaction`, so the reservations `evaluate`
sees cannot change before the new ones commit. A booking stores its session
row and one narrow row per occurrence; what each session holds (link loads,
rooms, node legs) comes from its plan, memoised per revision (held.py). The
hot path is four plain statements on the driver (hot_sql.py) and a commit of
a few pages; everything else is SQLAlchemy Core.
"""
from __future__ import annotations

import json
import secrets
import time
from dataclasses import dataclass, replace
from functools import cached_property
from datetime import datetime, timezone
from typing import Any, Iterable

from sqlalchemy import Connection, Engine, bindparam, delete, func, insert, select, update

from rooms.admission import (DEFAULT_HORIZON_S, Accepted, Alternative, BookingRequest, Existing, Occurrence, Refused,
                             RequestError, SiteChoice, earliest_shift, evaluate, fits_when_alone, normalise, plan_for,
                             same_time_alternatives)
from rooms.booking_form import SessionMeta
from rooms.ids import Direction, LinkId, PlanKind, RoomId, SessionId, SiteId, new_session_id
from rooms.plan import Layout, MediaPlan
from rooms.preemption import Precedence
from rooms.recurrence import iso
from rooms.store.engine import read_transaction, write_transaction
from rooms.store.held import Held, HeldMemo, held_from_decision, held_from_row
from rooms.store.hot_sql import HotPath
from rooms.store.tables import SessionOccurrence, SessionRow, TopologyRow
from rooms.timeline import MAX_OCCURRENCE_S, Booked, Intervals, uncovered, union
from rooms.topology import Topology, parse_topology

OT = SessionOccurrence.__table__
ST = SessionRow.__table__
TT = TopologyRow.__table__


# Built once: SQLAlchemy caches their compiled form. (The hot statements are in hot_sql.py.)
_HELD_Q = select(ST.c.id, ST.c.revision, ST.c.plan_json, ST.c.sites_json).where(
    ST.c.id.in_(bindparam("ids", expanding=True)))
_FORGET_Q = delete(OT).where(OT.c.session_id == bindparam("sid"), OT.c.start.in_(bindparam("starts", expanding=True)))
DIAL_IN_DRAWS = 50
# A later start is looked for this far ahead, one look after the other, then over the whole horizon.
SHIFT_LOOKS_S = (3 * 3600, 12 * 3600, 86400, 2 * 86400)
_HELD_CHUNK = 500  # ids per IN list when the memo misses many sessions at once


class NotFound(LookupError):
    pass


class NoTopology(RuntimeError):
    pass


class SessionCancelled(RuntimeError):
    pass


class DialInExhausted(RuntimeError):
    """Nearly every dial-in number is taken: the booking is not stored."""


@dataclass(frozen=True)
class Outcome:
    decision: Accepted | Refused
    topology: Topology
    request: BookingRequest
    row: dict[str, Any] | None = None  # the stored session row, when committed

    @cached_property
    def session(self) -> dict[str, Any] | None:
        """The stored session as the API shows it: built when asked for, not inside the booking lock."""
        return None if self.row is None else session_view(self.row)


@dataclass(frozen=True)
class TopologyChange:
    applied: bool
    version: int
    broken: tuple[dict[str, Any], ...]  # future sessions the new topology could not carry


class BookingStore:
    def __init__(self, engine: Engine, horizon_s: int = DEFAULT_HORIZON_S):
        self.engine = engine
        self.horizon_s = horizon_s
        self._cached: tuple[int, Topology] | None = None
        self._held = HeldMemo()
        self._sql = HotPath(engine.dialect.name)
        self._plans: tuple[Topology | None, dict[tuple[Any, ...], MediaPlan]] = (None, {})

    # -- topology ---------------------------------------------------------
    def _topology(self, conn: Connection) -> Topology:
        version = self._sql.topology_version(conn)
        if version is None:
            raise NoTopology("no topology loaded: run `confctl topology load FILE`")
        if self._cached is None or self._cached[0] != version:
            doc = conn.execute(select(TT.c.doc).where(TT.c.id == 1)).scalar_one()
            self._cached = (version, parse_topology(json.loads(doc)))
        return self._cached[1]

    def topology(self) -> Topology:
        with read_transaction(self.engine) as conn:
            return self._topology(conn)

    def count_booked(self, after: int) -> int:
        """Booked sessions whose last occurrence ends after `after` (for /metrics: a count, not the rows)."""
        with read_transaction(self.engine) as conn:
            return conn.execute(select(func.count()).select_from(ST).where(
                ST.c.status == "booked", ST.c.last_end > after)).scalar_one()

    def has_topology(self) -> bool:
        with read_transaction(self.engine) as conn:
            return conn.execute(select(TT.c.version)).scalar() is not None

    def set_topology(self, topo: Topology, *, now: int | None = None) -> TopologyChange:
        """Replace the topology unless a future session would no longer fit; then list those."""
        now = int(time.time()) if now is None else now
        with write_transaction(self.engine) as conn:
            version = conn.execute(select(TT.c.version).where(TT.c.id == 1)).scalar()
            broken = self._readmit_all(conn, topo, now) if version is not None else []
            if broken:
                return TopologyChange(False, version or 0, tuple(broken))
            doc = json.dumps(topo.to_dict(), ensure_ascii=False)
            if version is None:
                conn.execute(insert(TT).values(id=1, version=1, doc=doc, loaded_at=now))
                return TopologyChange(True, 1, ())
            conn.execute(update(TT).where(TT.c.id == 1).values(version=version + 1, doc=doc, loaded_at=now))
            self._rewrite_future(conn, topo, now)
            return TopologyChange(True, version + 1, ())

    def _future_sessions(self, conn: Connection, now: int) -> list[Any]:
        return list(conn.execute(
            select(ST).where(ST.c.status == "booked", ST.c.last_end > now).order_by(ST.c.created_at, ST.c.id)))

    def _readmit_all(self, conn: Connection, topo: Topology, now: int) -> list[dict[str, Any]]:
        """Admit every future session again, oldest booking first, against the new topology."""
        held = Existing()
        broken: list[dict[str, Any]] = []
        for row in self._future_sessions(conn, now):
            req = _row_request(row, now)
            try:
                req = normalise(topo, req)
            except RequestError as exc:
                broken.append({"session": row.id, "title": row.title, "reason": exc.detail})
                continue
            decision = evaluate(topo, held, req)
            if isinstance(decision, Refused):
                v = decision.violations[0].to_dict(topo)
                broken.append({"session": row.id, "title": row.title,
                               "reason": f"{len(decision.violations)} violation(s), first: {v}"})
                continue
            _hold(held, SessionId(row.id), decision)
        return broken

    def _rewrite_future(self, conn: Connection, topo: Topology, now: int) -> None:
        """Rates or shares changed: store the future reservations as the new topology computes them."""
        for row in self._future_sessions(conn, now):
            req = normalise(topo, _row_request(row, now))
            decision = evaluate(topo, Existing(), req)
            if isinstance(decision, Accepted):
                rev = new_revision()
                conn.execute(update(ST).where(ST.c.id == row.id).values(
                    plan_json=json.dumps(decision.plan.to_dict(topo)), revision=rev))
                conn.execute(update(OT).where(OT.c.session_id == row.id).values(rev=rev))

    # -- admission --------------------------------------------------------
    def _existing(self, conn: Connection, topo: Topology, req: BookingRequest, start: int, end: int,
                  exclude: str | None) -> Existing:
        """Reservations that could overlap [start, end) on the request's links, rooms and nodes."""
        return _Reader(self, conn, topo, req, exclude).cover([(start, end)])

    def _holdings(self, conn: Connection, rows: Iterable[Any]) -> dict[tuple[str, int], Held]:
        """Held for every (session, revision) among the occurrence rows; misses parsed from the session rows."""
        out: dict[tuple[str, int], Held] = {}
        missing: set[str] = set()
        for sid, rev, _s, _e in rows:
            if (sid, rev) not in out:
                h = self._held.get(sid, rev)
                if h is None:
                    missing.add(sid)
                else:
                    out[(sid, rev)] = h
        ids = sorted(missing)
        for i in range(0, len(ids), _HELD_CHUNK):
            for sid, rev, plan_json, sites_json in conn.execute(_HELD_Q, {"ids": ids[i:i + _HELD_CHUNK]}):
                h = held_from_row(plan_json, sites_json)
                self._held.put(sid, rev, h)
                out[(sid, rev)] = h
        return out

    def _decide(self, conn: Connection, req: BookingRequest, exclude: str | None) -> Outcome:
        topo = self._topology(conn)
        req = normalise(topo, req)
        reader = _Reader(self, conn, topo, req, exclude)
        narrow = reader.cover(_windows(req, 0))
        plan = self._plan(topo, req)
        decision = evaluate(topo, narrow, req, plan)
        if isinstance(decision, Refused):
            # Only a refusal pays for the alternatives. The later start is looked for a few hours
            # ahead first, then further, each look reading only the time the one before did not:
            # most refusals fit again once the sessions in their way end, and reading a day or a
            # week of a full calendar was most of what a refusal cost (scripts/bench/admission.py).
            alts = list(same_time_alternatives(topo, narrow, req, lambda r: self._plan(topo, r), decision))
            looks = sorted({min(ahead, self.horizon_s) for ahead in SHIFT_LOOKS_S} | {self.horizon_s})
            for ahead in looks if fits_when_alone(topo, plan) else ():
                shift = earliest_shift(topo, reader.cover(_windows(req, ahead)), req, ahead, plan)
                if shift is not None:
                    alts.append(Alternative(shift_s=shift))
                    break
            decision = Refused(decision.violations, tuple(alts))
        return Outcome(decision, topo, req)

    def _plan(self, topo: Topology, req: BookingRequest) -> MediaPlan:
        """The media plan, memoised per topology: a pure function of the sites, profile and plan kind."""
        planned_on, plans = self._plans
        if planned_on is not topo:
            plans = {}
            self._plans = (topo, plans)
        key = (req.profile, req.plan, tuple(req.site_ids), req.layouts, req.auto_layouts)
        plan = plans.get(key)
        if plan is None:
            if len(plans) > 10_000:
                plans.clear()
            plan = plans[key] = plan_for(topo, req)
        return plan

    def check(self, req: BookingRequest) -> Outcome:
        """Dry run: the decision a booking would get now; nothing is held."""
        with read_transaction(self.engine) as conn:
            return self._decide(conn, req, None)

    def book(self, req: BookingRequest, meta: SessionMeta, organizer_id: str, *, now: int | None = None,
             override: bool = False) -> Outcome:
        """`override` (an admin's): book even where admission refuses, if the session fits on an empty
        network; the refusal's violations are stored with the session, so the override stays visible."""
        now = int(time.time()) if now is None else now
        with write_transaction(self.engine) as conn:
            out = self._decide(conn, req, None)
            overridden: Refused | None = None
            if isinstance(out.decision, Refused):
                if not override:
                    return out
                alone = evaluate(out.topology, Existing(), out.request, self._plan(out.topology, out.request))
                if isinstance(alone, Refused):
                    return replace(out, decision=alone)  # too big for the network even alone: nothing to override
                overridden, out = out.decision, replace(out, decision=alone)
            sid = new_session_id()
            row = _session_values(sid, out, meta, organizer_id, now)
            if overridden is not None:
                row["override_by"] = organizer_id
                row["override_json"] = json.dumps([v.to_dict(out.topology) for v in overridden.violations])
            self._insert_session(conn, row)
            self._insert_occurrences(conn, sid, row["revision"], out.decision)
            return replace(out, row=row)

    def update(self, session_id: str, req: BookingRequest, meta: SessionMeta, *, now: int | None = None) -> Outcome:
        now = int(time.time()) if now is None else now
        with write_transaction(self.engine) as conn:
            row = self._row(conn, session_id)
            if row.status != "booked":
                raise SessionCancelled(f"session {session_id} is {row.status}; book a new one")
            out = self._decide(conn, req, session_id)
            if isinstance(out.decision, Refused):
                return out
            values = _session_values(SessionId(session_id), out, meta, row.organizer_id, row.created_at)
            values["dial_in"] = row.dial_in
            values["sequence"] = (row.sequence or 0) + 1
            conn.execute(update(ST).where(ST.c.id == session_id).values(**values))
            self._forget_occurrences(conn, row)
            self._insert_occurrences(conn, SessionId(session_id), values["revision"], out.decision)
            return replace(out, row=values)

    def cancel(self, session_id: str) -> dict[str, Any]:
        with write_transaction(self.engine) as conn:
            row = self._row(conn, session_id)
            if row.status != "booked":
                raise SessionCancelled(f"session {session_id} is already {row.status}")
            sequence = (row.sequence or 0) + 1
            conn.execute(update(ST).where(ST.c.id == session_id).values(status="cancelled", sequence=sequence))
            self._forget_occurrences(conn, row)
            return session_view({**row._mapping, "status": "cancelled", "sequence": sequence})

    def by_dial_in(self, number: str) -> dict[str, Any] | None:
        with read_transaction(self.engine) as conn:
            row = conn.execute(select(ST).where(ST.c.dial_in == number)).first()
        return session_view(row._mapping) if row is not None else None

    def _insert_session(self, conn: Connection, row: dict[str, Any]) -> None:
        """Insert a new session row with a random free dial-in number."""
        for _ in range(DIAL_IN_DRAWS):
            row["dial_in"] = f"{secrets.randbelow(900000) + 100000}"  # 6 digits, random
            if self._sql.insert_session(conn, row):
                return
        # only when nearly every number is taken: say so rather than spin under the lock
        raise DialInExhausted(f"no free dial-in number after {DIAL_IN_DRAWS} random draws; "
                              "cancel unused sessions or widen the numbering plan")

    def _insert_occurrences(self, conn: Connection, sid: SessionId, rev: int, acc: Accepted) -> None:
        self._sql.insert_occurrences(conn, [(o.start, sid, o.end, rev) for o in acc.occurrences])
        # Primed now, used once committed: the revision is new, so a rollback leaves only an unused entry.
        self._held.put(sid, rev, held_from_decision(acc))

    def _forget_occurrences(self, conn: Connection, row: Any) -> None:
        starts = [s for s, _e in json.loads(row.occurrences_json)]
        conn.execute(_FORGET_Q, {"sid": row.id, "starts": starts})

    # -- reads ------------------------------------------------------------
    def _row(self, conn: Connection, session_id: str) -> Any:
        row = conn.execute(select(ST).where(ST.c.id == session_id)).first()
        if row is None:
            raise NotFound(f"no session {session_id!r}")
        return row

    def get(self, session_id: str) -> dict[str, Any]:
        with read_transaction(self.engine) as conn:
            return session_view(self._row(conn, session_id)._mapping)

    def list(self, start: int | None = None, end: int | None = None, site: str | None = None,
             include_cancelled: bool = False, limit: int = 1000) -> list[dict[str, Any]]:
        q = select(ST)
        if not include_cancelled:
            q = q.where(ST.c.status == "booked")
        if end is not None:
            q = q.where(ST.c.start < end)
        if start is not None:
            q = q.where(ST.c.last_end > start)
        if site is None:
            q = q.order_by(ST.c.start, ST.c.id).limit(limit)
            with read_transaction(self.engine) as conn:
                return [session_view(r._mapping) for r in conn.execute(q)]
        # A site's sessions: one of its occurrences overlaps the window (a cancelled
        # session has none left) and the site takes part; sites are read from the row.
        held = select(OT.c.session_id)
        if start is not None:
            held = held.where(OT.c.end > start, OT.c.start >= start - MAX_OCCURRENCE_S)
        if end is not None:
            held = held.where(OT.c.start < end)
        q = q.where(ST.c.id.in_(held)).order_by(ST.c.start, ST.c.id)
        out: list[dict[str, Any]] = []
        with read_transaction(self.engine) as conn:
            for r in conn.execute(q):
                if any(x["site"] == site for x in json.loads(r.sites_json)):
                    out.append(session_view(r._mapping))
                    if len(out) >= limit:
                        break
        return out

    def _link_rows(self, conn: Connection, start: int, end: int, link: str | None) -> list[tuple[str, str, str, int, int, int]]:
        """(link, direction, session, start, end, kbps) of every reservation overlapping [start, end)."""
        rows = self._sql.window(conn, start - MAX_OCCURRENCE_S, end, start, "")
        held = self._holdings(conn, rows)
        return [(l, d.value, sid, s, e, kbps) for sid, rev, s, e in rows
                for l, d, kbps in held[(sid, rev)].links if link is None or l == link]

    def link_load(self, link: str, start: int, end: int) -> dict[str, Any]:
        """Reserved load on one link as a step function per direction, with its limit."""
        with read_transaction(self.engine) as conn:
            topo = self._topology(conn)
            if link not in topo.links:
                raise NotFound(f"no link {link!r}: links are named after their child site")
            rows = self._link_rows(conn, start, end, link)
        l = topo.links[LinkId(link)]
        out: dict[str, Any] = {"link": link, "from": l.child, "to": l.parent, "rate_kbps": l.rate_kbps,
                               "admitted_share": l.admitted_share, "limit_kbps": l.limit_kbps,
                               "start": start, "end": end}
        for d in Direction:
            mine = [r for r in rows if r[1] == d.value]
            steps = _steps(mine, start, end)
            out[d.value] = {"steps": steps, "peak_kbps": max((s["kbps"] for s in steps), default=0),
                            "sessions": sorted({r[2] for r in mine})}
        return out

    def all_link_peaks(self, start: int, end: int, exclude: str | None = None) -> dict[tuple[str, str], int]:
        """Peak reserved load per (link, direction) over a window: for audits, tests, and a dry run's
        background (every session but `exclude`)."""
        with read_transaction(self.engine) as conn:
            rows = [r for r in self._link_rows(conn, start, end, None) if r[2] != exclude]
        groups: dict[tuple[str, str], list[Any]] = {}
        for r in rows:
            groups.setdefault((r[0], r[1]), []).append(r)
        return {k: max(s["kbps"] for s in _steps(v, start, end)) for k, v in groups.items()}

    # -- for the pre-emption desk (rooms/store/preemptions.py), inside its own transaction ----------
    def topology_in(self, conn: Connection) -> Topology:
        return self._topology(conn)

    def plan(self, topo: Topology, req: BookingRequest) -> MediaPlan:
        return self._plan(topo, req)

    def existing(self, conn: Connection, topo: Topology, req: BookingRequest, start: int, end: int,
                 exclude: str | None = None) -> Existing:
        return self._existing(conn, topo, req, start, end, exclude)

    def occurrences_in(self, conn: Connection, start: int, end: int) -> list[tuple[str, int, int, int]]:
        """(session, revision, start, end) of every booked occurrence overlapping [start, end)."""
        return list(self._sql.window(conn, start - MAX_OCCURRENCE_S, end, start, ""))

    def holdings(self, conn: Connection, rows: Iterable[Any]) -> dict[tuple[str, int], Held]:
        return self._holdings(conn, rows)

    def remember_held(self, session_id: str, rev: int, held: Held) -> None:
        """A session's plan was rewritten under a new revision: what it holds now."""
        self._held.put(session_id, rev, held)

    def row(self, conn: Connection, session_id: str) -> Any:
        return self._row(conn, session_id)

    def store_new(self, conn: Connection, sid: SessionId, out: Outcome, meta: SessionMeta, organizer_id: str,
                  now: int, plan_doc: dict[str, Any] | None = None) -> dict[str, Any]:
        """Insert an admitted session (decided by the caller under this transaction); its row."""
        row = _session_values(sid, out, meta, organizer_id, now)
        if plan_doc is not None:
            row["plan_json"] = json.dumps(plan_doc)
        self._insert_session(conn, row)
        assert isinstance(out.decision, Accepted)
        self._insert_occurrences(conn, sid, row["revision"], out.decision)
        return row


def _windows(req: BookingRequest, ahead: int) -> list[tuple[int, int]]:
    """The time a decision must see: each occurrence, and as far as it may move later (`ahead`)."""
    return [(o.start, o.end + ahead) for o in req.occurrences]


class _Reader:
    """The reservations one decision sees, by resource, read from the occurrence index window by window.

    `cover` reads only the time not read before (a refusal's later-start search widens its windows a
    look at a time) and each window's read is bounded by the window, so a booking reads what overlaps
    its own occurrences and the horizon it searches, however many sessions the calendar holds. A
    series reads each occurrence's window, not the weeks between its first and last."""

    def __init__(self, store: BookingStore, conn: Connection, topo: Topology, req: BookingRequest,
                 exclude: str | None):
        self._store, self._conn, self._exclude = store, conn, exclude or ""
        # Links: every link on the participants' paths; nodes: those either plan could use, so the
        # alternatives (other profile, other plan) see everything they need.
        self._links = frozenset(l for s in req.site_ids for l in topo.path(s))
        self._sites = frozenset(req.site_ids)
        self._nodes = frozenset({topo.root_node(), *(topo.cascade_node(s) for s in req.site_ids)})
        self._covered: list[tuple[int, int]] = []
        self._seen: set[tuple[str, int]] = set()
        self._reads = 0
        self._by_link: dict[Any, list[Booked]] = {}
        self._by_room: dict[Any, list[Booked]] = {}
        self._by_node: dict[Any, list[Booked]] = {}

    def cover(self, windows: list[tuple[int, int]]) -> Existing:
        """Everything overlapping `windows` (and whatever was covered before)."""
        for lo, hi in uncovered(windows, self._covered):
            # Every occurrence is at most MAX_OCCURRENCE_S long, so that lower bound keeps the range scan tight.
            self._add(self._store._sql.window(self._conn, lo - MAX_OCCURRENCE_S, hi, lo, self._exclude))
            self._reads += 1
        self._covered = union([*self._covered, *windows])
        # One read arrives in start order (the query orders by the clustered key); several need a sort.
        one = self._reads <= 1
        ex = Existing()
        ex.links = {k: Intervals(v, presorted=one) for k, v in self._by_link.items()}
        ex.rooms = {k: Intervals(v, presorted=one) for k, v in self._by_room.items()}
        ex.nodes = {k: Intervals(v, presorted=one) for k, v in self._by_node.items()}
        return ex

    def _add(self, rows: list[tuple[str, int, int, int]]) -> None:
        held = self._store._holdings(self._conn, rows)
        links, sites, nodes, seen = self._links, self._sites, self._nodes, self._seen
        by_link, by_room, by_node = self._by_link, self._by_room, self._by_node
        first = not self._reads
        for sid, rev, s, e in rows:  # the hot loop of a booking: kept plain
            if not first:
                if (sid, s) in seen:
                    continue  # an occurrence across two windows: read by both
            seen.add((sid, s))
            h = held[(sid, rev)]
            shared = links & h.link_ids  # usually a few of the session's many links
            if shared:
                for link in shared:
                    for d, kbps in h.by_link[link]:
                        key = (link, d)
                        if key in by_link:
                            by_link[key].append(Booked(sid, s, e, kbps))
                        else:
                            by_link[key] = [Booked(sid, s, e, kbps)]
            for site_room in h.rooms:
                if site_room[0] in sites:
                    by_room.setdefault(site_room, []).append(Booked(sid, s, e, 1))
            for node, legs in h.nodes:
                if node in nodes:
                    by_node.setdefault(node, []).append(Booked(sid, s, e, legs))


def _steps(rows: Iterable[tuple[str, str, str, int, int, int]], start: int, end: int) -> list[dict[str, int]]:
    deltas: dict[int, int] = {}
    for _l, _d, _sid, rs, re_, kbps in rows:
        s, e = max(rs, start), min(re_, end)
        if s < e:
            deltas[s] = deltas.get(s, 0) + kbps
            deltas[e] = deltas.get(e, 0) - kbps
    level, steps = 0, []
    for t in sorted(deltas):
        level += deltas[t]
        steps.append({"t": t, "kbps": level})
    return steps


def _hold(ex: Existing, sid: SessionId, acc: Accepted) -> None:
    for o in acc.occurrences:
        for l in acc.plan.loads:
            ex.links.setdefault((l.link, l.direction), Intervals()).add(Booked(sid, o.start, o.end, l.kbps))
        for s, r in acc.rooms.items():
            ex.rooms.setdefault((s, r), Intervals()).add(Booked(sid, o.start, o.end, 1))
        for n, legs in acc.plan.node_legs.items():
            ex.nodes.setdefault(n, Intervals()).add(Booked(sid, o.start, o.end, legs))


def _row_request(row: Any, now: int) -> BookingRequest:
    """A stored session as a request again, keeping its rooms; occurrences already over are left out."""
    sites = json.loads(row.sites_json)
    occ = tuple(Occurrence(s, e) for s, e in json.loads(row.occurrences_json) if e > now)
    layouts = tuple((SiteId(s), Layout(l)) for s, l in sorted(json.loads(row.plan_json).get("layouts", {}).items()))
    return BookingRequest(SiteId(row.host_site), tuple(SiteChoice(SiteId(x["site"]), RoomId(x["room"])) for x in sites),
                          occ, row.profile, PlanKind(row.plan), layouts)


def _session_values(sid: SessionId, out: Outcome, meta: SessionMeta, organizer_id: str, created_at: int) -> dict[str, Any]:
    acc = out.decision
    assert isinstance(acc, Accepted)
    req = out.request
    return {
        "id": sid, "title": meta.title, "host_site": req.host_site, "profile": req.profile, "plan": req.plan.value,
        "start": acc.occurrences[0].start, "end": acc.occurrences[0].end, "last_end": acc.occurrences[-1].end,
        "tz_offset_min": meta.tz_offset_min, "recurrence": meta.recurrence, "record": meta.record,
        "organizer_id": organizer_id, "status": "booked", "created_at": created_at,
        "sites_json": json.dumps([{"site": c.site, "room": acc.rooms[c.site]} for c in req.sites]),
        "plan_json": json.dumps(acc.plan.to_dict(out.topology)),
        "occurrences_json": json.dumps([[o.start, o.end] for o in acc.occurrences]),
        "revision": new_revision(),
        "override_by": None, "override_json": None,  # admitted: no override (a re-admitted PATCH clears one)
        "sequence": 0,  # update() counts on from the stored one
        "precedence": meta.precedence,
        "codec": meta.codec,
    }


def new_revision() -> int:
    """A fresh revision for a session's plan: random, so no two versions share one."""
    return secrets.randbits(62)


def session_view(row: Any) -> dict[str, Any]:
    """The stored session as the API shows it; times in the organizer's offset."""
    off = row["tz_offset_min"]
    occ = json.loads(row["occurrences_json"])
    return {
        "id": row["id"], "title": row["title"], "status": row["status"], "host_site": row["host_site"],
        "sites": json.loads(row["sites_json"]), "start": iso(row["start"], off), "end": iso(row["end"], off),
        "profile": row["profile"], "plan": row["plan"], "recurrence": row["recurrence"], "record": bool(row["record"]),
        "organizer_id": row["organizer_id"],
        "admission_override": None if not row.get("override_by") else {
            "by": row["override_by"], "violations": json.loads(row.get("override_json") or "[]")},
        "created_at": datetime.fromtimestamp(row["created_at"], timezone.utc).isoformat(),
        "occurrences": [{"start": iso(s, off), "end": iso(e, off)} for s, e in occ],
        "media_plan": json.loads(row["plan_json"]),
        "dial_in": row.get("dial_in") if hasattr(row, "get") else None,
        "sequence": (row.get("sequence") if hasattr(row, "get") else None) or 0,
        "precedence": Precedence((row.get("precedence") if hasattr(row, "get") else None) or 0).name.lower(),
        "codec": (row.get("codec") if hasattr(row, "get") else None) or "vp8",
    }
