"""A long write holds the database: writes get 503 + Retry-After in bounded time, auth and reads go on."""
from __future__ import annotations

import asyncio

import pytest

from confctl.app import make_app
from confctl.config import Settings
from rooms.store.engine import make_engine, write_transaction
from rooms.store.users import Role
from rooms.topology import demo_topology_path
from tests.conftest import add_users, booking


@pytest.fixture
async def slow_db_api(aiohttp_client, db_url):
    settings = Settings(topology_file=demo_topology_path(), db_url=db_url, db_threads=2, db_lock_wait_s=1.0)
    client = await aiohttp_client(make_app(settings))
    tokens = add_users(db_url, [("olga", Role.ORGANIZER, None), ("opal", Role.OPERATOR, None)])
    client.h = lambda who: {"Authorization": f"Bearer {tokens[who]}"}
    yield client


async def test_writes_behind_a_held_lock_get_503_while_reads_answer(slow_db_api, db_url):
    api = slow_db_api
    engine = make_engine(db_url)
    try:
        with write_transaction(engine):  # another writer (a topology re-admission, a SIP batch) holds the lock
            # More bookings than write threads: the write pool is full and queued.
            posts = [asyncio.ensure_future(api.post("/api/sessions", json=booking(["jl", "sp"], hour=8 + i),
                                                    headers=api.h("olga"))) for i in range(4)]
            await asyncio.sleep(0)  # let them reach the write threads
            me = await api.get("/api/me", headers=api.h("opal"))
            listed = await api.get("/api/sessions", headers=api.h("opal"))
            assert me.status == 200 and listed.status == 200
            assert not all(p.done() for p in posts), "the reads should not have waited for the writes"
            answers = await asyncio.gather(*posts)
        for r in answers:
            assert r.status == 503, await r.text()
            assert r.headers["Retry-After"] == "2" and (await r.json())["error"] == "database_busy"
        # Once the lock is released, booking works again; nothing half-stored before.
        assert (await (await api.get("/api/sessions", headers=api.h("opal"))).json())["sessions"] == []
        ok = await api.post("/api/sessions", json=booking(["jl", "sp"]), headers=api.h("olga"))
        assert ok.status == 201
    finally:
        engine.dispose()
