"""`confctl media-node` as its own process: registers, receives legs by redirect, reports figures."""
from __future__ import annotations

import asyncio
import os
import subprocess
import time
from datetime import datetime, timedelta, timezone

import aiohttp
import pytest

from confctl.app import make_app
from confctl.config import Settings
from rooms.topology import demo_topology_path
from rooms.store.users import Role
from tests.media.node_processes import CONFCTL, free_port
from tests.media.peers import SitePeer, until
from tests.media.test_signalling import next_of, token_of
from tests.conftest import add_users

@pytest.fixture
async def plane_and_node(aiohttp_server, tmp_path):
    url = f"sqlite:///{tmp_path}/cp.db"
    server = await aiohttp_server(make_app(Settings(topology_file=demo_topology_path(), db_url=url, recordings_dir=tmp_path / "rec")))
    tokens = add_users(url, [("olga", Role.ORGANIZER, None), ("opal", Role.OPERATOR, None), ("node-jl", Role.NODE, None)])
    port = free_port()
    node = subprocess.Popen([CONFCTL, "media-node", "--control", f"http://127.0.0.1:{server.port}",
                             "--id", "node-jl", "--port", str(port),
                             "--recordings", str(tmp_path / "rec")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "CONFCTL_NODE_TOKEN": tokens["node-jl"]})
    base = f"http://127.0.0.1:{server.port}"
    try:
        async with aiohttp.ClientSession() as http:
            state = {}

            async def registered() -> bool:
                r = await http.get(f"{base}/api/media-nodes", headers={"Authorization": f"Bearer {tokens['opal']}"})
                state["nodes"] = (await r.json())["nodes"]
                return any(n["id"] == "node-jl" and n["alive"] and not n["in_process"] for n in state["nodes"])
            deadline = datetime.now() + timedelta(seconds=30)
            while not await registered():
                assert node.poll() is None, node.stderr.read()
                assert datetime.now() < deadline, state
                await asyncio.sleep(0.1)  # polling a condition, with the deadline above
            http.node_process = node  # for the test that kills it
            yield base, tokens, port, http
    finally:
        node.terminate()
        node.wait(timeout=10)


async def test_sites_are_redirected_to_the_node_process_and_meet_there(plane_and_node):
    base, tokens, port, http = plane_and_node
    now = datetime.now(timezone(timedelta(hours=8)))
    r = await http.post(f"{base}/api/sessions", headers={"Authorization": f"Bearer {tokens['olga']}"}, json={
        "title": "On the node", "host_site": "jl", "sites": ["sp", "ly"], "start": now.isoformat(),
        "end": (now + timedelta(hours=1)).isoformat(), "profile": "sd", "plan": "central"})
    s = await r.json()
    peers, sockets = {}, []
    try:
        for site, shade in (("jl", 40), ("sp", 120), ("ly", 200)):
            cp = await http.ws_connect(f"{base}/ws")
            await cp.send_json({"type": "join", "token": token_of(s, site)})
            redirect = await next_of(cp, "redirect")
            assert redirect["type"] == "redirect" and redirect["url"] == f"ws://127.0.0.1:{port}/ws"
            await cp.close()
            ws = await http.ws_connect(redirect["url"])
            sockets.append(ws)
            await ws.send_json({"type": "join", "grant": redirect["grant"]})
            assert (await next_of(ws, "joined"))["site"] == site
            peers[site] = SitePeer(shade)
            await ws.send_json({"type": "offer", "sdp": await peers[site].offer()})
            await peers[site].accept((await next_of(ws, "answer"))["sdp"])
        try:
            await until(lambda: all(len(p.frames) == 2 and min(p.frames.values()) >= 5 for p in peers.values()),
                        timeout=30, what="program at every site through the node process")
        except AssertionError:
            live = await (await http.get(f"{base}/api/live", headers={"Authorization": f"Bearer {tokens['opal']}"})).json()
            stalled = [site for site, p in peers.items() if min(p.frames.values(), default=0) < 5]
            legs = [leg for sess in live["sessions"] for leg in sess["legs"] if leg["site"] in stalled]
            inbound = {}
            for site in stalled:
                report = await peers[site].pc.getStats()
                inbound[site] = [(r.kind, r.packetsReceived) for r in report.values() if r.type == "inbound-rtp"]
            raise AssertionError({"stalled": stalled, "node_legs": legs, "client_inbound": inbound,
                                  "frames": {s: p.frames for s, p in peers.items()}}) from None
        live = await (await http.get(f"{base}/api/live", headers={"Authorization": f"Bearer {tokens['opal']}"})).json()
        (entry,) = [x for x in live["sessions"] if x["session"] == s["id"]]
        assert entry["node"] == "node-jl" and {l["site"] for l in entry["legs"]} == {"jl", "sp", "ly"}

        async def load_reported() -> dict | None:  # the node's heartbeat carries its load
            r = await http.get(f"{base}/api/media-nodes", headers={"Authorization": f"Bearer {tokens['opal']}"})
            (node,) = [n for n in (await r.json())["nodes"] if n["id"] == "node-jl" and not n["in_process"]]
            load = node["load"]
            return load if load and load["legs"] == 3 and load["kbps_in"] > 0 and load["kbps_out"] > 0 else None
        load = await until(load_reported, timeout=20, what="the node process reporting three legs and traffic")
        assert load["rooms"] == 1 and load["cpu_percent"] > 0

        bad = await http.ws_connect(f"ws://127.0.0.1:{port}/ws")
        await bad.send_json({"type": "join", "grant": redirect["grant"][:-4] + "AAAA"})
        assert (await next_of(bad, "joined"))["code"] == "invalid_grant"
        await bad.close()
        forbidden = await http.get(f"http://127.0.0.1:{port}/figures")
        assert forbidden.status == 403
    finally:
        for ws in sockets:
            await ws.close()
        for p in peers.values():
            await p.close()


async def test_a_session_recorded_on_the_node_process_is_listed_by_the_control_plane(plane_and_node):
    base, tokens, port, http = plane_and_node
    olga = {"Authorization": f"Bearer {tokens['olga']}"}
    now = datetime.now(timezone(timedelta(hours=8)))
    s = await (await http.post(f"{base}/api/sessions", headers=olga, json={
        "title": "Recorded on the node", "host_site": "jl", "sites": ["sp"], "start": now.isoformat(),
        "end": (now + timedelta(hours=1)).isoformat(), "profile": "sd", "plan": "central", "record": True})).json()
    cp = await http.ws_connect(f"{base}/ws")
    await cp.send_json({"type": "join", "token": token_of(s, "jl")})
    redirect = await next_of(cp, "redirect")
    await cp.close()
    ws = await http.ws_connect(redirect["url"])
    peer = SitePeer(60)
    try:
        await ws.send_json({"type": "join", "grant": redirect["grant"]})
        await next_of(ws, "joined")
        await ws.send_json({"type": "offer", "sdp": await peer.offer()})
        await peer.accept((await next_of(ws, "answer"))["sdp"])

        async def two_seconds_of_video_at_the_node() -> bool:
            r = await http.get(f"{base}/api/live", headers={"Authorization": f"Bearer {tokens['opal']}"})
            return any(leg["frames_in"].get("video", 0) >= 60
                       for x in (await r.json())["sessions"] if x["session"] == s["id"] for leg in x["legs"])

        async def both_tracks_finalized() -> list:
            r = await http.get(f"{base}/api/sessions/{s['id']}/recordings", headers=olga)
            done = [x for x in (await r.json())["recordings"] if x["duration_s"]]
            return done if {x["kind"] for x in done} == {"audio", "video"} else []
        await until(two_seconds_of_video_at_the_node, timeout=30, what="two seconds of video at the node")
        await ws.close()  # leaving finalizes the files on the node
        listed = await until(both_tracks_finalized, timeout=30, what="both tracks listed, finalized, by the control plane")
        video = next(x for x in listed if x["kind"] == "video")
        assert video["site"] == "jl" and video["duration_s"] >= 1.5
    finally:
        await peer.close()


async def test_a_killed_node_process_is_marked_down_within_five_seconds(plane_and_node):
    base, tokens, port, http = plane_and_node
    op = {"Authorization": f"Bearer {tokens['opal']}"}

    async def process_node() -> dict:
        r = await http.get(f"{base}/api/media-nodes", headers=op)
        return next(n for n in (await r.json())["nodes"] if n["id"] == "node-jl" and not n["in_process"])
    assert (await process_node())["alive"]
    http.node_process.kill()  # SIGKILL: no goodbye
    killed = time.monotonic()

    async def down() -> bool:
        return not (await process_node())["alive"]
    await until(down, timeout=15, what="the killed node marked down")
    took = time.monotonic() - killed
    print(f"killed node process marked down after {took:.1f} s")
    assert took <= 5.5  # the bound: down within 5 s (polling adds a little)
