"""The booking path's statements, run on the DB-API cursor inside the SQLAlchemy transaction.

Measured (scripts/bench/admission.py): SQLAlchemy Core adds about 30 µs per
statement (compiled-cache lookup, parameter processing, result wrapping), and
a booking runs four, a quarter of what it costs besides the commit. These
four are plain SQL that SQLite and PostgreSQL both accept; only the
placeholder differs. Everything else in the store stays on SQLAlchemy Core.
"""
from __future__ import annotations

from typing import Any, Sequence

from sqlalchemy import Connection

from rooms.store.tables import SessionRow

SESSION_COLUMNS = tuple(c.name for c in SessionRow.__table__.columns)

_VERSION = "SELECT version FROM topology WHERE id = ?"
_WINDOW = ('SELECT session_id, rev, start, "end" FROM session_occurrence '
           'WHERE start >= ? AND start < ? AND "end" > ? AND session_id <> ? ORDER BY start')
# A taken dial-in number makes the insert a no-op (no row returned) and the caller draws another.
_INSERT_SESSION = ("INSERT INTO session ({}) VALUES ({}) ON CONFLICT (dial_in) DO NOTHING RETURNING id"
                   .format(", ".join(f'"{c}"' for c in SESSION_COLUMNS), ", ".join("?" for _ in SESSION_COLUMNS)))
_INSERT_OCCURRENCE = 'INSERT INTO session_occurrence (start, session_id, "end", rev) VALUES (?, ?, ?, ?)'


class HotPath:
    def __init__(self, dialect: str):
        mark = "?" if dialect == "sqlite" else "%s"
        self._version, self._window, self._insert_session, self._insert_occurrence = (
            sql.replace("?", mark) for sql in (_VERSION, _WINDOW, _INSERT_SESSION, _INSERT_OCCURRENCE))

    @staticmethod
    def _cursor(conn: Connection) -> Any:
        return conn.connection.cursor()  # the pooled DB-API connection, in the transaction already begun

    def topology_version(self, conn: Connection) -> int | None:
        cur = self._cursor(conn)
        cur.execute(self._version, (1,))
        row = cur.fetchone()
        return None if row is None else row[0]

    def window(self, conn: Connection, lo: int, hi: int, start: int, exclude: str) -> list[tuple[str, int, int, int]]:
        """(session, revision, start, end) of every occurrence overlapping [start, hi), in start order."""
        cur = self._cursor(conn)
        cur.execute(self._window, (lo, hi, start, exclude))
        return cur.fetchall()

    def insert_session(self, conn: Connection, row: dict[str, Any]) -> bool:
        """False when the row's dial-in number is taken (nothing written)."""
        cur = self._cursor(conn)
        cur.execute(self._insert_session, tuple(row[c] for c in SESSION_COLUMNS))
        return cur.fetchone() is not None

    def insert_occurrences(self, conn: Connection, rows: Sequence[tuple[int, str, int, int]]) -> None:
        self._cursor(conn).executemany(self._insert_occurrence, rows)
