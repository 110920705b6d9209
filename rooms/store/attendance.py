"""Who joined a session's occurrence, as the database keeps it: so a control plane that took over the
work lease knows who joined before it did, and a site that joined and left is not taken for absent.

Two records say a site joined: a call record (a browser leg that ended, written with its join time;
a phone call that was answered) and a stored quality minute (a leg live during that minute). A leg
counts for an occurrence when its time there overlaps the occurrence.
"""
from __future__ import annotations

from sqlalchemy import Engine, select

from rooms.store.engine import read_transaction
from rooms.store.tables import CallRecordRow, QualityMinuteRow

CR = CallRecordRow.__table__
QM = QualityMinuteRow.__table__


class Attendance:
    def __init__(self, engine: Engine):
        self.engine = engine

    def joined(self, occurrences: dict[str, tuple[float, float]]) -> set[tuple[str, str]]:
        """(session, site) of every site with a leg in the given occurrences ({session: (start, end)})."""
        if not occurrences:
            return set()
        ids, first = list(occurrences), min(start for start, _ in occurrences.values())
        calls = (select(CR.c.session_id, CR.c.site_id, CR.c.answered_at, CR.c.ended_at)
                 .where(CR.c.session_id.in_(ids), CR.c.kind != "trunk", CR.c.site_id.is_not(None),
                        CR.c.answered_at.is_not(None), (CR.c.ended_at.is_(None)) | (CR.c.ended_at >= int(first))))
        minutes = (select(QM.c.session_id, QM.c.site, QM.c.minute).distinct()
                   .where(QM.c.session_id.in_(ids), QM.c.kind != "trunk", QM.c.minute + 60 > int(first)))
        out = set()
        with read_transaction(self.engine) as conn:
            for session, site, answered, ended in conn.execute(calls):
                start, end = occurrences[session]
                if answered < end and (ended is None or ended >= start):
                    out.add((session, site))
            for session, site, minute in conn.execute(minutes):
                start, end = occurrences[session]
                if minute + 60 > start and minute < end:
                    out.add((session, site))
        return out
