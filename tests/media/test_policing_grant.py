"""The control plane tells the node what each site's camera slot was reserved for: a site joined
through /ws as the join page does has its camera policed at its session profile's video rate."""
from __future__ import annotations

from datetime import datetime

import pytest

from confctl.app import make_app
from confctl.config import Settings
from confctl.keys import MEDIA_NODE
from rooms.store.users import Role
from rooms.topology import demo_topology_path
from tests.conftest import add_users
from rooms.ids import SessionId, SiteId
from rooms.topology import demo_topology
from tests.media.peers import SitePeer, until
from tests.media.test_signalling import TZ, book, client, next_of, token_of  # noqa: F401  (client: fixture)


@pytest.fixture
async def policing(aiohttp_client, tmp_path):
    url = f"sqlite:///{tmp_path}/police.db"
    c = await aiohttp_client(make_app(Settings(topology_file=demo_topology_path(), db_url=url, police_sources=True)))
    c.h = {"Authorization": f"Bearer {add_users(url, [('olga', Role.ORGANIZER, None)])['olga']}"}
    yield c


async def _joined_camera(client, s: dict, ws, peer: SitePeer):
    """Nong'an joined through /ws as the join page does: its room and its camera's source at the node."""
    await ws.send_json({"type": "join", "token": token_of(s, "cc-nongan")})
    await next_of(ws, "joined")
    await ws.send_json({"type": "offer", "sdp": await peer.offer()})
    await peer.accept((await next_of(ws, "answer"))["sdp"])
    node = client.app[MEDIA_NODE]
    room = await until(lambda: node.room_of(SessionId(s["id"]), SiteId("cc-nongan")), what="the site's room")
    return room, await until(lambda: room.legs["cc-nongan"].sources.get("video"), what="the site's camera")


async def test_a_joined_sites_camera_is_policed_at_its_profiles_video_rate(policing):
    client = policing
    s = await book(client, ["jl", "cc-nongan"], datetime.now(TZ))  # profile "sd"
    peer = SitePeer(80)
    ws = await client.ws_connect("/ws")
    try:
        room, source = await _joined_camera(client, s, ws, peer)
        sd = demo_topology().profile("sd")
        assert sd is not None and source.policer is not None
        assert source.policer.reserved_kbps == sd.video_kbps
        assert room.legs["cc-nongan"].sources["audio"].policer is None  # audio is never policed
    finally:
        await ws.close()
        await peer.close()


async def test_without_police_sources_a_camera_keeps_the_c_path_unpoliced(client):  # noqa: F811
    s = await book(client, ["jl", "cc-nongan"], datetime.now(TZ))
    peer = SitePeer(80)
    ws = await client.ws_connect("/ws")
    try:
        _, source = await _joined_camera(client, s, ws, peer)
        assert source.policer is None
    finally:
        await ws.close()
        await peer.close()
