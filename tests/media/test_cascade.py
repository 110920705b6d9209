"""A session over three media nodes: legs on the nodes their plan names, trunks carrying the program.

Real aiortc peers: the province host on node-jl, two Changchun counties on node-cc, a Siping
county on node-sp. Every site receives its two videos and its audio, across trunks where its
program is elsewhere, and what crosses each trunk is what rooms/plan.py reserves on that link.
"""
from __future__ import annotations

from media.cascade_session import Placement
from media.node import MediaNode
from media.room import LegState
from rooms.ids import PlanKind
from rooms.plan import media_plan
from rooms.topology import demo_topology
from tests.media.peers import SitePeer, until

T = demo_topology()
SITES = ["jl", "cc-nongan", "cc-yushu", "sp-lishu"]


async def join_all(node: MediaNode, sid: str, peers: dict[str, SitePeer]) -> None:
    for site, peer in peers.items():
        room = node.room(sid, "jl", site=site)
        await peer.accept((await room.join(site, await peer.offer()))[1])


async def test_a_cascade_session_meets_across_three_nodes():
    plan = media_plan(T, T.profile("sd"), PlanKind.CASCADE, SITES)
    node = MediaNode()
    node.place("ses_c", Placement(plan.attachments, T.root_node()))
    peers = {s: SitePeer(40 + 50 * i, talking=(s == "sp-lishu")) for i, s in enumerate(SITES)}
    try:
        await join_all(node, "ses_c", peers)
        cascade = node.cascades["ses_c"]
        assert {n: sorted(r.legs) for n, r in cascade.rooms.items()} == {
            "node-jl": ["jl"], "node-cc": ["cc-nongan", "cc-yushu"], "node-sp": ["sp-lishu"]}
        await until(lambda: all(t.connected for t in cascade.trunks.values()) and len(cascade.trunks) == 2,
                    timeout=30, what="trunks to node-cc and node-sp")
        await until(lambda: all(len(p.frames) == 2 and min(p.frames.values()) >= 15 for p in peers.values()),
                    timeout=40, what="two videos flowing at every site")
        await until(lambda: cascade.speaker == "sp-lishu", timeout=20, what="the Siping county elected speaker")
        legs = {s: l for r in cascade.rooms.values() for s, l in r.legs.items()}
        await until(lambda: all(l.program is not None and "sp-lishu" in l.program.video
                                for s, l in legs.items() if s != "sp-lishu"), what="the speaker's video everywhere")
        assert legs["cc-nongan"].program.video == ("jl", "sp-lishu") and legs["cc-nongan"].program.audio == "sp-lishu"
        # what crosses: node-cc's trunk carries down jl and sp-lishu (2 video) and sp-lishu's audio,
        # up at most the two counties' videos; never more than the plan's 2 video + 1 audio
        slots = cascade.slots["node-cc"]
        assert set(slots.down[1:]) == {"jl", "sp-lishu"} and slots.down[0] == "sp-lishu"
        assert slots.up[0] is None or slots.up[0] in ("cc-nongan", "cc-yushu")
        taps = [tap for l in legs.values() for tap in l.taps]
        assert taps and all(t.decoder_inputs == 0 for t in taps)  # forwarded encoded, never decoded
    finally:
        for p in peers.values():
            await p.close()
        await node.close()
