"""The control plane's side of the SIP gateway: sessions by dial-in number, and their rooms."""
from __future__ import annotations

from aiohttp import web

import time

from confctl.placement import EffectivePlacement, attachments_of, effective_placement, place
from confctl.session_windows import windows
from confctl.keys import BOOKINGS, MEDIA_NODE, NODE_STORE, SETTINGS, run_db, run_read
from media.cascade_session import Placement
from media.room import MediaRoom
from rooms.ids import NodeId, SessionId, SiteId
from rooms.store.media_nodes import RegisteredNode
from sip_stub.gateway import Conference


class SessionConferences:
    def __init__(self, app: web.Application):
        self.app = app

    async def by_number(self, number: str) -> Conference | None:
        if not number.isdigit() or len(number) > 12:
            return None
        session = await run_db(self.app, self.app[BOOKINGS].by_dial_in, number)
        if session is None:
            return None
        return Conference(session["id"], session["host_site"], frozenset(s["site"] for s in session["sites"]),
                          windows(session, self.app[SETTINGS].join_margin_s), session["status"] == "booked",
                          bool(session["record"]), tuple(attachments_of(session).items()))

    async def room(self, conf: Conference, site: str) -> MediaRoom:
        """The room of the phone's site, recorded if booked so: its node's part of the session when
        every node runs here; when the session runs on node processes, the gateway's own room here,
        linked to the session's root node like a child node (media/cascade_link.py), and following the
        root when its node dies (phones stay connected; they cannot be told to rejoin as pages are)."""
        where, alive = await self._placement(conf)
        node, sid = self.app[MEDIA_NODE], SessionId(conf.session_id)
        if where.in_process:
            await place(self.app, conf.session_id, where)
            return node.room(sid, SiteId(conf.host), conf.record, SiteId(site))
        return node.gateway_room(sid, SiteId(conf.host), conf.record,
                                 Placement(where.attachments, where.root, alive[where.root].url),
                                 relocate=lambda: self._root_now(conf))

    async def _placement(self, conf: Conference) -> tuple[EffectivePlacement, dict[str, RegisteredNode]]:
        registered = await run_read(self.app, self.app[NODE_STORE].all)
        alive = {n.id: n for n in registered if n.alive(time.time())}
        topo = await run_read(self.app, self.app[BOOKINGS].topology)
        planned = {SiteId(s): NodeId(n) for s, n in conf.attachments}
        return effective_placement(planned, topo.root_node(), set(alive), processes=bool(registered)), alive

    async def _root_now(self, conf: Conference) -> Placement | None:
        """Where the gateway's branch links now; None while no node process is alive to be the root."""
        where, alive = await self._placement(conf)
        if where.in_process or where.root not in alive:
            return None
        return Placement(where.attachments, where.root, alive[where.root].url)

    async def release(self, session_id: str) -> None:
        await self.app[MEDIA_NODE].release(SessionId(session_id))
