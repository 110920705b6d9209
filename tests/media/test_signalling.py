"""Sites join a booked session through /ws with their join URLs; bad signalling gets clear errors."""
from __future__ import annotations

import asyncio
from datetime import datetime, timedelta, timezone
from urllib.parse import parse_qs, urlparse

import pytest

from confctl.app import make_app
from confctl.config import Settings
from rooms.topology import demo_topology_path
from confctl.join_tokens import mint
from confctl.keys import MEDIA_NODE
from rooms.store.users import Role
from media.contracts.browser import Join, Offer
from tests.media.peers import SitePeer, until
from tests.conftest import add_users
from tests.ws_contract import described

TZ = timezone(timedelta(hours=8))


@pytest.fixture
async def client(aiohttp_client, tmp_path):
    url = f"sqlite:///{tmp_path}/sig.db"
    app = make_app(Settings(topology_file=demo_topology_path(), db_url=url))
    c = await aiohttp_client(app)
    tokens = add_users(url, [("olga", Role.ORGANIZER, None), ("opal", Role.OPERATOR, None)])
    c.h = {"Authorization": f"Bearer {tokens['olga']}"}
    c.operator = tokens["opal"]
    c.db_url = url
    yield c


async def book(client, sites, start: datetime, hours: float = 1) -> dict:
    r = await client.post("/api/sessions", headers=client.h, json={
        "title": "Live drill", "host_site": sites[0], "sites": sites[1:], "start": start.isoformat(),
        "end": (start + timedelta(hours=hours)).isoformat(), "profile": "sd"})
    assert r.status == 201, await r.text()
    return await r.json()


def token_of(session: dict, site: str) -> str:
    return parse_qs(urlparse(session["join_urls"][site]).query)["token"][0]


async def next_of(ws, kind: str, timeout: float = 10) -> dict:
    """The next message of `kind` (or an error); every message on the way must be one the /ws schema describes."""
    while True:
        msg = await asyncio.wait_for(ws.receive_json(), timeout)
        assert not described("ToSite", msg), (msg, described("ToSite", msg))
        if msg["type"] in (kind, "error"):
            return msg


async def test_three_sites_join_by_their_urls_and_receive_the_program(client):
    s = await book(client, ["jl", "cc", "cc-nongan"], datetime.now(TZ))
    assert set(s["join_urls"]) == {"jl", "cc", "cc-nongan"}
    peers, sockets = {}, {}
    try:
        for site in ("jl", "cc", "cc-nongan"):
            ws = sockets[site] = await client.ws_connect("/ws")
            await ws.send_str(Join(token=token_of(s, site)).model_dump_json())
            assert (await next_of(ws, "joined"))["site"] == site
            peers[site] = SitePeer(60 + 60 * len(peers))
            await ws.send_str(Offer(sdp=await peers[site].offer()).model_dump_json())
            answer = await next_of(ws, "answer")
            await peers[site].accept(answer["sdp"])
        await until(lambda: all(len(p.frames) == 2 and min(p.frames.values()) >= 5 for p in peers.values()),
                    timeout=30, what="program at every site")
        program = await next_of(sockets["cc-nongan"], "program")
        assert program["video"][0] == "jl"  # the host first
        legs = client.app[MEDIA_NODE].session_legs(s["id"])  # on the nodes their plan names
        assert all(t.decoder_inputs == 0 for leg in legs.values() for t in leg.taps)

        # Operators read every leg's figures; bitrates come from byte deltas between two reads.
        assert (await client.get("/api/live", headers=client.h)).status == 403  # an organizer
        op = {"Authorization": f"Bearer {client.operator}"}
        await client.get("/api/live", headers=op)
        before = sum(l.sources["video"].bytes for l in legs.values())
        await until(lambda: sum(l.sources["video"].bytes for l in legs.values()) > before + 20_000)
        live = await (await client.get("/api/live", headers=op)).json()
        (entry,) = [x for x in live["sessions"] if x["session"] == s["id"]]
        legs = {l["site"]: l for l in entry["legs"]}
        assert set(legs) == {"jl", "cc", "cc-nongan"}
        for leg in legs.values():
            assert leg["bitrate_in_kbps"] > 0 and leg["bitrate_out_kbps"] > 0 and leg["frames_forwarded"] > 0
            assert leg["resolution"] == "320x240" and leg["packets_lost"] >= 0 and "rtt_ms" in leg
            # jitter per medium, each judged against its own tolerance (monitoring/alarm_rules.py)
            assert "video" in leg["jitter_ms_by_kind"] and max(leg["jitter_ms_by_kind"].values()) == leg["jitter_ms"]

        # A site whose socket dies is cleaned up: its leg and peer connection close.
        leg = client.app[MEDIA_NODE].session_legs(s["id"])["cc"]
        await sockets.pop("cc").close()
        await until(lambda: "cc" not in client.app[MEDIA_NODE].session_legs(s["id"]) and leg.pc.connectionState == "closed",
                    what="leg of the closed socket removed and its peer connection closed")
        assert leg.transitions[-1] == ("connected", "closed")
    finally:
        for ws in sockets.values():
            await ws.close()
        for p in peers.values():
            await p.close()
    await until(lambda: not client.app[MEDIA_NODE].holds(s["id"]), what="empty room released")


async def test_bad_signalling_gets_errors_and_the_connection_keeps_serving(client):
    s = await book(client, ["jl", "sp"], datetime.now(TZ))
    later = await book(client, ["jl", "ly"], datetime.now(TZ) + timedelta(days=2))
    ws = await client.ws_connect("/ws")
    await ws.send_str("{not json")
    assert (await next_of(ws, "error"))["code"] == "invalid_json"
    await ws.send_json(["join"])
    assert (await next_of(ws, "error"))["code"] == "invalid_message"
    await ws.send_json({"type": "offer", "sdp": "v=0"})
    assert (await next_of(ws, "error"))["code"] == "not_joined"
    await ws.send_json({"type": "join", "token": "forged.token"})
    assert (await next_of(ws, "error"))["code"] == "invalid_token"
    await ws.send_json({"type": "join", "token": mint(b"another system", s["id"], "jl")})
    assert (await next_of(ws, "error"))["code"] == "invalid_token"
    await ws.send_json({"type": "join", "token": token_of(later, "ly")})
    assert (await next_of(ws, "error"))["code"] == "outside_window"
    await ws.send_json({"type": "dance"})
    assert (await next_of(ws, "error"))["code"] == "unknown_type"
    # What the contract refuses is answered with the code a check by hand gave before it.
    await ws.send_json({"type": "join", "token": 42})
    assert (await next_of(ws, "error"))["code"] == "invalid_token"
    await ws.send_json({"type": "join", "token": token_of(s, "sp"), "mode": "rehearsal"})
    assert (await next_of(ws, "error"))["detail"] == "mode is meeting (default) or echo"
    await ws.send_json({"type": "join", "token": token_of(s, "sp"), "room": "jl"})
    assert (await next_of(ws, "error"))["detail"] == "a join message has no field 'room'"
    await ws.send_bytes(b"{}")
    assert (await next_of(ws, "error"))["code"] == "invalid_message"
    await ws.send_json({"type": "join", "token": token_of(s, "sp")})
    assert (await next_of(ws, "joined"))["site"] == "sp"
    await ws.send_json({"type": "offer", "sdp": "garbage"})
    assert (await next_of(ws, "error"))["code"] == "invalid_sdp"
    assert client.app[MEDIA_NODE].session_legs(s["id"]) == {}
    await ws.close()


async def test_cancelled_session_and_removed_site_refuse_legs(client):
    s = await book(client, ["jl", "sp", "ly"], datetime.now(TZ))
    r = await client.patch(f"/api/sessions/{s['id']}", headers=client.h, json={"sites": ["sp"]})
    assert r.status == 200
    ws = await client.ws_connect("/ws")
    await ws.send_json({"type": "join", "token": token_of(s, "ly")})
    assert (await next_of(ws, "error"))["code"] == "site_not_in_session"
    await client.delete(f"/api/sessions/{s['id']}", headers=client.h)
    await ws.send_json({"type": "join", "token": token_of(s, "sp")})
    assert (await next_of(ws, "error"))["code"] == "session_cancelled"
    await ws.close()


async def test_client_vanishing_mid_offer_leaves_no_leg(client):
    s = await book(client, ["jl", "sp"], datetime.now(TZ))
    ws = await client.ws_connect("/ws")
    await ws.send_json({"type": "join", "token": token_of(s, "jl")})
    await next_of(ws, "joined")
    peer = SitePeer(30)
    await ws.send_json({"type": "offer", "sdp": await peer.offer()})
    await ws.close()  # gone before reading the answer
    node = client.app[MEDIA_NODE]
    await until(lambda: s["id"] not in node.rooms, what="room released after the client vanished")
    await peer.close()


async def test_self_test_echo_returns_the_sites_own_media_before_the_meeting(client):
    s = await book(client, ["jl", "sp"], datetime.now(TZ) + timedelta(hours=3))  # not started yet
    ws = await client.ws_connect("/ws")
    await ws.send_json({"type": "join", "token": token_of(s, "sp")})
    assert (await next_of(ws, "joined"))["code"] == "outside_window"  # the meeting itself is not open
    await ws.send_json({"type": "join", "token": token_of(s, "sp"), "mode": "echo"})
    assert (await next_of(ws, "joined"))["mode"] == "echo"
    peer = SitePeer(170)
    await ws.send_json({"type": "offer", "sdp": await peer.offer()})
    await peer.accept((await next_of(ws, "answer"))["sdp"])
    try:
        await until(lambda: peer.frames.get(0, 0) >= 10, what="own video back through the node")
        room = client.app[MEDIA_NODE].rooms[f"{s['id']}/echo/sp"]
        assert room.legs["sp"].program.video == ("sp", None)
        assert not client.app[MEDIA_NODE].holds(s["id"])  # the meeting room is untouched
    finally:
        await ws.close()
        await peer.close()
    await until(lambda: f"{s['id']}/echo/sp" not in client.app[MEDIA_NODE].rooms, what="echo room released")
