"""One session spread over several media nodes: its rooms, the trunks between them, one program.

The session's plan attaches each site to a node (rooms/plan.py: cascade puts a county on its
prefecture's node). Each node hosts the session's room for the sites attached to it; a
child node's room is joined to the root node's room by a Trunk only while both sides have
someone present. The speaker is elected here from every node's audio levels, the session
ranking (media/program.py) gives every site its program, and media/cascade.py says which
streams cross each trunk: at most 2 video + 1 audio each way, what the plan reserves.

Here every node of a session runs in this process (several node rooms in one media node):
the trunks are real peer connections whose RTP crosses the network interface, so their
bytes are what the link between the nodes' sites would carry.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from media.cascade import trunk_crossings
from media.program import program_of, session_ranking
from media.room import MediaRoom
from media.speaker import SpeakerSelector
from media.supervision import TaskGroup
from media.trunk import KINDS, Trunk
from rooms.ids import NodeId, SessionId, SiteId

log = logging.getLogger("media.cascade")


@dataclass(frozen=True)
class Placement:
    """Which node each site's leg attaches to (the plan's `attachments`), and the root node."""
    attachments: Mapping[SiteId, NodeId]
    root: NodeId

    def node_of(self, site: SiteId) -> NodeId:
        return self.attachments.get(site, self.root)

    @property
    def spans_nodes(self) -> bool:
        return len(set(self.attachments.values())) > 1


@dataclass
class TrunkSlots:
    """Which site's stream each slot of a trunk carries, per direction (slot 0 audio, 1-2 video)."""
    down: list[SiteId | None] = field(default_factory=lambda: [None] * len(KINDS))
    up: list[SiteId | None] = field(default_factory=lambda: [None] * len(KINDS))


def assign(slots: list[SiteId | None], video: frozenset[SiteId], audio: frozenset[SiteId]) -> list[SiteId | None]:
    """New slot contents: a site keeps its slot while it still crosses (no needless switch)."""
    out: list[SiteId | None] = [next(iter(audio), None), None, None]
    keep = [s if s in video else None for s in slots[1:]]
    waiting = [s for s in sorted(video) if s not in keep]
    for i, s in enumerate(keep):
        out[1 + i] = s if s is not None else (waiting.pop(0) if waiting else None)
    return out


class Cascade:
    def __init__(self, session_id: SessionId, host: SiteId, placement: Placement, ice_servers: list[Any] | None = None,
                 record_dir: Path | None = None):
        self.session_id, self.host, self.placement = session_id, host, placement
        self._ice = ice_servers or []
        self._record_dir = record_dir
        self.rooms: dict[NodeId, MediaRoom] = {}
        self.trunks: dict[NodeId, Trunk] = {}  # by child node
        self.slots: dict[NodeId, TrunkSlots] = {}
        self.speakers = SpeakerSelector()
        self.joined: list[SiteId] = []  # join order across every node
        self._tasks = TaskGroup(f"cascade {session_id}")
        self.closed = False

    def room(self, node: NodeId) -> MediaRoom:
        room = self.rooms.get(node)
        if room is None:
            room = self.rooms[node] = MediaRoom(self.session_id, self.host, self._ice, self._record_dir, cascade=self,
                                                node_id=node)
        return room

    @property
    def speaker(self) -> SiteId | None:
        return SiteId(self.speakers.speaker) if self.speakers.speaker else None

    def audio_level(self, site: SiteId, level: int) -> None:
        if self.speakers.feed(site, level, time.monotonic()) is not None:
            log.info("session %s: speaker is now %s", self.session_id, site)
            self.reprogram()

    def present(self) -> list[SiteId]:
        here = [s for room in self.rooms.values() for s in room.present]
        self.joined = [s for s in self.joined if s in here] + [s for s in here if s not in self.joined]
        return list(self.joined)

    @property
    def empty(self) -> bool:
        return not any(room.legs or room.phones for room in self.rooms.values())

    def below(self, child: NodeId) -> set[SiteId]:
        return {s for s, n in self.placement.attachments.items() if n == child}

    def reprogram(self) -> None:
        if self.closed:
            return
        present = self.present()
        ranking = session_ranking(self.host, present, self.speaker, self.speakers.earlier)
        root = self.placement.root
        for child in {n for n in self.placement.attachments.values() if n != root}:
            below = self.below(child)
            needed = any(s in below for s in present) and any(s not in below for s in present)
            if needed and child not in self.trunks:
                self.room(root)  # the root relays between children even with no site of its own
                self._open_trunk(child)
            elif not needed and child in self.trunks:
                trunk = self.trunks.pop(child)
                self.slots.pop(child, None)
                self._tasks.spawn(trunk.close(), f"closing trunk {child}")
        remote: dict[NodeId, dict[tuple[SiteId, str], Any]] = {n: {} for n in self.rooms}
        connected = {c: t for c, t in self.trunks.items() if t.connected}
        crossings = {c: trunk_crossings(ranking, present, self.below(c)) for c in connected}
        # Up first: the root room's view of every child's sites, which feeds what goes down.
        for child, trunk in connected.items():
            slots = self.slots.setdefault(child, TrunkSlots())
            slots.up = assign(slots.up, crossings[child][1].video, crossings[child][1].audio)
            for i, site in enumerate(slots.up):
                trunk.child.out[i].switch(self.rooms[child].source_of(site, KINDS[i]) if site else None)
                if site is not None and trunk.parent.inbound[i] is not None:
                    remote[root][(site, KINDS[i])] = trunk.parent.inbound[i]
        if root in self.rooms:
            self.rooms[root].remote = remote[root]
            self.rooms[root].set_trunk_audio({f"trunk:{c}": src for c, t in connected.items()
                                              if (src := t.parent.inbound[0]) is not None})
        for child, trunk in connected.items():
            slots = self.slots[child]
            slots.down = assign(slots.down, crossings[child][0].video, crossings[child][0].audio)
            for i, site in enumerate(slots.down):
                trunk.parent.out[i].switch(self.rooms[root].source_of(site, KINDS[i]) if site else None)
                if site is not None and trunk.child.inbound[i] is not None:
                    remote[child][(site, KINDS[i])] = trunk.child.inbound[i]
            self.rooms[child].remote = remote[child]
            src = trunk.child.inbound[0]
            self.rooms[child].set_trunk_audio({"trunk": src} if src is not None else {})
        for node, room in self.rooms.items():
            if node != root and node not in connected:
                room.remote = {}
                room.set_trunk_audio({})
            for site in list(room.legs):
                room.apply_program(site, program_of(site, ranking))

    def _open_trunk(self, child: NodeId) -> None:
        trunk = Trunk(child, self.placement.root, self._ice, on_connected=self.reprogram)
        self.trunks[child] = trunk

        async def open_it() -> None:
            try:
                await trunk.open()
            except Exception:
                if self.trunks.get(child) is trunk:
                    del self.trunks[child]
                await trunk.close()
                raise
        self._tasks.spawn(open_it(), f"opening trunk {child}")

    def figures(self) -> list[dict[str, Any]]:
        """Each trunk's bytes forwarded each way and the sites its slots carry."""
        return [{"child": c, "parent": self.placement.root, "connected": t.connected,
                 "bytes_down": t.parent.bytes_sent(), "bytes_up": t.child.bytes_sent(),
                 "down": list(self.slots.get(c, TrunkSlots()).down), "up": list(self.slots.get(c, TrunkSlots()).up)}
                for c, t in self.trunks.items()]

    async def close(self) -> None:
        self.closed = True
        for room in list(self.rooms.values()):
            await room.close()
        for trunk in list(self.trunks.values()):
            await trunk.close()
        self.trunks.clear()
        await self._tasks.close()
