"""Per-minute quality aggregates of every leg, kept past the in-memory 15-minute history."""
from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, delete, select

from rooms.store.engine import read_transaction, write_transaction
from rooms.store.tables import QualityMinuteRow

QM = QualityMinuteRow.__table__


class QualityMinutes:
    def __init__(self, engine: Engine):
        self.engine = engine

    def write(self, rows: list[dict[str, Any]]) -> None:
        """Insert finished minutes; a minute already stored (a restart mid-minute) is replaced."""
        if not rows:
            return
        with write_transaction(self.engine, lock_key=None) as conn:
            for r in rows:
                conn.execute(delete(QM).where(QM.c.session_id == r["session_id"], QM.c.node == r["node"],
                                              QM.c.site == r["site"], QM.c.minute == r["minute"]))
            conn.execute(QM.insert(), rows)

    def list(self, session: str | None = None, site: str | None = None, since: int | None = None,
             limit: int = 5000) -> list[dict[str, Any]]:
        q = select(QM).order_by(QM.c.minute, QM.c.site).limit(limit)
        if session is not None:
            q = q.where(QM.c.session_id == session)
        if site is not None:
            q = q.where(QM.c.site == site)
        if since is not None:
            q = q.where(QM.c.minute >= since)
        with read_transaction(self.engine) as conn:
            return [dict(r._mapping) for r in conn.execute(q)]

    def purge(self, before: int) -> int:
        with write_transaction(self.engine, lock_key=None) as conn:
            return conn.execute(delete(QM).where(QM.c.minute < before)).rowcount
