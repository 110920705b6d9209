"""A live routine session on a county link gives way to an emergency and gets it back, with real aiortc
legs: the node forwards less to the site behind the congested link (its received bitrate drops,
measured from its own RTCP-side counters), media keeps flowing, the site is told why, the operators'
feed gets the event, and after the emergency the second video returns."""
from __future__ import annotations

import asyncio
import time
from datetime import datetime, timedelta

from confctl.keys import MEDIA_NODE, OPERATIONS
from media.aiortc_hooks import inbound_streams
from rooms.ids import SessionId, SiteId
from rooms.store.engine import make_engine
from rooms.store.users import Role, UserStore
from rooms.topology import demo_topology
from tests.media.peers import until
from tests.media.test_signalling import TZ, client  # noqa: F401  (client: fixture)
from tests.test_monitoring import join_talking


def forwarded_video_bytes(client, session: str, site: str) -> int:
    """What the node has sent down this site's link in video: what its reservation is about."""
    room = client.app[MEDIA_NODE].room_of(SessionId(session), SiteId(site))
    return sum(t.bytes_forwarded for t in room.legs[SiteId(site)].video_out)


def video_packets(pc) -> int:
    """What the site's peer received in video (its own per-SSRC counters, retransmissions left out)."""
    return sum(x["packets_received"] for x in inbound_streams(pc) if x["kind"] == "video")


async def rates(client, session: str, peer, seconds: float = 3.0) -> tuple[float, float]:
    """(kbit/s the node forwards to Nong'an in video, video packets/s Nong'an receives) over a few
    seconds (wall clock: a rate needs a duration)."""
    b0, p0, t0 = forwarded_video_bytes(client, session, "cc-nongan"), video_packets(peer.pc), time.monotonic()
    await asyncio.sleep(seconds)
    dt = time.monotonic() - t0
    return (8 * (forwarded_video_bytes(client, session, "cc-nongan") - b0) / dt / 1000,
            (video_packets(peer.pc) - p0) / dt)


async def next_message(ws, kind: str, timeout: float = 20) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        msg = await asyncio.wait_for(ws.receive_json(), max(0.1, deadline - time.monotonic()))
        if msg["type"] == kind:
            return msg


async def test_a_live_session_degrades_in_place_for_an_emergency_and_returns_after_it(client, tmp_path):  # noqa: F811
    engine = make_engine(client.db_url)
    _, duty = UserStore(engine).add("duty", Role.ORGANIZER, None, set(demo_topology().sites), ("emergency",))
    engine.dispose()
    officer = {"Authorization": f"Bearer {duty}"}
    start = datetime.now(TZ)
    r = await client.post("/api/sessions", headers=client.h, json={
        "title": "County budget", "host_site": "cc", "sites": ["cc-nongan", "cc-yushu"], "start": start.isoformat(),
        "end": (start + timedelta(hours=1)).isoformat(), "profile": "hd720"})
    assert r.status == 201, await r.text()
    routine = await r.json()
    feed = client.app[OPERATIONS].subscribe()
    peers, sockets = {}, []
    try:
        await join_talking(client, routine, ("cc", "cc-yushu", "cc-nongan"), peers, sockets)
        nongan = peers["cc-nongan"]
        await until(lambda: len(nongan.frames) == 2 and all(n > 30 for n in nongan.frames.values()),
                    timeout=40, what="Nong'an receiving two videos")
        before = await rates(client, routine["id"], nongan)

        # The emergency needs 4280 kbit/s down Nong'an's link, which holds 4280 of 7500: the routine
        # session's Nong'an steps down to the speaker only (2180), and nothing else changes.
        r = await client.post("/api/emergencies", headers=officer, json={
            "title": "Flood on the Yitong", "sites": ["cc/emergency", "cc-nongan/emergency"], "profile": "hd720"})
        assert r.status == 201, await r.text()
        emergency = await r.json()
        (taken,) = emergency["preempted"]
        assert (taken["session_id"], taken["link"], taken["step"]) == (routine["id"], "cc-nongan", "speaker")
        told = await next_message(sockets[2], "layout")
        assert told["layout"] == "speaker" and "Flood on the Yitong" in told["detail"]
        event = await asyncio.wait_for(_next(feed, "preemption"), 10)
        assert event["session"] == routine["id"] and event["live_legs"]["changed"] == ["cc-nongan"]

        frozen = nongan.frames[1]
        first = nongan.frames[0]
        await until(lambda: nongan.frames[0] > first + 60, timeout=30, what="Nong'an still receiving the speaker")
        after = await rates(client, routine["id"], nongan)
        print(f"Nong'an video: {before[0]:.0f} kbit/s, {before[1]:.0f} packets/s before; "
              f"{after[0]:.0f} kbit/s, {after[1]:.0f} packets/s degraded")
        assert after[0] < 0.7 * before[0] and after[1] < 0.7 * before[1]  # one video instead of two
        assert nongan.frames[1] <= frozen + 5  # the second slot stopped (a few frames were in flight)
        assert all(n > 30 for n in peers["cc-yushu"].frames.values())  # Yushu's link was not congested

        r = await client.post(f"/api/emergencies/{emergency['id']}/end", headers=officer)
        assert r.status == 200, await r.text()
        (back,) = (await r.json())["restored"]
        assert (back["session_id"], back["step"]) == (routine["id"], "as booked")
        assert (await next_message(sockets[2], "layout"))["layout"] == "full"
        second = nongan.frames[1]
        await until(lambda: nongan.frames[1] > second + 30, timeout=30, what="Nong'an's second video back")
        r = await client.get(f"/api/sessions/{routine['id']}/history", headers=client.h)
        history = await r.json()
        assert r.status == 200, history
        assert [e["what"] for e in history["history"]] == ["booked", "degrade", "restore"]
    finally:
        client.app[OPERATIONS].unsubscribe(feed)
        for ws in sockets:
            await ws.close()
        for p in peers.values():
            await p.close()


async def _next(queue: asyncio.Queue, kind: str) -> dict:
    while True:
        msg = await queue.get()
        if msg.get("type") == kind:
            return msg
