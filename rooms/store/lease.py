"""The work lease: which control-plane instance, of several sharing a database, does the work that must
happen once (alarms and webhooks, call records, per-minute aggregates, node watch and recording recovery,
retention, the dry-run guard).

PostgreSQL: a session-level advisory lock held on a connection of its own. A holder that dies, even by
SIGKILL, closes that connection and PostgreSQL releases the lock at once, so a survivor polling once a
second takes it within about a second; no expiry to tune, no clock to trust. A holder that loses its
connection (the database restarted) knows it at its next check and stops the work before another takes it.
SQLite (one host): an exclusive flock on a file beside the database; the kernel releases it when its
holder dies. An in-memory database has one process by definition.
"""
from __future__ import annotations

import fcntl
import logging
import os
from typing import Any

from sqlalchemy import Engine, create_engine, text
from sqlalchemy.pool import NullPool

log = logging.getLogger("rooms.store.lease")
WORK_LEASE_KEY = 0x776F726B  # "work"


class Lease:
    def __init__(self, engine: Engine, key: int = WORK_LEASE_KEY):
        self.engine, self.key = engine, key
        self._conn: Any = None  # PostgreSQL: the connection holding the lock
        self._file: Any = None  # SQLite: the locked file
        self._engine: Engine | None = None
        self.held = False

    def try_acquire(self) -> bool:
        """Takes the lease if nobody holds it; True if this process holds it now."""
        if self.held:
            return self.check()
        name = self.engine.dialect.name
        if name == "postgresql":
            conn = self._lease_engine().connect()
            try:
                got = bool(conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": self.key}).scalar())
                conn.commit()
            except Exception:
                conn.invalidate()  # never back to a pool holding the lock
                conn.close()
                raise
            if got:
                self._conn = conn
            else:
                conn.close()
            self.held = got
            return got
        path = self.engine.url.database
        if name != "sqlite" or not path or path == ":memory:":
            self.held = True
            return True
        f = open(f"{path}.lease", "a+")
        try:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.close()
            return False
        f.seek(0)
        f.truncate()
        f.write(f"{os.getpid()}\n")
        f.flush()
        self._file, self.held = f, True
        return True

    def _lease_engine(self) -> Engine:
        """Connections of their own, outside the pool, that notice a dead peer within seconds: a half-open
        socket (the database host gone) must not let this instance believe it still holds the lease for
        minutes while another instance takes it on the restarted server."""
        if self._engine is None:
            self._engine = create_engine(self.engine.url, poolclass=NullPool, connect_args={
                "keepalives": 1, "keepalives_idle": 2, "keepalives_interval": 1, "keepalives_count": 2,
                "tcp_user_timeout": 4000, "connect_timeout": 3,
                "options": _with_timeout(self.engine.url.query.get("options"))})
        return self._engine

    def check(self) -> bool:
        """Still held? (PostgreSQL: its connection still answers; lost, the lock went with it.)"""
        if not self.held:
            return False
        if self._conn is not None:
            try:
                self._conn.execute(text("SELECT 1"))
                self._conn.commit()
            except Exception as exc:  # the database restarted or the network dropped: the lock is gone
                log.warning("work lease lost with its connection: %s", str(exc).splitlines()[0])
                self._drop()
                return False
        return True

    def release(self) -> None:
        if self._conn is not None:
            try:
                self._conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": self.key})
                self._conn.commit()
            except Exception:
                pass  # closing the connection releases it anyway
        self._drop()

    def _drop(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            except Exception:
                pass
        if self._file is not None:
            self._file.close()  # closing releases the flock
        self._conn = self._file = None
        self.held = False


def _with_timeout(options: object) -> str:
    """The URL's own `options` (a schema's search_path, say) and a statement timeout for the lease's checks."""
    given = options if isinstance(options, str) else " ".join(options) if isinstance(options, tuple) else ""
    return f"{given} -c statement_timeout=3000".strip()
