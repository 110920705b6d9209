"""Backbone bytes and media-node CPU: one session placed central, then cascade, same run.

The province (jl) sends a pre-encoded 1280x720 VP8 clip at 2 Mbit/s and Opus; eight
counties receive, four under Changchun (cc) and four under Siping (sp), each getting its
program (2 video + 1 audio). The node runs in its own process (in cascade, the session's
three node rooms and two trunks live there, as in `confctl serve`). Over a window it
measures the process's CPU and the bytes that cross the Changchun backbone link
(province <-> cc): in central, every cc county's own leg; in cascade, the trunk between
node-cc and node-jl. Prints both, the ratio, and what the plan reserves on that link.

    .venv/bin/python scripts/bench/cascade.py [--seconds 10]
"""
from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
from aiohttp import web
from aiortc import RTCPeerConnection

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))
sys.path.insert(0, str(HERE))

from forwarding import (cpu_ticks, encode_clip, free_port, offer_to, publisher_pc, receiver_pc,  # noqa: E402
                        serve_forever)
from media.cascade_session import Placement  # noqa: E402
from media.node import MediaNode  # noqa: E402
from rooms.ids import PlanKind  # noqa: E402
from rooms.plan import media_plan  # noqa: E402
from rooms.topology import demo_topology  # noqa: E402

T = demo_topology()
RECEIVERS = [*T.children["cc"][1:5], *T.children["sp"][1:5]]  # counties (the first child is the mobile unit)
SITES = ["jl", *RECEIVERS]


async def serve_node(port: int, plan_kind: str) -> None:
    plan = media_plan(T, T.profile("hd720"), PlanKind(plan_kind), SITES)
    node = MediaNode()
    node.place("bench", Placement(plan.attachments, T.root_node()))

    async def offer(request: web.Request) -> web.Response:
        body = await request.json()
        room = node.room("bench", "jl", site=body["site"])
        _, answer = await room.join(body["site"], body["sdp"])
        return web.json_response({"sdp": answer})

    async def figures(request: web.Request) -> web.Response:
        legs = node.session_legs("bench")
        cc_legs = sum(sum(o.bytes_forwarded for o in [*l.video_out, l.audio_out] if o is not None)
                      + sum(s.bytes for s in l.sources.values()) for site, l in legs.items() if site.startswith("cc-"))
        branch = node.cascades["bench"].branches.get("node-cc") if "bench" in node.cascades else None
        trunk_bytes = branch.parent.bytes_sent() + branch.figures()["bytes_up"] if branch is not None else 0
        return web.json_response({"cc_legs": cc_legs, "cc_trunk": trunk_bytes})

    app = web.Application()
    app.router.add_post("/offer", offer)
    app.router.add_get("/figures", figures)
    await serve_forever(app, port)


async def run(plan_kind: str, clip: list[tuple[bytes, bool]], seconds: float) -> dict[str, float]:
    port = free_port()
    node = subprocess.Popen([sys.executable, __file__, "--serve-node", str(port), plan_kind],
                            stdout=subprocess.PIPE, text=True)
    assert node.stdout is not None and node.stdout.readline().strip() == "ready"
    pcs: list[RTCPeerConnection] = []
    counters: dict[str, list[list[int]]] = {}
    try:
        async with aiohttp.ClientSession() as http:
            await offer_to(http, port, "jl", publisher_pc(clip, True), pcs)
            for site in RECEIVERS:
                await offer_to(http, port, site, receiver_pc(counters), pcs)
            deadline = time.monotonic() + 60
            # one sender: each county's program holds one video (its second slot stays empty)
            while sum(c[0] > 30 for c in counters.get("video", [])) < len(RECEIVERS):
                if time.monotonic() > deadline:
                    raise RuntimeError(f"receivers stalled: {[c[0] for c in counters.get('video', [])]}")
                await asyncio.sleep(0.2)
            await asyncio.sleep(2)

            async def figures() -> dict[str, int]:
                async with http.get(f"http://127.0.0.1:{port}/figures") as r:
                    return await r.json()
            c0, f0, t0 = cpu_ticks(node.pid), await figures(), time.monotonic()
            await asyncio.sleep(seconds)
            c1, f1, t1 = cpu_ticks(node.pid), await figures(), time.monotonic()
        key = "cc_trunk" if plan_kind == "cascade" else "cc_legs"
        return {"cpu": 100 * (c1 - c0) / os.sysconf("SC_CLK_TCK") / (t1 - t0),
                "backbone_kbps": 8 * (f1[key] - f0[key]) / (t1 - t0) / 1000}
    finally:
        for pc in pcs:
            await pc.close()
        node.terminate()
        node.wait()


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=10)
    ap.add_argument("--serve-node", nargs=2, metavar=("PORT", "PLAN"))
    args = ap.parse_args()
    if args.serve_node:
        await serve_node(int(args.serve_node[0]), args.serve_node[1])
        return
    clip = encode_clip()
    print(f"1 sender (jl, 720p VP8 ~2 Mbit/s + Opus) -> 8 counties (4 under cc, 4 under sp); window {args.seconds:g} s; "
          "payload kbit/s on the province <-> cc backbone link")
    results = {kind: await run(kind, clip, args.seconds) for kind in ("central", "cascade")}
    for kind, r in results.items():
        plan = media_plan(T, T.profile("hd720"), PlanKind(kind), SITES)
        reserved = {l.direction.value: (l.kbps, l.streams) for l in plan.loads if l.link == "cc"}
        print(f"{kind:>8}: media process {r['cpu']:5.1f} % of a core; backbone cc {r['backbone_kbps']:7.0f} kbit/s "
              f"(plan reserves at HD720: down {reserved.get('down')}, up {reserved.get('up')})")
    ratio = results["cascade"]["backbone_kbps"] / results["central"]["backbone_kbps"]
    print(f"cascade / central backbone bytes: {ratio:.2f}  (the program's share: 1 stream of 4 counties' "
          f"programs -> about 1/4)")


if __name__ == "__main__":
    asyncio.run(main())
