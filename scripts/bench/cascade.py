"""Backbone bytes and each media node's CPU: one session placed central, then cascade, same run.

The real system: the control plane (in this process) and three `confctl media-node`
processes (node-jl, node-cc, node-sp). The province (jl) sends a pre-encoded 1280x720 VP8
clip at 2 Mbit/s and Opus; eight counties receive, four under Changchun (cc) and four under
Siping (sp), each getting its program. Every site joins as a browser does: its join token
at the control plane's /ws, then the node its placement names. Over a window it measures
each node process's CPU and the bytes crossing the Changchun backbone link (province <-> cc),
from the nodes' own figures (/api/live): in central, the cc counties' own legs at node-jl;
in cascade, the trunk between node-cc and node-jl. Prints both, the ratio, and what the plan
reserves on that link.

    .venv/bin/python scripts/bench/cascade.py [--seconds 10]
"""
from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import aiohttp
from aiohttp import web
from aiortc import RTCPeerConnection, RTCSessionDescription

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))
sys.path.insert(0, str(HERE))

from forwarding import cpu_ticks, encode_clip, free_port, publisher_pc, receiver_pc  # noqa: E402
from confctl.app import make_app  # noqa: E402
from confctl.config import Settings  # noqa: E402
from media.contracts.browser import TO_SITE, Answer, Join, Joined, Offer, Redirect  # noqa: E402
from rooms.ids import PlanKind  # noqa: E402
from rooms.plan import media_plan  # noqa: E402
from rooms.store.engine import make_engine  # noqa: E402
from rooms.store.migrate import upgrade  # noqa: E402
from rooms.store.users import Role, UserStore  # noqa: E402
from rooms.topology import demo_topology, demo_topology_path  # noqa: E402

T = demo_topology()
RECEIVERS = [*T.children["cc"][1:5], *T.children["sp"][1:5]]  # counties (the first child is the mobile unit)
SITES = ["jl", *RECEIVERS]
NODES = ("node-jl", "node-cc", "node-sp")
CONFCTL = str(Path(sys.executable).parent / "confctl")


async def join(http: aiohttp.ClientSession, base: str, session: dict, site: str, pc: RTCPeerConnection) -> str:
    """A site joins as the join page does: token at the control plane, grant at its node. Returns the node URL."""
    token = parse_qs(urlparse(session["join_urls"][site]).query)["token"][0]
    async with http.ws_connect(f"{base}/ws") as cp:
        await cp.send_str(Join(token=token).model_dump_json())
        redirect = TO_SITE.validate_json(await cp.receive_str())
    assert isinstance(redirect, Redirect), redirect
    ws = await http.ws_connect(redirect.url)
    await ws.send_str(Join(grant=redirect.grant).model_dump_json())
    assert isinstance(TO_SITE.validate_json(await ws.receive_str()), Joined)
    await pc.setLocalDescription(await pc.createOffer())
    await ws.send_str(Offer(sdp=pc.localDescription.sdp).model_dump_json())
    while not isinstance(msg := TO_SITE.validate_json(await ws.receive_str()), Answer):
        pass
    await pc.setRemoteDescription(RTCSessionDescription(msg.sdp, "answer"))
    http.sockets.append(ws)  # type: ignore[attr-defined]
    return redirect.url


def backbone_bytes(live: dict, session_id: str, plan: str) -> int:
    total = 0
    for s in live["sessions"]:
        if s["session"] != session_id or s["node"] != "node-jl":
            continue
        if plan == "central":
            total += sum(sum(leg["bytes_in"].values()) + leg["bytes_forwarded"] for leg in s["legs"]
                         if leg["site"].startswith("cc-"))
        else:
            total += sum(t["bytes_down"] + t["bytes_up"] for t in s.get("trunks", []) if t["child"] == "node-cc")
    return total


async def run(plan_kind: str, clip: list[tuple[bytes, bool]], seconds: float, base: str, tokens: dict[str, str],
              pids: dict[str, int]) -> dict[str, object]:
    pcs: list[RTCPeerConnection] = []
    counters: dict[str, list[list[int]]] = {}
    start = datetime.now(timezone(timedelta(hours=8)))
    async with aiohttp.ClientSession() as http:
        http.sockets = []  # type: ignore[attr-defined]
        organizer = {"Authorization": f"Bearer {tokens['organizer']}"}
        operator = {"Authorization": f"Bearer {tokens['operator']}"}
        r = await http.post(f"{base}/api/sessions", headers=organizer, json={
            "title": f"bench {plan_kind}", "host_site": "jl", "sites": RECEIVERS, "start": start.isoformat(),
            "end": (start + timedelta(hours=1)).isoformat(), "profile": "hd720", "plan": plan_kind})
        session = await r.json()
        assert r.status == 201, session
        try:
            pcs.append(publisher_pc(clip, True))
            await join(http, base, session, "jl", pcs[-1])
            placed = {}
            for site in RECEIVERS:
                pcs.append(receiver_pc(counters))
                placed[site] = await join(http, base, session, site, pcs[-1])
            deadline = time.monotonic() + 60
            # one sender: each county's program holds one video (its second slot stays empty)
            while sum(c[0] > 30 for c in counters.get("video", [])) < len(RECEIVERS):
                if time.monotonic() > deadline:
                    raise RuntimeError(f"receivers stalled: {[c[0] for c in counters.get('video', [])]}")
                await asyncio.sleep(0.2)
            await asyncio.sleep(2)

            async def live() -> dict:
                async with http.get(f"{base}/api/live", headers=operator) as resp:
                    return await resp.json()
            c0, b0, t0 = {n: cpu_ticks(p) for n, p in pids.items()}, backbone_bytes(await live(), session["id"],
                                                                                    plan_kind), time.monotonic()
            await asyncio.sleep(seconds)
            c1, b1, t1 = {n: cpu_ticks(p) for n, p in pids.items()}, backbone_bytes(await live(), session["id"],
                                                                                    plan_kind), time.monotonic()
            return {"cpu": {n: 100 * (c1[n] - c0[n]) / os.sysconf("SC_CLK_TCK") / (t1 - t0) for n in pids},
                    "backbone_kbps": 8 * (b1 - b0) / (t1 - t0) / 1000,
                    "nodes_used": len(set(placed.values()))}
        finally:
            for ws in http.sockets:  # type: ignore[attr-defined]
                await ws.close()
            for pc in pcs:
                await pc.close()
            await http.delete(f"{base}/api/sessions/{session['id']}", headers=organizer)


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=10)
    args = ap.parse_args()
    clip = encode_clip()
    work = Path(tempfile.mkdtemp(prefix="confctl-bench-"))
    url = f"sqlite:///{work}/bench.db"
    engine = make_engine(url)
    upgrade(engine)
    users, known = UserStore(engine), set(T.sites)
    tokens = {role.value: users.add(f"bench-{role.value}", role, None, known)[1]
              for role in (Role.ORGANIZER, Role.OPERATOR)}
    tokens.update({n: users.add(n, Role.NODE, None, known)[1] for n in NODES})  # a credential per node id
    engine.dispose()
    runner = web.AppRunner(make_app(Settings(topology_file=demo_topology_path(), db_url=url,
                                             recordings_dir=work / "rec")))
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    base = f"http://127.0.0.1:{port}"
    procs = {n: subprocess.Popen([CONFCTL, "media-node", "--control", base, "--id", n,
                                  "--port", str(free_port()), "--recordings", str(work / "rec")],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                 env={**os.environ, "CONFCTL_NODE_TOKEN": tokens[n]}) for n in NODES}
    try:
        async with aiohttp.ClientSession() as http:
            deadline = time.monotonic() + 60
            while True:
                async with http.get(f"{base}/api/media-nodes",
                                    headers={"Authorization": f"Bearer {tokens['operator']}"}) as r:
                    alive = {n["id"] for n in (await r.json())["nodes"] if n["alive"] and not n["in_process"]}
                if set(NODES) <= alive:
                    break
                if time.monotonic() > deadline:
                    raise RuntimeError(f"node processes did not register: {sorted(alive)}")
                await asyncio.sleep(0.2)
        print(f"1 sender (jl, 720p VP8 ~2 Mbit/s + Opus) -> 8 counties (4 under cc, 4 under sp); window "
              f"{args.seconds:g} s; three node processes; payload kbit/s on the province <-> cc backbone link")
        pids = {n: p.pid for n, p in procs.items()}
        results = {kind: await run(kind, clip, args.seconds, base, tokens, pids) for kind in ("central", "cascade")}
    finally:
        for p in procs.values():
            p.terminate()
        for p in procs.values():
            p.wait()
        await runner.cleanup()
    for kind, r in results.items():
        plan = media_plan(T, T.profile("hd720"), PlanKind(kind), SITES)
        reserved = {l.direction.value: (l.kbps, l.streams) for l in plan.loads if l.link == "cc"}
        cpu = "  ".join(f"{n} {c:5.1f} %" for n, c in r["cpu"].items())  # type: ignore[union-attr]
        print(f"{kind:>8}: CPU of a core: {cpu}; backbone cc {r['backbone_kbps']:7.0f} kbit/s "
              f"(plan reserves at HD720: down {reserved.get('down')}, up {reserved.get('up')})")
    ratio = results["cascade"]["backbone_kbps"] / results["central"]["backbone_kbps"]  # type: ignore[operator]
    print(f"cascade / central backbone bytes: {ratio:.2f}  (the program's share: 1 stream of 4 counties' "
          f"programs -> about 1/4)")


if __name__ == "__main__":
    asyncio.run(main())
