"""A control plane's node forwarding three aiortc sites over loopback, reporting what it did as JSON on
stdout, its log on stderr. tests/media/test_native_unavailable.py runs it in an interpreter where
media.native cannot be imported:

    python -c "import sys; sys.modules['media.native'] = None; from tests.media.python_path_node import main; main(DIR)"
"""
from __future__ import annotations

import asyncio
import json
import logging
import sys
from datetime import datetime
from typing import Any

from aiohttp.test_utils import TestClient, TestServer


async def _run(directory: str) -> dict[str, Any]:
    from confctl.app import make_app
    from confctl.config import Settings
    from confctl.keys import MEDIA_NODE
    from rooms.store.users import Role
    from rooms.topology import demo_topology_path
    from tests.conftest import add_users
    from tests.media.peers import SitePeer, until
    from tests.media.test_signalling import TZ, next_of, token_of

    url = f"sqlite:///{directory}/node.db"
    client = TestClient(TestServer(make_app(Settings(topology_file=demo_topology_path(), db_url=url))))
    await client.start_server()
    peers: dict[str, SitePeer] = {}
    sockets: dict[str, Any] = {}
    try:
        olga = add_users(url, [("olga", Role.ORGANIZER, None)])["olga"]
        start = datetime.now(TZ)
        r = await client.post("/api/sessions", headers={"Authorization": f"Bearer {olga}"}, json={
            "title": "Python path", "host_site": "jl", "sites": ["cc", "cc-nongan"], "start": start.isoformat(),
            "end": start.replace(hour=23, minute=59).isoformat(), "profile": "sd"})
        assert r.status == 201, await r.text()
        session = await r.json()
        for site in ("jl", "cc", "cc-nongan"):
            ws = sockets[site] = await client.ws_connect("/ws")
            await ws.send_json({"type": "join", "token": token_of(session, site)})
            assert (await next_of(ws, "joined"))["site"] == site
            peers[site] = SitePeer(60 + 60 * len(peers))
            await ws.send_json({"type": "offer", "sdp": await peers[site].offer()})
            await peers[site].accept((await next_of(ws, "answer"))["sdp"])
        await until(lambda: all(len(p.frames) == 2 and min(p.frames.values()) >= 10 for p in peers.values()),
                    timeout=30, what="program frames at every site")
        legs = client.app[MEDIA_NODE].session_legs(session["id"])
        outputs = [o.rtp for leg in legs.values() for o in [*leg.video_out, leg.audio_out]]
        health = [await (await client.get("/api/health")).json() for _ in range(2)]
        return {
            "native": repr(sys.modules.get("media.native", "not imported")),
            "frames": {site: dict(p.frames) for site, p in peers.items()},
            "outputs": [(type(o).__module__ + "." + type(o).__qualname__, o.packets if o is not None else 0)
                        for o in outputs],
            "demuxes": sum(getattr(t.receiver.transport, "_confctl_demux", None) is not None
                           for leg in legs.values() for t in leg.pc.getTransceivers()),
            "health": health,
        }
    finally:
        for ws in sockets.values():
            await ws.close()
        for p in peers.values():
            await p.close()
        await client.close()


def main(directory: str) -> None:
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s")
    print(json.dumps(asyncio.run(_run(directory)), default=str))
