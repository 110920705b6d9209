"""A media node: the rooms of the sessions it serves.

Inside `confctl serve` (node_id None) it is every node of the topology at once: a cascade's
node rooms and trunks all run here. As `confctl media-node --id X` it is node X only: the
sessions whose root is X get a Cascade here, the others a ChildBranch linked to their root.
"""
from __future__ import annotations

import asyncio
import logging
from dataclasses import replace
from collections import deque
from pathlib import Path
from typing import Any, Awaitable, Callable

from media.aiortc_hooks import install_fast_clock, raise_bitrate_caps
from media.cascade_link import GATEWAY, ChildBranch
from media.grants import node_key
from media.cascade_session import Cascade, Placement
from media.contracts.node import EndedLeg, PhoneLeg, PlanFollowed, SessionFigures, WebrtcLeg
from media.room import Leg, MediaRoom
from rooms.end_reason import EndReason
from supervision import TaskGroup
from rooms.ids import NodeId, SessionId, SiteId

log = logging.getLogger("media.node")
ENDED_KEPT = 500


class WrongNode(ValueError):
    """A leg whose site the session's placement attaches to another node."""


class MediaNode:
    def __init__(self, ice_servers: list[Any] | None = None, recordings: Path | None = None,
                 node_id: NodeId | None = None, grant_key: Callable[[], bytes] | None = None,
                 gateway_id: str | None = None):
        self.node_id = node_id  # None: every node of the topology, in this process
        # The SIP gateway's child id at a session's root: one per control plane, or two instances' phones
        # would replace each other's link there.
        self.gateway_id = NodeId(gateway_id or GATEWAY)
        self._grant_key = grant_key or (lambda: b"")
        self.branches: dict[SessionId, ChildBranch] = {}  # sessions rooted on another node process
        self.rooms: dict[SessionId, MediaRoom] = {}
        self.recordings = recordings
        raise_bitrate_caps()  # any encoder aiortc builds in this process (tests, harness) may reach HD rates
        install_fast_clock()
        self._ice = ice_servers or []
        self._closing = TaskGroup("media node")
        self.placements: dict[SessionId, Placement] = {}  # sessions spread over several nodes
        self.cascades: dict[SessionId, Cascade] = {}
        # Legs that ended lately (for call records): kept so that every control plane that asks
        # within a few minutes sees them; the reader ignores ids it has recorded.
        self.ended: deque[EndedLeg] = deque(maxlen=ENDED_KEPT)

    def place(self, session_id: SessionId, placement: Placement) -> None:
        """The control plane's word on which node each site of a session attaches to. A session that is
        already a cascade here keeps its one room per node even when every site now attaches to this one
        (a fallback after its other node died): a plain room beside it would be an island."""
        branch = self.branches.get(session_id)
        if branch is not None and placement.root != branch.placement.root:
            # The session's root moved (its root node died): our branch would keep dialling the dead one.
            # Our sites join again: into the room this node now holds, if it is the root, or a new branch.
            del self.branches[session_id]
            for leg in list(branch.room.legs.values()):
                if leg.on_rejoin is not None:
                    leg.on_rejoin(f"media node {branch.placement.root} is down: the session moved to "
                                  f"{placement.root}")
            self._closing.spawn(branch.close(), f"closing the branch of {session_id}")
        if placement.spans_nodes or session_id in self.cascades:
            self.placements[session_id] = placement
            if session_id in self.cascades:  # a fallback moved sites (a node died): the root follows
                self.cascades[session_id].placement = placement
        else:
            self.placements.pop(session_id, None)

    def cascade_root(self, session_id: SessionId, host: SiteId, record: bool = False) -> Cascade:
        """The session's Cascade on this node, its root (a child node process's trunk lands here)."""
        cascade = self.cascades.get(session_id)
        if cascade is None or cascade.closed:
            where = self.recordings / session_id if record and self.recordings is not None else None
            cascade = self.cascades[session_id] = Cascade(session_id, host, self.placements[session_id], self._ice,
                                                          where, local=self.node_id)
        return cascade

    def room(self, session_id: SessionId, host: SiteId, record: bool = False, site: SiteId | None = None) -> MediaRoom:
        """The room a site's leg (or phone) joins: in a cascade, its node's part of the session."""
        where = self.recordings / session_id if record and self.recordings is not None else None
        placement = self.placements.get(session_id)
        if placement is not None and site is not None and session_id not in self.rooms:
            node = placement.node_of(site)
            if self.node_id is not None and node != self.node_id:
                raise WrongNode(f"site {site} of session {session_id} attaches to node {node}, not {self.node_id}: "
                                "join through the control plane")
            if self.node_id is None or placement.root == self.node_id:
                return self.cascade_root(session_id, host, record).room(node)
            branch = self.branches.get(session_id)
            if branch is None or branch.closed:
                branch = self.branches[session_id] = ChildBranch(session_id, host, self.node_id, placement,
                                                                 self._grant_key, self._ice, where)
            return branch.room
        room = self.rooms.get(session_id)
        if room is None:
            room = self.rooms[session_id] = MediaRoom(session_id, host, self._ice, where)
        return room

    def gateway_room(self, session_id: SessionId, host: SiteId, record: bool, placement: Placement,
                     relocate: Callable[[], Awaitable[Placement | None]] | None = None) -> MediaRoom:
        """Phones of a session that runs on node processes: a room here (where the SIP gateway
        decodes and mixes), linked to the session's root node as its child `gateway`. `relocate` says
        where the root is now: when the root node dies, the branch links to the new one, phones and all."""
        where = self.recordings / session_id if record and self.recordings is not None else None
        branch = self.branches.get(session_id)
        if branch is None or branch.closed:
            # In the control plane the key is the master every node key derives from: the gateway signs its
            # trunk grant with the root's own key (whichever node is the root now), as the control plane
            # does for child nodes.
            def root_key() -> bytes:
                return node_key(self._grant_key(), branch.placement.root)
            branch = self.branches[session_id] = ChildBranch(session_id, host, self.gateway_id, placement, root_key,
                                                             self._ice, where)
        branch.relocate = relocate
        return branch.room

    def room_of(self, session_id: SessionId, site: SiteId) -> MediaRoom | None:
        """The open room a site of the session is (or would be) in, if any."""
        cascade = self.cascades.get(session_id)
        if cascade is not None:
            return cascade.rooms.get(cascade.placement.node_of(site))
        if session_id in self.branches:
            return self.branches[session_id].room
        return self.rooms.get(session_id)

    def session_legs(self, session_id: SessionId) -> dict[SiteId, Leg]:
        """Every WebRTC leg of a session on this node, whichever of its node rooms holds it."""
        rooms = ([self.rooms[session_id]] if session_id in self.rooms else []) + (
            list(self.cascades[session_id].rooms.values()) if session_id in self.cascades else []) + (
            [self.branches[session_id].room] if session_id in self.branches else [])
        return {s: leg for room in rooms for s, leg in room.legs.items()}

    def holds(self, session_id: SessionId) -> bool:
        return session_id in self.rooms or session_id in self.cascades or session_id in self.branches

    def session_rooms(self) -> list[MediaRoom]:
        """Every room here: single-node sessions and each node's part of a cascade."""
        return [*self.rooms.values(), *(r for c in self.cascades.values() for r in c.rooms.values()),
                *(b.room for b in self.branches.values())]

    def echo_room(self, session_id: SessionId, site: SiteId) -> MediaRoom:
        """A self-test room for one site: its media goes to the node and straight back."""
        key = SessionId(f"{session_id}/echo/{site}")
        room = self.rooms.get(key)
        if room is None:
            room = self.rooms[key] = MediaRoom(key, site, self._ice, echo=True)
        return room

    def ended_legs(self) -> list[EndedLeg]:
        """Legs (and phones) that ended lately, newest last."""
        self._collect_ended(self.session_rooms())
        return list(self.ended)

    def _collect_ended(self, rooms: list[MediaRoom]) -> None:
        for room in rooms:
            self.ended.extend(room.ended)
            room.ended.clear()

    async def end_leg(self, session_id: SessionId, site: SiteId, reason: EndReason = EndReason.ENDED_BY_ADMIN) -> bool:
        """An administrator ends a site's leg: the site's page is told why and does not rejoin."""
        room = self.room_of(session_id, site)
        if room is None or site not in room.legs:
            return False
        await room.leave(site, reason)
        await self.release(session_id)
        return True

    async def follow_plan(self, session_id: SessionId, layouts: dict[str, str], dropped: list[str], why: str) -> PlanFollowed:
        """A session's plan changed under it (an emergency took or gave back capacity): its legs here
        take their new layouts, and the legs of dropped sites end, told why."""
        changed: list[SiteId] = []
        ended: list[SiteId] = []
        cascade = self.cascades.get(session_id)
        if cascade is not None:  # the root decides what trunks carry: for sites on other nodes too
            cascade.placement = replace(cascade.placement, layouts={SiteId(s): l for s, l in layouts.items()})
        for room in [r for r in self.session_rooms() if r.session_id == session_id]:
            for site in list(room.legs):
                if site in dropped:
                    await room.leave(site, EndReason.PREEMPTED)
                    ended.append(site)
                elif room.set_layout(site, layouts.get(site), why):
                    changed.append(site)
        if cascade is not None and not cascade.closed:
            cascade.reprogram()
        if ended:
            await self.release(session_id)
        return PlanFollowed(changed=changed, ended=ended)

    async def release(self, session_id: SessionId) -> None:
        """Close a room (or a cascade's rooms and trunks) nobody is in any more."""
        self._collect_ended([r for r in self.session_rooms() if r.session_id == session_id])
        room = self.rooms.get(session_id)
        if room is not None and not room.legs and not room.phones:
            del self.rooms[session_id]
            await room.close()
        cascade = self.cascades.get(session_id)
        if cascade is not None and cascade.empty:
            del self.cascades[session_id]
            await cascade.close()
        branch = self.branches.get(session_id)
        if branch is not None and branch.empty:
            del self.branches[session_id]
            await branch.close()
        if not self.holds(session_id):  # a node up for months hosts thousands of sessions
            self.placements.pop(session_id, None)

    def drop_leg(self, room: MediaRoom, leg: Leg, reason: EndReason = EndReason.DISCONNECTED) -> asyncio.Task[None]:
        """Close a leg whose signalling connection ended.

        The node owns the work, so it completes even when the connection's
        handler is cancelled (aiohttp cancels it when the client disconnects).
        """
        async def drop() -> None:
            await room.drop(leg, reason)
            await self.release(room.session_id)
        return self._closing.spawn(drop(), f"closing leg {leg.site} of {room.session_id}")

    async def close(self) -> None:
        await self._closing.close()
        for sid in list(self.rooms):
            await self.rooms.pop(sid).close()
        for sid in list(self.cascades):
            await self.cascades.pop(sid).close()
        for sid in list(self.branches):
            await self.branches.pop(sid).close()

    async def live_figures(self, now: float) -> list[SessionFigures]:
        out = [SessionFigures(session=sid, host=room.host, legs=await room.live_figures(now))
               for sid, room in list(self.rooms.items())]
        for sid, cascade in list(self.cascades.items()):
            legs: list[WebrtcLeg | PhoneLeg] = []
            for room in list(cascade.rooms.values()):
                legs += await room.live_figures(now)  # each says its node
            out.append(SessionFigures(session=sid, host=cascade.host, legs=legs, trunks=cascade.figures(now)))
        for sid, branch in list(self.branches.items()):
            out.append(SessionFigures(session=sid, host=branch.host, legs=await branch.room.live_figures(now),
                                      link=branch.figures()))
        return out
