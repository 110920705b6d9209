"""A node forgets a session's placement when the session's last room here closes."""
from __future__ import annotations

from media.cascade_session import Placement
from media.node import MediaNode
from rooms.ids import NodeId, SessionId, SiteId


async def test_a_cascades_placement_is_forgotten_when_its_rooms_close():
    node = MediaNode()
    try:
        placements = []
        for n in range(3):
            sid = SessionId(f"ses_{n}")
            node.place(sid, Placement({SiteId("jl"): NodeId("node-jl"), SiteId("cc"): NodeId("node-cc")},
                                      NodeId("node-jl")))
            node.room(sid, SiteId("jl"), site=SiteId("cc"))  # a leg is about to open: the cascade opens
            placements.append(len(node.placements))
            await node.release(sid)  # nobody came, or the last leg left
        assert placements == [1, 1, 1]  # one held at a time
        assert node.placements == {} and not node.cascades
    finally:
        await node.close()
