"""Node beats while the database is held: one waits per node, the rest are answered at once, not queued."""
from __future__ import annotations

import asyncio

from confctl.api.nodes import BEATS
from confctl.app import make_app
from confctl.config import Settings
from rooms.store.engine import make_engine, write_transaction
from rooms.store.users import Role
from rooms.topology import demo_topology_path
from tests.conftest import add_users
from tests.media.peers import until


async def test_beats_behind_a_held_database_do_not_pile_up(aiohttp_client, db_url):
    client = await aiohttp_client(make_app(Settings(topology_file=demo_topology_path(), db_url=db_url,
                                                    db_lock_wait_s=3.0)))
    token = add_users(db_url, [("node-cc", Role.NODE, None)])["node-cc"]
    h = {"Authorization": f"Bearer {token}"}
    beat = {"id": "node-cc", "url": "http://127.0.0.1:9"}
    engine = make_engine(db_url)
    try:
        with write_transaction(engine):  # another writer holds the database
            first = asyncio.ensure_future(client.post("/api/media-nodes", json=beat, headers=h))
            await until(lambda: "node-cc" in client.server.app[BEATS].nodes, what="the first beat in flight")
            more = await asyncio.gather(*(client.post("/api/media-nodes", json=beat, headers=h) for _ in range(50)))
            assert not first.done(), "the first beat should still wait for the database"
            for r in more:  # answered while the database is still held: nothing queued behind the first
                assert r.status == 503 and r.headers["Retry-After"] == "1"
                assert (await r.json())["error"] == "beat_in_flight"
        await first
        ok = await client.post("/api/media-nodes", json=beat, headers=h)
        assert ok.status == 200, await ok.text()
    finally:
        engine.dispose()
