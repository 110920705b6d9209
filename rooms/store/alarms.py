"""Alarms as stored: one row from raised to cleared, acknowledged by an operator."""
from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, delete, insert, select, update

from rooms.store.engine import read_transaction, write_transaction
from rooms.store.tables import AlarmRow

AT = AlarmRow.__table__


class AlarmStore:
    def __init__(self, engine: Engine):
        self.engine = engine

    def raised(self, fields: dict[str, Any], now: int) -> int:
        with write_transaction(self.engine, lock_key=None) as conn:
            return int(conn.execute(insert(AT).values(**fields, raised_at=now)).inserted_primary_key[0])

    def cleared(self, alarm_id: int, now: int) -> None:
        with write_transaction(self.engine, lock_key=None) as conn:
            conn.execute(update(AT).where(AT.c.id == alarm_id).values(cleared_at=now))

    def clear_all_open(self, now: int) -> int:
        """At start: alarms a previous run left open are cleared (their state was in its memory)."""
        with write_transaction(self.engine, lock_key=None) as conn:
            return conn.execute(update(AT).where(AT.c.cleared_at.is_(None)).values(cleared_at=now)).rowcount

    def acknowledge(self, alarm_id: int, by: str, now: int) -> dict[str, Any] | None:
        with write_transaction(self.engine, lock_key=None) as conn:
            conn.execute(update(AT).where(AT.c.id == alarm_id, AT.c.acked_at.is_(None)).values(acked_by=by, acked_at=now))
            row = conn.execute(select(AT).where(AT.c.id == alarm_id)).first()
        return dict(row._mapping) if row else None

    def list(self, open_only: bool = False, since: int | None = None, limit: int = 200) -> list[dict[str, Any]]:
        q = select(AT).order_by(AT.c.id.desc()).limit(limit)
        if open_only:
            q = q.where(AT.c.cleared_at.is_(None))
        if since is not None:
            q = q.where(AT.c.raised_at >= since)
        with read_transaction(self.engine) as conn:
            return [dict(r._mapping) for r in conn.execute(q)]

    def recent(self, since: int, limit: int = 100) -> list[dict[str, Any]]:
        """Alarms open now or raised or cleared at or after `since`, newest first: a page's history on opening."""
        q = (select(AT).where(AT.c.cleared_at.is_(None) | (AT.c.raised_at >= since) | (AT.c.cleared_at >= since))
             .order_by(AT.c.id.desc()).limit(limit))
        with read_transaction(self.engine) as conn:
            return [dict(r._mapping) for r in conn.execute(q)]

    def purge(self, before: int) -> int:
        with write_transaction(self.engine, lock_key=None) as conn:
            return conn.execute(delete(AT).where(AT.c.raised_at < before, AT.c.cleared_at.is_not(None))).rowcount
