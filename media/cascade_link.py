"""The trunk between two media node processes: a child node's link to its session's root node.

The child (a prefecture's node) dials the root's /trunk WebSocket when the session's first leg
arrives and keeps the link while its room is open. What they say is media/contracts/trunk.py:
the child's hello (a trunk grant) and offer, then its present sites and audio levels (batched
every 100 ms); the root's answer, then orders (the session-wide decision, media/cascade_session.py),
or an error before it closes.

The speaker is elected at the root from every node's levels; the child applies each order with
the same `apply_order` as an in-process branch. If the root cannot be reached for
ROOT_LOST_S, the child tells its sites to rejoin through the control plane, which places
them on a healthy node (confctl/placement.py); until then its own sites keep seeing each other.
"""
from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path
from typing import Any, Awaitable, Callable, TypeVar

import aiohttp
from aiohttp import WSMsgType, web
from pydantic import ValidationError

from media.contracts import trunk as msg_
from media.contracts.node import TRUNK_PATH, BranchCounters, LinkFigures
from media.tls import log_verification_failure
from media.cascade_session import Cascade, Placement, Slots, apply_order, ws_url
from media.trunk_outbox import TrunkOutbox
from media.grants import GRANT_TTL_S, Grant, InvalidGrant, sign_grant, verify_grant
from media.program import SessionRanking, session_ranking
from media.room import MediaRoom
from media.speaker import SpeakerSelector
from supervision import TaskGroup
from media.trunk import KINDS, NO_SLOTS, TrunkSide, trunk_pc
from rooms.ids import NodeId, SessionId, SiteId
from rooms.node_liveness import ROOT_LOST_S, TRUNK_HEARTBEAT_S

log = logging.getLogger("media.cascade_link")
# The SIP gateway's room in the control plane, for a session on node processes: a child of the
# root whose sites are whichever phones are in (any site of the session may dial in).
GATEWAY = NodeId("gateway")  # a control plane's SIP gateway as a child: "gateway" or "gateway-<instance>"


def is_gateway(child: str) -> bool:
    return child == GATEWAY or child.startswith(GATEWAY + "-")
LEVELS_EVERY_S = 0.1
RETRY_S = 1.0
MAX_MESSAGE = 256 * 1024


M = TypeVar("M", bound=msg_.Message)


class TrunkRejected(Exception):
    pass


def _order_msg(ranking: SessionRanking, speaker: SiteId | None, up: Slots, down: Slots) -> msg_.Order:
    return msg_.Order(ranking=msg_.Ranking(video=list(ranking.video), audio=list(ranking.audio)),
                      speaker=speaker, up=list(up), down=list(down))


def _ranking(order: msg_.Order) -> SessionRanking:
    return SessionRanking(tuple(order.ranking.video), tuple(order.ranking.audio))


assert len(KINDS) == msg_.SLOTS  # an order's slots are the trunk's tracks


# -- the root's side -----------------------------------------------------------------------
class RemoteBranch:
    """A child node process, as its session's root Cascade sees it."""

    def __init__(self, child: NodeId, side: TrunkSide, send: Callable[[msg_.Message], None],
                 speaker: Callable[[], SiteId | None]):
        self.child, self.parent = child, side
        self._send, self._speaker = send, speaker
        self.reported: list[SiteId] = []
        self._last: msg_.Order | None = None

    @property
    def connected(self) -> bool:
        return self.parent.connected

    @property
    def present(self) -> list[SiteId]:
        return list(self.reported)

    def order(self, ranking: SessionRanking, up: Slots, down: Slots) -> None:
        msg = _order_msg(ranking, self._speaker(), up, down)
        if msg != self._last:  # the root reprograms often; the child hears only changes
            self._last = msg
            self._send(msg)

    def figures(self) -> BranchCounters:
        return BranchCounters(bytes_up=sum(s.bytes for s in self.parent.inbound if s is not None), process="node process")


async def serve_trunk(request: web.Request, node: Any, key: Callable[[], bytes], node_id: str,
                      ice_servers: list[Any] | None = None) -> web.WebSocketResponse:
    """The root node's /trunk: one child node's link for one session."""
    ws = web.WebSocketResponse(heartbeat=TRUNK_HEARTBEAT_S, max_msg_size=MAX_MESSAGE)  # a vanished child: seconds
    await ws.prepare(request)
    tasks = TaskGroup(f"trunk from child at {request.remote}")
    outbox = TrunkOutbox()

    def send(message: msg_.Message) -> None:
        outbox.send(msg_.wire(message))

    async def writer() -> None:
        try:
            while True:
                await ws.send_json(await outbox.next())
        except ConnectionError:
            pass

    async def next_msg(kind: type[M]) -> M:
        raw = await asyncio.wait_for(ws.receive(), timeout=10)
        if raw.type != WSMsgType.TEXT:
            raise TrunkRejected("closed")
        msg = msg_.TO_ROOT.validate_json(raw.data)
        if not isinstance(msg, kind):
            raise TrunkRejected(f"expected {kind.__name__.lower()}")
        return msg

    writer_task = asyncio.create_task(writer())
    cascade: Cascade | None = None
    branch: RemoteBranch | None = None
    side: TrunkSide | None = None
    session_id: SessionId | None = None
    try:
        try:
            hello = await next_msg(msg_.Hello)
            grant = verify_grant(key(), hello.grant, time.time(), node_id)
            if not grant.trunk or grant.cascade is None:
                raise TrunkRejected("a trunk needs a trunk grant")
            placement = Placement.from_dict(grant.cascade)
            child = NodeId(grant.site)
            if placement.root != node_id or child == node_id or (
                    not is_gateway(child) and child not in set(placement.attachments.values())):
                raise TrunkRejected(f"node {child} is not a child of root {node_id} in this session's placement")
            session_id = SessionId(grant.session)
            node.place(session_id, placement)
            cascade = node.cascade_root(session_id, SiteId(grant.host), grant.record)
            offer = await next_msg(msg_.Offer)
            side = TrunkSide(f"{node_id} from {child}", trunk_pc(ice_servers), tasks,
                             on_connected=cascade.reprogram)
            send(msg_.Answer(sdp=await side.answer(offer.sdp)))
        except (InvalidGrant, TrunkRejected, ValueError, KeyError, TypeError, asyncio.TimeoutError) as exc:
            # ValueError covers a ValidationError: a message that is not of the contract
            log.warning("trunk refused: %r", exc)
            send(msg_.Error(code="trunk_refused", detail=str(exc)))
            await asyncio.sleep(0)  # let the writer take it before closing
            return ws
        cascade_ = cascade
        branch = RemoteBranch(child, side, send, lambda: cascade_.speaker)
        cascade.attach(child, branch)
        log.info("session %s: child node %s linked", session_id, child)
        def allowed(child: NodeId) -> set[SiteId]:
            return set(placement.attachments) if is_gateway(child) else cascade_.placement_below(child)
        async for raw in ws:
            if raw.type != WSMsgType.TEXT:
                continue
            try:
                msg = msg_.TO_ROOT.validate_json(raw.data)
            except ValidationError as exc:
                log.warning("trunk from %s: bad message ignored: %r", child, exc)
                continue
            if isinstance(msg, msg_.Present):
                mine = allowed(child)
                sites = [s for s in msg.sites if s in mine]
                for gone in set(branch.reported) - set(sites):
                    cascade.forget(gone)
                branch.reported = sites
                cascade.reprogram()
            elif isinstance(msg, msg_.Levels):
                for site, level in msg.levels:
                    if site in branch.reported:
                        cascade.audio_level(site, level)
    finally:
        if cascade is not None and branch is not None:
            cascade.detach(branch.child, branch)
        if side is not None:
            await side.close()
        await tasks.close()
        writer_task.cancel()
        await asyncio.gather(writer_task, return_exceptions=True)
        await ws.close()
        if session_id is not None:
            await node.release(session_id)
    return ws


# -- the child's side ----------------------------------------------------------------------
class ChildBranch:
    """This node process's part of a session whose root is another node process."""

    def __init__(self, session_id: SessionId, host: SiteId, node_id: NodeId, placement: Placement,
                 key: Callable[[], bytes], ice_servers: list[Any] | None = None, record_dir: Path | None = None):
        self.session_id, self.host, self.node_id, self.placement = session_id, host, node_id, placement
        self._key = key
        self._ice = ice_servers or []
        self.room = MediaRoom(session_id, host, self._ice, record_dir, cascade=self, node_id=node_id)
        self._local = SpeakerSelector()  # the speaker among our own sites while the root is out of reach
        self._root_speaker: SiteId | None = None
        self.side: TrunkSide | None = None
        self.linked = False
        self._send: Callable[[msg_.Message], None] | None = None
        self._levels: list[tuple[SiteId, int]] = []
        self._reported: list[SiteId] | None = None
        self.lost_since: float | None = time.monotonic()
        self.told_rejoin = False
        self.closed = False
        # Where the session's root is now, for a branch that cannot send its legs to rejoin (the SIP
        # gateway's: phones stay in this room); None: tell the legs to rejoin instead.
        self.relocate: Callable[[], Awaitable[Placement | None]] | None = None
        self._tasks = TaskGroup(f"link {session_id} {node_id}->{placement.root}")
        self._link = self._tasks.spawn(self._link_forever(), "link to the root node")

    # -- what the room reports (room.SessionWide) -----------------------------------------
    @property
    def speaker(self) -> SiteId | None:
        if self.linked:
            return self._root_speaker
        return SiteId(self._local.speaker) if self._local.speaker else None

    def audio_level(self, site: SiteId, level: int) -> None:
        changed = self._local.feed(site, level, time.monotonic()) is not None
        if self.linked:
            self._levels.append((site, level))
        elif changed:
            self._program_locally()

    def forget(self, site: SiteId) -> None:
        self._local.forget(site)

    def reprogram(self) -> None:
        if self.closed:
            return
        if self.linked:
            present = self.room.present
            if present != self._reported and self._send is not None:
                self._reported = present
                self._send(msg_.Present(sites=present))
        else:
            self._program_locally()

    @property
    def empty(self) -> bool:
        return not self.room.legs and not self.room.phones

    def _program_locally(self) -> None:
        ranking = session_ranking(self.host, self.room.present, self.speaker, self._local.earlier)
        apply_order(self.room, None, ranking, NO_SLOTS, NO_SLOTS)  # type: ignore[arg-type]

    # -- the link ------------------------------------------------------------------------------
    async def _link_forever(self) -> None:
        while not self.closed:
            try:
                await self._link_once()
            except (aiohttp.ClientError, OSError, asyncio.TimeoutError, TrunkRejected, ValueError, KeyError,
                    TypeError) as exc:
                if not log_verification_failure(log, exc, self.placement.root_url or ""):
                    log.warning("session %s: link %s -> %s: %r", self.session_id, self.node_id, self.placement.root, exc)
            self._unlinked()
            if self.closed:
                return
            if self.relocate is not None and self.lost_since is not None \
                    and time.monotonic() - self.lost_since >= ROOT_LOST_S:
                await self._follow_root(self.relocate)  # phones cannot be told to rejoin: we move for them
            elif self.lost_since is not None and time.monotonic() - self.lost_since >= ROOT_LOST_S \
                    and not self.told_rejoin:
                self.told_rejoin = True
                reason = f"media node {self.placement.root} cannot be reached: join again to be placed on a healthy node"
                log.warning("session %s: %s; telling %d sites", self.session_id, reason, len(self.room.legs))
                for leg in list(self.room.legs.values()):
                    if leg.on_rejoin is not None:
                        leg.on_rejoin(reason)
            await asyncio.sleep(RETRY_S)

    async def _follow_root(self, relocate: Callable[[], Awaitable[Placement | None]]) -> None:
        """The root has been out of reach for ROOT_LOST_S: ask where the session's root is now (the control
        plane elects another when a root node dies) and link there, keeping this room and whoever is in it."""
        try:
            placement = await relocate()
        except Exception as exc:  # the control plane's database busy, say: ask again at the next retry
            log.warning("session %s: where is the root now? %r", self.session_id, exc)
            return
        if placement is None or (placement.root, placement.root_url) == (self.placement.root, self.placement.root_url):
            return
        log.warning("session %s: root %s out of reach for %.0f s; %s links to the new root %s", self.session_id,
                    self.placement.root, time.monotonic() - (self.lost_since or time.monotonic()), self.node_id,
                    placement.root)
        self.placement, self.lost_since = placement, time.monotonic()
        self._tasks.owner = f"link {self.session_id} {self.node_id}->{placement.root}"

    def _unlinked(self) -> None:
        was = self.linked
        self.linked, self.side, self._send, self._reported = False, None, None, None
        if self.lost_since is None:
            self.lost_since = time.monotonic()
        if was and not self.closed:
            log.warning("session %s: link to root %s lost", self.session_id, self.placement.root)
            self._program_locally()

    def _on_linked(self) -> None:
        self.linked, self.lost_since, self.told_rejoin = True, None, False
        log.info("session %s: linked %s -> %s", self.session_id, self.node_id, self.placement.root)
        self.reprogram()

    async def _link_once(self) -> None:
        if not self.placement.root_url:
            raise TrunkRejected("the placement names no URL for the root node")
        url = ws_url(self.placement.root_url, TRUNK_PATH)
        outbox = TrunkOutbox()

        def send(message: msg_.Message) -> None:
            outbox.send(msg_.wire(message))

        grant = Grant(self.session_id, self.node_id, self.host, False, False, time.time() + GRANT_TTL_S,
                      node=self.placement.root, cascade=self.placement.to_dict(), trunk=True)
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=None, sock_connect=3)) as http:
            async with http.ws_connect(url, heartbeat=TRUNK_HEARTBEAT_S, max_msg_size=MAX_MESSAGE) as ws:
                side = TrunkSide(f"{self.node_id} to {self.placement.root}", trunk_pc(self._ice), self._tasks)

                async def writer() -> None:
                    while True:
                        await ws.send_json(await outbox.next())

                async def flush_levels() -> None:
                    while True:
                        await asyncio.sleep(LEVELS_EVERY_S)
                        if self._levels and self.linked:
                            levels, self._levels = self._levels, []
                            send(msg_.Levels(levels=levels))

                helpers = [asyncio.create_task(writer()), asyncio.create_task(flush_levels())]
                try:
                    # The control plane's grant for this link; signing our own works only where one key
                    # serves every node (in one process, in tests), since each node process has its own.
                    send(msg_.Hello(grant=self.placement.trunk_grant or sign_grant(self._key(), grant)))
                    send(msg_.Offer(sdp=await side.offer()))
                    self.side = side
                    async for raw in ws:
                        if raw.type != WSMsgType.TEXT:
                            continue
                        msg = msg_.TO_CHILD.validate_json(raw.data)  # not of the contract: the link fails, retried
                        if isinstance(msg, msg_.Answer):
                            await side.accept(msg.sdp)
                            self._send = send
                            self._on_linked()  # the trunk's media starts as soon as ICE completes
                        elif isinstance(msg, msg_.Order):
                            self._root_speaker = msg.speaker
                            apply_order(self.room, side, _ranking(msg), msg.up, msg.down)
                        elif isinstance(msg, msg_.Error):
                            raise TrunkRejected(f"{msg.code}: {msg.detail}")
                finally:
                    for t in helpers:
                        t.cancel()
                    await asyncio.gather(*helpers, return_exceptions=True)
                    self.side = None
                    await side.close()

    def figures(self) -> LinkFigures:
        side = self.side
        return LinkFigures(child=self.node_id, parent=self.placement.root, linked=self.linked,
                           bytes_up=side.bytes_sent() if side else 0,
                           bytes_down=sum(s.bytes for s in side.inbound if s is not None) if side else 0)

    async def close(self) -> None:
        self.closed = True
        self._link.cancel()
        await self.room.close()
        await self._tasks.close()
