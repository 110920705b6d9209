"""Recording encoded tracks as they arrive: playable files of the right duration, no transcoding."""
from __future__ import annotations

import asyncio
import time
from datetime import datetime, timedelta, timezone

import av
import pytest

from confctl.app import make_app
from confctl.config import Settings
from rooms.topology import demo_topology_path
from confctl.keys import SETTINGS
from media.room import MediaRoom
from rooms.store.users import Role
from tests.media.peers import SitePeer, until
from tests.media.test_signalling import next_of, token_of
from tests.conftest import add_users


def duration_of(path) -> float:
    with av.open(str(path)) as c:
        return c.duration / av.time_base


async def test_a_recording_plays_back_with_the_duration_it_was_recorded(tmp_path):
    room = MediaRoom("ses_rec", "jl", record_dir=tmp_path / "ses_rec")
    peer = SitePeer(80)
    try:
        await peer.accept((await room.join("jl", await peer.offer()))[1])
        await until(lambda: "video" in room.legs["jl"].sources and room.legs["jl"].recorders
                    and room.legs["jl"].recorders[-1].frames_written > 0, what="first frame recorded")
        t0 = time.monotonic()
        video = next(r for r in room.legs["jl"].recorders if r.kind == "video")
        await until(lambda: video.frames_written >= 90, what="three seconds of video recorded")
        await room.leave("jl")  # finalizes the files
        elapsed = time.monotonic() - t0
    finally:
        await peer.close()
        await room.close()
    files = {p.name.split("-")[1]: p for p in (tmp_path / "ses_rec").glob("*.webm")}
    assert set(files) == {"audio", "video"}
    d = duration_of(files["video"])
    assert abs(d - elapsed) <= 0.1 * elapsed, (d, elapsed)
    with av.open(str(files["video"])) as c:  # frame-complete: every packet decodes
        frames = list(c.decode(video=0))
    assert len(frames) >= 85 and frames[0].width == 320 and frames[0].height == 240
    assert abs(duration_of(files["audio"]) - elapsed) <= 0.1 * elapsed


@pytest.fixture
async def client(aiohttp_client, tmp_path):
    url = f"sqlite:///{tmp_path}/rec.db"
    c = await aiohttp_client(make_app(Settings(topology_file=demo_topology_path(), db_url=url, recordings_dir=tmp_path / "recordings")))
    c.tokens = add_users(url, [("olga", Role.ORGANIZER, None), ("oscar", Role.ORGANIZER, None),
                               ("opal", Role.OPERATOR, None), ("tina", Role.TECHNICIAN, "jl")])
    c.h = lambda who: {"Authorization": f"Bearer {c.tokens[who]}"}
    yield c


async def test_recordings_are_listed_downloaded_and_deleted_through_the_api(client):
    now = datetime.now(timezone(timedelta(hours=8)))
    r = await client.post("/api/sessions", headers=client.h("olga"), json={
        "title": "Recorded", "host_site": "jl", "sites": ["sp"], "start": now.isoformat(),
        "end": (now + timedelta(hours=1)).isoformat(), "profile": "sd", "record": True})
    s = await r.json()
    from confctl.keys import MEDIA_NODE
    node = client.app[MEDIA_NODE]
    sockets, peers = [], []
    for site, shade in (("jl", 50), ("sp", 200)):
        ws = await client.ws_connect("/ws")
        await ws.send_json({"type": "join", "token": token_of(s, site)})
        await next_of(ws, "joined")
        peer = SitePeer(shade)
        await ws.send_json({"type": "offer", "sdp": await peer.offer()})
        await peer.accept((await next_of(ws, "answer"))["sdp"])
        sockets.append(ws)
        peers.append(peer)
    await until(lambda: node.holds(s["id"]) and all(
        any(r.frames_written >= 30 for r in node.session_legs(s["id"])[site].recorders) for site in ("jl", "sp")
        if site in node.session_legs(s["id"])) and len(node.session_legs(s["id"])) == 2)
    for ws in sockets:
        await ws.close()
    await until(lambda: not node.holds(s["id"]), what="room released and files finalized")
    for peer in peers:
        await peer.close()

    base = f"/api/sessions/{s['id']}/recordings"
    assert (await client.get(base, headers=client.h("oscar"))).status == 403  # another organizer
    assert (await client.get(base, headers=client.h("tina"))).status == 403  # technicians do not
    listed = (await (await client.get(base, headers=client.h("opal"))).json())["recordings"]
    assert {(x["site"], x["kind"]) for x in listed} == {(site, kind) for site in ("jl", "sp") for kind in ("video", "audio")}
    video = next(x for x in listed if x["kind"] == "video" and x["site"] == "jl")
    assert video["duration_s"] > 0.5
    body = await (await client.get(f"{base}/{video['name']}", headers=client.h("olga"))).read()
    assert len(body) == video["bytes"] and body[:4] == b"\x1a\x45\xdf\xa3"  # EBML: a WebM file
    assert (await client.get(f"{base}/..%2Frec.db", headers=client.h("olga"))).status == 404
    # The grid video, rendered on demand after the session, with progress to poll.
    assert (await client.get(f"{base}/composite", headers=client.h("opal"))).status == 200
    r = await client.post(f"{base}/composite", headers=client.h("olga"))
    assert r.status == 202 and (await r.json())["state"] == "running"
    status = {}

    async def poll():
        status.update(await (await client.get(f"{base}/composite", headers=client.h("olga"))).json())
    deadline = time.monotonic() + 60
    while status.get("state") in (None, "running"):
        assert time.monotonic() < deadline, status
        await poll()
        await asyncio.sleep(0.1)
    assert status["state"] == "done", status
    grid = client.app[SETTINGS].recordings_dir / s["id"] / status["file"]
    with av.open(str(grid)) as c:
        frames = list(c.decode(video=0))
    assert frames and (frames[0].width, frames[0].height) == (1280, 360)  # two sites side by side
    assert abs(len(frames) / 15 - video["duration_s"]) <= 0.2 * video["duration_s"] + 0.5

    assert (await client.delete(f"{base}/{video['name']}", headers=client.h("olga"))).status == 200
    left = (await (await client.get(base, headers=client.h("olga"))).json())["recordings"]
    assert sorted((x["site"], x["kind"]) for x in left) == [
        ("composite", "grid"), ("jl", "audio"), ("sp", "audio"), ("sp", "video")]



async def test_a_recording_cut_short_by_a_killed_process_is_recovered_when_confctl_starts(aiohttp_client, tmp_path):
    import signal
    import sys
    from pathlib import Path

    from media.recording import describe
    folder = tmp_path / "recordings" / "ses_killed"
    target = folder / "jl-video-1700000000000.webm"
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tests.media.killed_recorder", str(target), cwd=Path(__file__).parents[2],
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE)
    try:
        _, frames, seconds = (await asyncio.wait_for(proc.stdout.readline(), 120)).decode().split()
    finally:
        proc.send_signal(signal.SIGKILL)
        await proc.wait()
    assert not target.exists() and target.with_name(target.name + ".part").exists()

    await aiohttp_client(make_app(Settings(topology_file=demo_topology_path(), db_url=f"sqlite:///{tmp_path}/k.db", recordings_dir=tmp_path / "recordings")))
    assert target.exists() and not list(folder.glob("*.part"))
    expected = float(seconds)
    assert abs(describe(target)["duration_s"] - expected) <= 0.1 * expected
    with av.open(str(target)) as c:  # every recovered packet decodes
        decoded = list(c.decode(video=0))
    assert len(decoded) >= 0.9 * int(frames)
