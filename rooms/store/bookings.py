"""The booking store: admission applied atomically, edits and cancellations re-admitted.

Every write runs under `write_transaction`, so the reservations `evaluate`
sees cannot change before the new ones commit. The hot path uses SQLAlchemy
Core statements: a booking is a handful of indexed reads and bulk inserts.
"""
from __future__ import annotations

import json
import secrets
import time
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from typing import Any, Iterable

from sqlalchemy import Connection, Engine, bindparam, delete, insert, select, update

from rooms.admission import (DEFAULT_HORIZON_S, Accepted, BookingRequest, Existing, Occurrence, Refused,
                             RequestError, SiteChoice, alternatives, evaluate, normalise)
from rooms.booking_form import SessionMeta
from rooms.ids import Direction, LinkId, NodeId, PlanKind, RoomId, SessionId, SiteId, new_session_id
from rooms.recurrence import iso
from rooms.store.engine import read_transaction, write_transaction
from rooms.store.tables import LinkReservation, NodeReservation, RoomReservation, SessionRow, TopologyRow
from rooms.timeline import MAX_OCCURRENCE_S, Booked, Intervals
from rooms.topology import Topology, parse_topology

LR = LinkReservation.__table__
RR = RoomReservation.__table__
NR = NodeReservation.__table__
ST = SessionRow.__table__
TT = TopologyRow.__table__


# Built once: SQLAlchemy caches their compiled form; the IN lists expand per call.
_LINKS_Q = select(LR.c.link_id, LR.c.direction, LR.c.session_id, LR.c.start, LR.c.end, LR.c.kbps).where(
    LR.c.link_id.in_(bindparam("links", expanding=True)), LR.c.start >= bindparam("lo"), LR.c.start < bindparam("hi"), LR.c.end > bindparam("from"),
    LR.c.session_id != bindparam("ex"))
_ROOMS_Q = select(RR.c.site_id, RR.c.room_id, RR.c.session_id, RR.c.start, RR.c.end).where(
    RR.c.site_id.in_(bindparam("sites", expanding=True)), RR.c.start >= bindparam("lo"), RR.c.start < bindparam("hi"), RR.c.end > bindparam("from"),
    RR.c.session_id != bindparam("ex"))
_NODES_Q = select(NR.c.node_id, NR.c.session_id, NR.c.start, NR.c.end, NR.c.legs).where(
    NR.c.node_id.in_(bindparam("nodes", expanding=True)), NR.c.start >= bindparam("lo"), NR.c.start < bindparam("hi"), NR.c.end > bindparam("from"),
    NR.c.session_id != bindparam("ex"))


_VERSION_Q = select(TT.c.version).where(TT.c.id == 1)
_DIAL_IN_Q = select(ST.c.id).where(ST.c.dial_in == bindparam("n"))
_INSERTS = {"session": insert(ST), "links": insert(LR), "rooms": insert(RR), "nodes": insert(NR)}


class NotFound(LookupError):
    pass


class NoTopology(RuntimeError):
    pass


class SessionCancelled(RuntimeError):
    pass


@dataclass(frozen=True)
class Outcome:
    decision: Accepted | Refused
    topology: Topology
    request: BookingRequest
    session: dict[str, Any] | None = None  # the stored session, when committed


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

    # -- topology ---------------------------------------------------------
    def _topology(self, conn: Connection) -> Topology:
        version = conn.execute(_VERSION_Q).scalar()
        if version is None:
            raise NoTopology("no topology loaded: run `confctl topology load FILE`")
        if self._cached is None or self._cached[0] != version:
            doc = conn.execute(select(TT.c.doc).where(TT.c.id == 1)).scalar_one()
            self._cached = (version, parse_topology(json.loads(doc)))
        return self._cached[1]

    def topology(self) -> Topology:
        with read_transaction(self.engine) as conn:
            return self._topology(conn)

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
                self._delete_reservations(conn, row.id)
                self._insert_reservations(conn, SessionId(row.id), decision)
                conn.execute(update(ST).where(ST.c.id == row.id).values(
                    plan_json=json.dumps(decision.plan.to_dict(topo))))

    # -- admission --------------------------------------------------------
    def _existing(self, conn: Connection, topo: Topology, req: BookingRequest, start: int, end: int,
                  exclude: str | None) -> Existing:
        """Reservations that could overlap [start, end) on the request's links, rooms and nodes.

        Links: every link on the participants' paths; nodes: those either plan could use,
        so the alternatives (other profile, other plan) see everything they need.
        """
        params = {
            "links": sorted({l for s in req.site_ids for l in topo.path(s)}),
            "sites": list(req.site_ids),
            "nodes": sorted({topo.root_node(), *(topo.cascade_node(s) for s in req.site_ids)}),
            "lo": start - MAX_OCCURRENCE_S,  # every occurrence is at most this long: keeps the index range tight
            "hi": end,
            "from": start,
            "ex": exclude or "",
        }
        ex = Existing()
        groups: dict[Any, list[Booked]] = {}
        for r in conn.execute(_LINKS_Q, params):
            groups.setdefault((LinkId(r[0]), Direction(r[1])), []).append(Booked(r[2], r[3], r[4], r[5]))
        ex.links = {k: Intervals(v) for k, v in groups.items()}
        groups = {}
        for r in conn.execute(_ROOMS_Q, params):
            groups.setdefault((SiteId(r[0]), RoomId(r[1])), []).append(Booked(r[2], r[3], r[4], 1))
        ex.rooms = {k: Intervals(v) for k, v in groups.items()}
        groups = {}
        for r in conn.execute(_NODES_Q, params):
            groups.setdefault(NodeId(r[0]), []).append(Booked(r[1], r[2], r[3], r[4]))
        ex.nodes = {k: Intervals(v) for k, v in groups.items()}
        return ex

    def _decide(self, conn: Connection, req: BookingRequest, exclude: str | None) -> Outcome:
        topo = self._topology(conn)
        req = normalise(topo, req)
        first, last = req.occurrences[0].start, req.occurrences[-1].end
        decision = evaluate(topo, self._existing(conn, topo, req, first, last, exclude), req)
        if isinstance(decision, Refused):
            # Only a refusal pays for loading the horizon the alternatives search.
            wide = self._existing(conn, topo, req, first, last + self.horizon_s, exclude)
            decision = Refused(decision.violations, alternatives(topo, wide, req, self.horizon_s))
        return Outcome(decision, topo, req)

    def check(self, req: BookingRequest) -> Outcome:
        """Dry run: the decision a booking would get now; nothing is held."""
        with read_transaction(self.engine) as conn:
            return self._decide(conn, req, None)

    def book(self, req: BookingRequest, meta: SessionMeta, organizer_id: str, *, now: int | None = None) -> Outcome:
        now = int(time.time()) if now is None else now
        with write_transaction(self.engine) as conn:
            out = self._decide(conn, req, None)
            if isinstance(out.decision, Refused):
                return out
            sid = new_session_id()
            row = _session_values(sid, out, meta, organizer_id, now)
            row["dial_in"] = self._free_dial_in(conn)
            conn.execute(_INSERTS["session"], row)
            self._insert_reservations(conn, sid, out.decision)
            return replace(out, session=session_view(row))

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
            conn.execute(update(ST).where(ST.c.id == session_id).values(**values))
            self._delete_reservations(conn, session_id)
            self._insert_reservations(conn, SessionId(session_id), out.decision)
            return replace(out, session=session_view(values))

    def cancel(self, session_id: str) -> dict[str, Any]:
        with write_transaction(self.engine) as conn:
            row = self._row(conn, session_id)
            if row.status != "booked":
                raise SessionCancelled(f"session {session_id} is already {row.status}")
            conn.execute(update(ST).where(ST.c.id == session_id).values(status="cancelled"))
            self._delete_reservations(conn, session_id)
            return session_view({**row._mapping, "status": "cancelled"})

    def _free_dial_in(self, conn: Connection) -> str:
        """A 6-digit number no session has (under the booking lock, so no race)."""
        while True:
            number = f"{secrets.randbelow(900000) + 100000}"
            if conn.execute(_DIAL_IN_Q, {"n": number}).first() is None:
                return number

    def by_dial_in(self, number: str) -> dict[str, Any] | None:
        with read_transaction(self.engine) as conn:
            row = conn.execute(select(ST).where(ST.c.dial_in == number)).first()
        return session_view(row._mapping) if row is not None else None

    def _insert_reservations(self, conn: Connection, sid: SessionId, acc: Accepted) -> None:
        links = [{"session_id": sid, "link_id": l.link, "direction": l.direction.value, "start": o.start, "end": o.end,
                  "kbps": l.kbps} for o in acc.occurrences for l in acc.plan.loads]
        rooms = [{"session_id": sid, "site_id": s, "room_id": r, "start": o.start, "end": o.end}
                 for o in acc.occurrences for s, r in acc.rooms.items()]
        nodes = [{"session_id": sid, "node_id": n, "start": o.start, "end": o.end, "legs": legs}
                 for o in acc.occurrences for n, legs in acc.plan.node_legs.items()]
        for key, rows in (("links", links), ("rooms", rooms), ("nodes", nodes)):
            if rows:
                conn.execute(_INSERTS[key], rows)

    def _delete_reservations(self, conn: Connection, session_id: str) -> None:
        for table in (LR, RR, NR):
            conn.execute(delete(table).where(table.c.session_id == session_id))

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
        if site is not None:
            held = select(RR.c.session_id).where(RR.c.site_id == site)
            if start is not None:
                held = held.where(RR.c.end > start)
            if end is not None:
                held = held.where(RR.c.start < end)
            q = q.where(ST.c.id.in_(held))  # a cancelled session holds no rooms, so it drops out here
        q = q.order_by(ST.c.start, ST.c.id).limit(limit)
        with read_transaction(self.engine) as conn:
            return [session_view(r._mapping) for r in conn.execute(q)]

    def link_load(self, link: str, start: int, end: int) -> dict[str, Any]:
        """Reserved load on one link as a step function per direction, with its limit."""
        with read_transaction(self.engine) as conn:
            topo = self._topology(conn)
            if link not in topo.links:
                raise NotFound(f"no link {link!r}: links are named after their child site")
            rows = list(conn.execute(select(LR.c.direction, LR.c.session_id, LR.c.start, LR.c.end, LR.c.kbps).where(
                LR.c.link_id == link, LR.c.start >= start - MAX_OCCURRENCE_S, LR.c.start < end, LR.c.end > start)))
        l = topo.links[LinkId(link)]
        out: dict[str, Any] = {"link": link, "from": l.child, "to": l.parent, "rate_kbps": l.rate_kbps,
                               "admitted_share": l.admitted_share, "limit_kbps": l.limit_kbps,
                               "start": start, "end": end}
        for d in Direction:
            steps = _steps([r for r in rows if r.direction == d.value], start, end)
            out[d.value] = {"steps": steps, "peak_kbps": max((s["kbps"] for s in steps), default=0),
                            "sessions": sorted({r.session_id for r in rows if r.direction == d.value})}
        return out

    def all_link_peaks(self, start: int, end: int) -> dict[tuple[str, str], int]:
        """Peak reserved load per (link, direction) over a window: for audits and tests."""
        with read_transaction(self.engine) as conn:
            rows = list(conn.execute(select(LR.c.link_id, LR.c.direction, LR.c.start, LR.c.end, LR.c.kbps).where(
                LR.c.start < end, LR.c.end > start)))
        groups: dict[tuple[str, str], list[Any]] = {}
        for r in rows:
            groups.setdefault((r.link_id, r.direction), []).append(r)
        return {k: max(s["kbps"] for s in _steps(v, start, end)) for k, v in groups.items()}


def _steps(rows: Iterable[Any], start: int, end: int) -> list[dict[str, int]]:
    deltas: dict[int, int] = {}
    for r in rows:
        s, e = max(r.start, start), min(r.end, end)
        if s < e:
            deltas[s] = deltas.get(s, 0) + r.kbps
            deltas[e] = deltas.get(e, 0) - r.kbps
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
    return BookingRequest(SiteId(row.host_site), tuple(SiteChoice(SiteId(x["site"]), RoomId(x["room"])) for x in sites),
                          occ, row.profile, PlanKind(row.plan))


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
    }


def session_view(row: Any) -> dict[str, Any]:
    """The stored session as the API shows it; times in the organizer's offset."""
    off = row["tz_offset_min"]
    occ = json.loads(row["occurrences_json"])
    return {
        "id": row["id"], "title": row["title"], "status": row["status"], "host_site": row["host_site"],
        "sites": json.loads(row["sites_json"]), "start": iso(row["start"], off), "end": iso(row["end"], off),
        "profile": row["profile"], "plan": row["plan"], "recurrence": row["recurrence"], "record": bool(row["record"]),
        "organizer_id": row["organizer_id"],
        "created_at": datetime.fromtimestamp(row["created_at"], timezone.utc).isoformat(),
        "occurrences": [{"start": iso(s, off), "end": iso(e, off)} for s, e in occ],
        "media_plan": json.loads(row["plan_json"]),
        "dial_in": row.get("dial_in") if hasattr(row, "get") else None,
    }
