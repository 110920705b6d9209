"""The control plane's side of the SIP gateway: sessions by dial-in number, and their rooms."""
from __future__ import annotations

from aiohttp import web

from confctl.placement import attachments_of, place
from confctl.session_windows import windows
from confctl.keys import BOOKINGS, MEDIA_NODE, SETTINGS, run_db
from media.room import MediaRoom
from rooms.ids import SessionId, SiteId
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
        """The room of the phone's site: its node's part of the session, recorded if booked so."""
        await place(self.app, conf.session_id, dict(conf.attachments))
        return self.app[MEDIA_NODE].room(SessionId(conf.session_id), SiteId(conf.host), conf.record, SiteId(site))

    async def release(self, session_id: str) -> None:
        await self.app[MEDIA_NODE].release(SessionId(session_id))
