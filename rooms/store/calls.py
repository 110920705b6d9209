"""Call records of SIP legs."""
from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, insert, select, update

from rooms.store.engine import read_transaction, write_transaction
from rooms.store.tables import CallRecordRow

CR = CallRecordRow.__table__


class CallRecords:
    """One row per SIP leg, inserted and then updated by id: nothing is read first, so on PostgreSQL
    these writes take no advisory lock and never wait for a booking being admitted."""

    def __init__(self, engine: Engine):
        self.engine = engine

    def start(self, call_id: str, direction: str, caller: str, now: int, account: str | None = None,
              site: str | None = None, session: str | None = None) -> int:
        with write_transaction(self.engine, lock_key=None) as conn:
            return int(conn.execute(insert(CR).values(call_id=call_id, direction=direction, caller=caller,
                                                      account=account, site_id=site, session_id=session,
                                                      started_at=now)).inserted_primary_key[0])

    def update(self, record_id: int, **fields: Any) -> None:
        with write_transaction(self.engine, lock_key=None) as conn:
            conn.execute(update(CR).where(CR.c.id == record_id).values(**fields))

    def list(self, session: str | None = None, limit: int = 500) -> list[dict[str, Any]]:
        q = select(CR).order_by(CR.c.id.desc()).limit(limit)
        if session is not None:
            q = q.where(CR.c.session_id == session)
        with read_transaction(self.engine) as conn:
            return [dict(r._mapping) for r in conn.execute(q)]
