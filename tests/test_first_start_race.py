"""Instances started together on an empty database all come up: migrations take turns.

Two `confctl db upgrade` processes (what `confctl serve` runs first) race on a fresh PostgreSQL
schema, ten times; each round both succeed and the schema is at head. Before the migration lock,
one of them died on "relation already exists" most rounds. SQLite: the same race on a new file.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from tests.conftest import empty_pg_schema, require_postgres

CONFCTL = str(Path(sys.executable).parent / "confctl")
ROUNDS = 10


def _head() -> str:
    from alembic.script import ScriptDirectory

    from rooms.store.migrate import _config
    return ScriptDirectory.from_config(_config()).get_current_head()


def _race(url: str, runners: int = 2) -> list[subprocess.CompletedProcess]:
    env = {**os.environ, "CONFCTL_DB": url}
    procs = [subprocess.Popen([CONFCTL, "db", "upgrade"], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True) for _ in range(runners)]
    out = []
    for p in procs:
        stdout, _ = p.communicate(timeout=120)
        out.append(subprocess.CompletedProcess(p.args, p.returncode, stdout))
    return out


def _version(url: str) -> str | None:
    eng = create_engine(url)
    try:
        with eng.connect() as c:
            return c.execute(text("SELECT version_num FROM alembic_version")).scalar()
    finally:
        eng.dispose()


@pytest.fixture
def pg(pg_reason):
    require_postgres(pg_reason)


def test_two_first_starts_on_one_empty_postgres_schema_both_come_up(pg):
    head = _head()
    for round in range(ROUNDS):
        with empty_pg_schema("race_") as url:
            results = _race(url)
            failed = [r.stdout[-2000:] for r in results if r.returncode != 0]
            assert not failed, f"round {round + 1}: {len(failed)} of 2 died:\n" + "\n".join(failed)
            assert _version(url) == head


def test_two_first_starts_on_one_new_sqlite_file_both_come_up(tmp_path):
    head = _head()
    for round in range(3):
        url = f"sqlite:///{tmp_path}/race{round}.db"
        results = _race(url)
        failed = [r.stdout[-2000:] for r in results if r.returncode != 0]
        assert not failed, f"round {round + 1}: {len(failed)} of 2 died:\n" + "\n".join(failed)
        assert _version(url) == head


def test_a_migration_waits_for_another_holding_the_lock_past_the_engines_lock_wait(pg):
    """The engine's lock wait (seconds, for requests) does not bound the wait for a migration."""
    import threading
    import time

    from rooms.store.engine import make_engine
    from rooms.store.migrate import MIGRATION_LOCK_KEY, upgrade
    with empty_pg_schema("race_") as url:
        holder = create_engine(url)
        try:
            release = threading.Event()

            def hold() -> None:
                with holder.begin() as c:
                    c.execute(text("SELECT pg_advisory_xact_lock(:k, hashtext(current_schema()))"), {"k": MIGRATION_LOCK_KEY})
                    held.set()
                    release.wait(30)

            held = threading.Event()
            t = threading.Thread(target=hold)
            t.start()
            assert held.wait(10)
            engine = make_engine(url, lock_wait_s=0.2)
            timer = threading.Timer(1.0, release.set)  # held five times the engine's lock wait
            timer.start()
            start = time.monotonic()
            upgrade(engine)
            assert time.monotonic() - start >= 0.9
            assert _version(url) == _head()
            t.join(10)
            engine.dispose()
        finally:
            holder.dispose()
