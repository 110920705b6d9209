"""Schema migrations with Alembic, run against an engine from make_engine.

One migration at a time per database schema, whoever runs it: instances started together on an
empty database (two `confctl serve`, a `confctl db upgrade` beside a running one) would otherwise
both find no tables and both create them, and one would die on "already exists". The first takes
the lock and migrates; the others wait for it, then find the schema up to date.

- PostgreSQL: a transaction-scoped advisory lock (MIGRATION_LOCK_KEY, and the schema's name hashed,
  so schemas sharing a database do not queue behind each other), held until the migration commits.
  Its wait is bounded by `wait_s`, not by the engine's short lock wait for requests.
- SQLite: the migration's transaction begins IMMEDIATE, taking the database's one write lock before
  it reads the schema version; a migration still holding it past the engine's lock wait is waited
  for again, up to `wait_s`.
"""
from __future__ import annotations

import sqlite3
import time
from pathlib import Path
from typing import Callable

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, Engine, text
from sqlalchemy.exc import OperationalError

MIGRATIONS = Path(__file__).parent / "migrations"
MIGRATION_LOCK_KEY = 0x6D696772  # "migr"; the booking locks (rooms.store.engine) are other keys
MIGRATION_WAIT_S = 600.0  # a migration of a large database can take minutes; a waiting instance waits


def _config() -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    return cfg


def upgrade(engine: Engine, revision: str = "head", wait_s: float = MIGRATION_WAIT_S) -> None:
    _migrate(engine, lambda cfg: command.upgrade(cfg, revision), wait_s)


def downgrade(engine: Engine, revision: str, wait_s: float = MIGRATION_WAIT_S) -> None:
    _migrate(engine, lambda cfg: command.downgrade(cfg, revision), wait_s)


def _migrate(engine: Engine, run: Callable[[Config], None], wait_s: float) -> None:
    deadline = time.monotonic() + wait_s
    while True:
        try:
            with engine.connect() as conn:
                conn = conn.execution_options(write_lock=True)  # SQLite: BEGIN IMMEDIATE
                with conn.begin():
                    if engine.dialect.name == "postgresql":
                        _take_migration_lock(conn, wait_s)
                    cfg = _config()
                    cfg.attributes["connection"] = conn
                    run(cfg)
            return
        except (OperationalError, sqlite3.OperationalError) as exc:
            # SQLite's BEGIN IMMEDIATE gave up after the engine's lock wait: another migration holds it
            locked = engine.dialect.name == "sqlite" and "locked" in str(exc).lower()
            if not locked or time.monotonic() >= deadline:
                raise
            time.sleep(0.05)


def _take_migration_lock(conn: Connection, wait_s: float) -> None:
    """Wait (up to wait_s) for this schema's migration lock; it is released when the transaction ends.
    The engine's lock_timeout (seconds, for requests) is lifted for this one wait, then put back."""
    engine_wait = conn.execute(text("SELECT current_setting('lock_timeout')")).scalar_one()
    conn.execute(text("SELECT set_config('lock_timeout', :ms, true)"), {"ms": str(int(wait_s * 1000))})
    conn.execute(text("SELECT pg_advisory_xact_lock(:key, hashtext(coalesce(current_schema(), '')))"),
                 {"key": MIGRATION_LOCK_KEY})
    conn.execute(text("SELECT set_config('lock_timeout', :wait, true)"), {"wait": engine_wait})


def autogenerate(engine: Engine, message: str) -> None:
    """Developer helper: write a new revision from the difference to the models."""
    cfg = _config()
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.revision(cfg, message=message, autogenerate=True)
