"""One session spread over several media nodes: its rooms, the trunks between them, one program.

The session's plan attaches each site to a node (rooms/plan.py: cascade puts a county on its
prefecture's node). The root node's `Cascade` decides for the whole session: the speaker is
elected from every node's audio levels, the session ranking (media/program.py) gives every
site its program, and media/cascade.py says which streams cross each trunk: at most
2 video + 1 audio each way, what the plan reserves, and only while both sides have someone.

Each child node is a `Branch` of the root's cascade:
- `LocalBranch`: every node runs in this process (`confctl serve` alone); the child's room
  and both trunk ends are here, and the trunk's RTP still crosses the network interface.
- `RemoteBranch` (media/cascade_link.py): the child is another node process; its end of the
  trunk and its room are there, and the root's orders reach it over the /trunk WebSocket,
  where `apply_order` below does the child's part — the same function in both cases.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Protocol, Sequence

from media.cascade import trunk_crossings
from media.contracts.node import BranchCounters, TrunkFigures
from media.forwarding import Source
from media.program import SessionRanking, program_of, session_ranking
from media.room import MediaRoom
from media.speaker import SpeakerSelector
from supervision import TaskGroup
from media.trunk import KINDS, NO_SLOTS, Trunk, TrunkSide
from rooms.ids import NodeId, SessionId, SiteId

log = logging.getLogger("media.cascade")
Slots = Sequence[SiteId | None]


@dataclass(frozen=True)
class Placement:
    """Which node each site's leg attaches to (the plan's `attachments`), and the root node."""
    attachments: Mapping[SiteId, NodeId]
    root: NodeId
    root_url: str | None = None  # where child node processes reach the root's /trunk
    layouts: Mapping[SiteId, str] = field(default_factory=dict)  # sites the plan gives less: what trunks carry for them
    trunk_grant: str | None = None  # a child's: the control plane's grant for its link to the root (media/grants.py)

    def node_of(self, site: SiteId) -> NodeId:
        return self.attachments.get(site, self.root)

    @property
    def spans_nodes(self) -> bool:
        return len(set(self.attachments.values()) | {self.root}) > 1

    def to_dict(self) -> dict[str, Any]:
        return {"attachments": dict(self.attachments), "root": self.root, "root_url": self.root_url,
                **({"layouts": dict(self.layouts)} if self.layouts else {}),
                **({"trunk_grant": self.trunk_grant} if self.trunk_grant else {})}

    @staticmethod
    def from_dict(d: Mapping[str, Any]) -> "Placement":
        return Placement({SiteId(s): NodeId(n) for s, n in dict(d["attachments"]).items()}, NodeId(d["root"]),
                         d.get("root_url"), {SiteId(s): str(l) for s, l in dict(d.get("layouts") or {}).items()},
                         str(d["trunk_grant"]) if d.get("trunk_grant") else None)


def ws_url(http_url: str, path: str) -> str:
    """A node's WebSocket endpoint (`/ws` for legs, `/trunk` for child nodes) from its HTTP URL."""
    base = http_url.rstrip("/")
    return ("wss://" + base[8:] if base.startswith("https://") else "ws://" + base.removeprefix("http://")) + path


@dataclass
class TrunkSlots:
    """Which site's stream each slot of a trunk carries, per direction (slot 0 audio, 1-2 video)."""
    down: list[SiteId | None] = field(default_factory=lambda: [None] * len(KINDS))
    up: list[SiteId | None] = field(default_factory=lambda: [None] * len(KINDS))


def assign(slots: Slots, video: frozenset[SiteId], audio: frozenset[SiteId]) -> list[SiteId | None]:
    """New slot contents: a site keeps its slot while it still crosses (no needless switch)."""
    out: list[SiteId | None] = [next(iter(audio), None), None, None]
    keep = [s if s in video else None for s in slots[1:]]
    waiting = [s for s in sorted(video) if s not in keep]
    for i, s in enumerate(keep):
        out[1 + i] = s if s is not None else (waiting.pop(0) if waiting else None)
    return out


def apply_order(room: MediaRoom, side: TrunkSide | None, ranking: SessionRanking, up: Slots, down: Slots) -> None:
    """A child node's part of the root's decision: feed the up slots, map the down slots, program its legs."""
    remote: dict[tuple[SiteId, str], Source] = {}
    if side is not None:
        for i, site in enumerate(up):
            side.out[i].switch(room.source_of(site, KINDS[i]) if site else None)
        for i, site in enumerate(down):
            src = side.inbound[i]
            if site is not None and src is not None:
                remote[(site, KINDS[i])] = src
    room.remote = remote
    audio = side.inbound[0] if side is not None and down[0] is not None else None
    room.set_trunk_audio({"trunk": audio} if audio is not None else {})
    for site in list(room.legs):
        room.apply_program(site, program_of(site, ranking))


def _kbps(delta_bytes: int, dt: float) -> int:
    return max(0, round(8 * delta_bytes / dt / 1000))


class Branch(Protocol):
    """A child node as its session's root sees it."""
    parent: TrunkSide  # the root's end of the trunk

    @property
    def connected(self) -> bool: ...

    @property
    def present(self) -> list[SiteId]: ...

    def order(self, ranking: SessionRanking, up: Slots, down: Slots) -> None: ...

    def figures(self) -> BranchCounters: ...


class LocalBranch:
    def __init__(self, room: MediaRoom, trunk: Trunk):
        self.room, self.trunk = room, trunk
        self.parent = trunk.parent

    @property
    def connected(self) -> bool:
        return self.trunk.connected

    @property
    def present(self) -> list[SiteId]:
        return self.room.present

    def order(self, ranking: SessionRanking, up: Slots, down: Slots) -> None:
        apply_order(self.room, self.trunk.child, ranking, up, down)

    def figures(self) -> BranchCounters:
        return BranchCounters(bytes_up=self.trunk.child.bytes_sent(), process="in-process")


class Cascade:
    """The root's decision for a session, and the rooms of the nodes that run in this process.

    `local`: the one node this process is (a node process), or None when every node of the
    session runs here (then child rooms and trunks are opened here as they are needed).
    """

    def __init__(self, session_id: SessionId, host: SiteId, placement: Placement, ice_servers: list[Any] | None = None,
                 record_dir: Path | None = None, local: NodeId | None = None):
        self.session_id, self.host, self.placement = session_id, host, placement
        self.local = local
        self._ice = ice_servers or []
        self._record_dir = record_dir
        self.rooms: dict[NodeId, MediaRoom] = {}
        self.branches: dict[NodeId, Branch] = {}  # by child node
        self.slots: dict[NodeId, TrunkSlots] = {}
        self.speakers = SpeakerSelector()
        self.joined: list[SiteId] = []  # join order across every node
        self._samples: dict[NodeId, tuple[float, int, int]] = {}  # the trunk figures' previous sample
        self._tasks = TaskGroup(f"cascade {session_id}")
        self.closed = False

    def room(self, node: NodeId) -> MediaRoom:
        room = self.rooms.get(node)
        if room is None:
            room = self.rooms[node] = MediaRoom(self.session_id, self.host, self._ice, self._record_dir, cascade=self,
                                                node_id=node)
        return room

    # -- what the rooms here (and remote branches) report --------------------------------
    @property
    def speaker(self) -> SiteId | None:
        return SiteId(self.speakers.speaker) if self.speakers.speaker else None

    def audio_level(self, site: SiteId, level: int) -> None:
        if self.speakers.feed(site, level, time.monotonic()) is not None:
            log.info("session %s: speaker is now %s", self.session_id, site)
            self.reprogram()

    def forget(self, site: SiteId) -> None:
        self.speakers.forget(site)

    def present(self) -> list[SiteId]:
        here = [s for room in self.rooms.values() for s in room.present]
        here += [s for c, b in self.branches.items() if c not in self.rooms for s in b.present]
        self.joined = [s for s in self.joined if s in here] + [s for s in here if s not in self.joined]
        return list(self.joined)

    @property
    def empty(self) -> bool:
        """Nobody here, and no child node process connected (a root relays for its children)."""
        return not any(room.legs or room.phones for room in self.rooms.values()) and all(
            isinstance(b, LocalBranch) for b in self.branches.values())

    def placement_below(self, child: NodeId) -> set[SiteId]:
        return {s for s, n in self.placement.attachments.items() if n == child}

    def below(self, child: NodeId) -> set[SiteId]:
        """Sites attached to a child node: by the placement, and what a remote child reports (the
        SIP gateway's phones may be any site of the session)."""
        branch = self.branches.get(child)
        return self.placement_below(child) | (set(branch.present) if branch is not None else set())

    def attach(self, child: NodeId, branch: Branch) -> None:
        """A child node process connected its trunk (a second connection replaces the first)."""
        self.branches[child] = branch
        self.slots.pop(child, None)
        self.room(self.placement.root)  # the root relays between children even with no site of its own
        self.reprogram()

    def detach(self, child: NodeId, branch: Branch) -> None:
        if self.branches.get(child) is branch:
            del self.branches[child]
            self.slots.pop(child, None)
            for site in branch.present:
                self.speakers.forget(site)
            self.reprogram()

    # -- the decision ---------------------------------------------------------------------
    def reprogram(self) -> None:
        if self.closed:
            return
        present = self.present()
        ranking = session_ranking(self.host, present, self.speaker, self.speakers.earlier)
        root = self.placement.root
        needed: dict[NodeId, bool] = {}
        for child in {n for n in self.placement.attachments.values() if n != root} | set(self.branches):
            below = self.below(child)
            needed[child] = any(s in below for s in present) and any(s not in below for s in present)
            if self.local is None:  # every node here: open and close the in-process trunks
                if needed[child] and child not in self.branches:
                    self.room(root)
                    self._open_trunk(child)
                elif not needed[child] and isinstance(self.branches.get(child), LocalBranch):
                    branch = self.branches.pop(child)
                    self.slots.pop(child, None)
                    self._tasks.spawn(branch.trunk.close(), f"closing trunk {child}")  # type: ignore[attr-defined]
        connected = {c: b for c, b in self.branches.items() if b.connected and needed.get(c)}
        # What each site takes: its plan's layout (changed live by pre-emption), a leg here knowing best.
        layouts = {**self.placement.layouts, **{s: leg.layout for room in self.rooms.values()
                                                for s, leg in room.legs.items() if leg.layout or s in self.placement.layouts}}
        crossings = {c: trunk_crossings(ranking, present, self.below(c), layouts) for c in connected}
        # Up first: the root room's view of every child's sites, which feeds what goes down.
        remote: dict[tuple[SiteId, str], Source] = {}
        for child, branch in connected.items():
            slots = self.slots.setdefault(child, TrunkSlots())
            slots.up = assign(slots.up, crossings[child][1].video, crossings[child][1].audio)
            for i, site in enumerate(slots.up):
                src = branch.parent.inbound[i]
                if site is not None and src is not None:
                    remote[(site, KINDS[i])] = src
        root_room = self.rooms.get(root)
        if root_room is not None:
            root_room.remote = remote
            root_room.set_trunk_audio({f"trunk:{c}": src for c, b in connected.items()
                                       if self.slots[c].up[0] is not None and (src := b.parent.inbound[0]) is not None})
        for child, branch in self.branches.items():
            if child in connected and root_room is not None:
                slots = self.slots[child]
                slots.down = assign(slots.down, crossings[child][0].video, crossings[child][0].audio)
                for i, site in enumerate(slots.down):
                    branch.parent.out[i].switch(root_room.source_of(site, KINDS[i]) if site else None)
                branch.order(ranking, slots.up, slots.down)
            else:
                for out in branch.parent.out:
                    out.switch(None)
                branch.order(ranking, NO_SLOTS, NO_SLOTS)  # type: ignore[arg-type]
        for node, room in self.rooms.items():
            if node == root:
                for site in list(room.legs):
                    room.apply_program(site, program_of(site, ranking))
            elif node not in self.branches:  # a child room here whose trunk is not needed (or not open yet)
                apply_order(room, None, ranking, NO_SLOTS, NO_SLOTS)  # type: ignore[arg-type]

    def _open_trunk(self, child: NodeId) -> None:
        trunk = Trunk(child, self.placement.root, self._ice, on_connected=self.reprogram)
        branch = LocalBranch(self.room(child), trunk)
        self.branches[child] = branch

        async def open_it() -> None:
            try:
                await trunk.open()
            except Exception:
                if self.branches.get(child) is branch:
                    del self.branches[child]
                await trunk.close()
                raise
        self._tasks.spawn(open_it(), f"opening trunk {child}")

    def figures(self, now: float | None = None) -> list[TrunkFigures]:
        """Each trunk's bytes each way, its kbit/s since the previous call, and the sites its slots carry."""
        now = time.monotonic() if now is None else now
        out = []
        for c, b in self.branches.items():
            slots, child_end = self.slots.get(c, TrunkSlots()), b.figures()
            down = b.parent.bytes_sent()
            prev = self._samples.get(c)
            dt = now - prev[0] if prev is not None else 0.0
            self._samples[c] = (now, down, child_end.bytes_up)
            out.append(TrunkFigures(
                child=c, parent=self.placement.root, connected=b.connected, bytes_down=down,
                bytes_up=child_end.bytes_up, process=child_end.process, down=list(slots.down), up=list(slots.up),
                kbps_down=_kbps(down - prev[1], dt) if prev is not None and dt > 0 else None,
                kbps_up=_kbps(child_end.bytes_up - prev[2], dt) if prev is not None and dt > 0 else None))
        return out

    async def close(self) -> None:
        self.closed = True
        for room in list(self.rooms.values()):
            await room.close()
        for branch in list(self.branches.values()):
            if isinstance(branch, LocalBranch):
                await branch.trunk.close()
        self.branches.clear()
        await self._tasks.close()
