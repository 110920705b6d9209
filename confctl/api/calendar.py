"""iCalendar routes: one session's invite, and a feed per site (built by confctl/invite_calendar.py)."""
from __future__ import annotations

from dataclasses import replace

from aiohttp import web

from confctl.api.route import Route
from confctl.api.session_access import session_for
from confctl.api.sessions import with_join_urls
from confctl.auth import require
from confctl.errors import ApiError
from confctl.invite_calendar import invite_calendar, invite_ics, session_event
from confctl.invites import invite_facts
from confctl.keys import BOOKINGS, run_read
from rooms.store.users import Role


def _ics(body: bytes, filename: str) -> web.Response:
    return web.Response(body=body, content_type="text/calendar", charset="utf-8",
                        headers={"Content-Disposition": f'attachment; filename="{filename}"'})


async def session_ics(request: web.Request) -> web.Response:
    """The invite: METHOD:REQUEST with a SEQUENCE that grows with each change; METHOD:CANCEL once cancelled.
    One site's (`?site=`, a technician's own) carries that site's join link; the whole session's none."""
    user = require(request)
    session = await session_for(request, user)
    site = request.query.get("site") or (user.site if user.role is Role.TECHNICIAN else None)
    if site is not None and site not in {s["site"] for s in session["sites"]}:
        raise ApiError(422, "unknown_site", f"site {site!r} does not take part in this session")
    facts = await invite_facts(request.app, session, None)
    if site is not None and session["status"] == "booked":
        facts = replace(facts, join_urls=with_join_urls(request, user, session)["join_urls"])
    return _ics(invite_ics(session, facts, site), f"{session['id']}{'-' + site if site else ''}.ics")


async def site_feed(request: web.Request) -> web.Response:
    user = require(request)
    site = request.match_info["site"]
    if user.role is Role.TECHNICIAN and user.site != site:
        raise ApiError(403, "forbidden", f"a technician reads the calendar of site {user.site} only")
    topo = await run_read(request.app, request.app[BOOKINGS].topology)
    if site not in topo.sites:
        raise ApiError(404, "not_found", f"no site {site!r}")
    sessions = await run_read(request.app, request.app[BOOKINGS].list, None, None, site)
    cal = invite_calendar(f"{topo.sites[site].name} video conferences")  # type: ignore[index]
    for s in sessions:
        facts = await invite_facts(request.app, s, None, topo)
        facts = replace(facts, join_urls=with_join_urls(request, user, s)["join_urls"])
        cal.add_component(session_event(s, facts, site))
    return _ics(cal.to_ical(), f"{site}.ics")


routes = [
    Route("GET", "/api/sessions/{id}.ics", session_ics, "A session as an iCalendar invite (REQUEST, or CANCEL once "
          "cancelled; SEQUENCE grows with each change): organizer and sites as mailto: attendees, dial-in as number "
          "and SIP URI; one site's invite carries its join link, the whole session's none",
          responses={200: "text/calendar"}, content_type="text/calendar",
          query=(("site", "one site's invite, with its join link as URL"),
                 ("token", "a feed token, for calendar clients that cannot send headers"))),
    Route("GET", "/api/sites/{site}/calendar.ics", site_feed, "A site's booked sessions as an iCalendar feed",
          responses={200: "text/calendar"}, content_type="text/calendar",
          query=(("token", "a feed token (POST /api/feed-tokens), for calendar clients that cannot send headers"),)),
]
