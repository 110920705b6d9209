"""Call records of every leg: phones (written by the SIP gateway as the call goes), browsers and
node-to-node legs (written by the quality pipeline when the leg has ended, with its quality)."""
from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from rooms.store.engine import read_transaction, write_transaction
from rooms.store.tables import CallRecordRow

CR = CallRecordRow.__table__
KINDS = ("sip", "webrtc", "trunk")


class CallRecords:
    """One row per leg, inserted and then updated by id: nothing is read first, so on PostgreSQL
    these writes take no advisory lock and never wait for a booking being admitted."""

    def __init__(self, engine: Engine):
        self.engine = engine

    def start(self, call_id: str, direction: str, caller: str, now: int, account: str | None = None,
              site: str | None = None, session: str | None = None) -> int:
        with write_transaction(self.engine, lock_key=None) as conn:
            return int(conn.execute(insert(CR).values(call_id=call_id, direction=direction, caller=caller,
                                                      account=account, site_id=site, session_id=session,
                                                      started_at=now, kind="sip")).inserted_primary_key[0])

    def update(self, record_id: int, **fields: Any) -> None:
        with write_transaction(self.engine, lock_key=None) as conn:
            conn.execute(update(CR).where(CR.c.id == record_id).values(**fields))

    def ended_leg(self, fields: dict[str, Any]) -> bool:
        """A browser or node-to-node leg that ended; False if its leg_id is recorded already
        (a node repeats its recent ends to every control plane that asks)."""
        try:
            with write_transaction(self.engine, lock_key=None) as conn:
                conn.execute(insert(CR).values(**fields))
            return True
        except IntegrityError:
            return False

    def phone_quality(self, session: str, site: str, quality: dict[str, Any]) -> None:
        """The quality of a phone leg that ended, onto the gateway's latest record of that site's call."""
        with write_transaction(self.engine, lock_key=None) as conn:
            row = conn.execute(select(CR.c.id).where(CR.c.session_id == session, CR.c.site_id == site,
                                                     CR.c.kind == "sip").order_by(CR.c.id.desc()).limit(1)).first()
            if row is not None:
                conn.execute(update(CR).where(CR.c.id == row.id).values(**quality))

    def list(self, session: str | None = None, limit: int = 500, *, site: str | None = None,
             kind: str | None = None, since: int | None = None, until: int | None = None) -> list[dict[str, Any]]:
        q = select(CR).order_by(CR.c.id.desc()).limit(limit)
        if session is not None:
            q = q.where(CR.c.session_id == session)
        if site is not None:
            q = q.where(CR.c.site_id == site)
        if kind is not None:
            q = q.where(CR.c.kind == kind)
        if since is not None:
            q = q.where(CR.c.started_at >= since)
        if until is not None:
            q = q.where(CR.c.started_at < until)
        with read_transaction(self.engine) as conn:
            return [dict(r._mapping) for r in conn.execute(q)]

    def purge(self, before: int) -> int:
        with write_transaction(self.engine, lock_key=None) as conn:
            return conn.execute(delete(CR).where(CR.c.started_at < before, CR.c.ended_at.is_not(None))).rowcount
