"""iCalendar: one session's invite, and a feed per site (icalendar package, RFC 5545)."""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from aiohttp import web
from icalendar import Calendar, Event

from confctl.api.route import Route
from confctl.api.sessions import _session_for
from confctl.auth import require
from confctl.errors import ApiError
from confctl.keys import BOOKINGS, run_read
from rooms.store.users import Role


def _utc(value: str) -> datetime:
    return datetime.fromisoformat(value).astimezone(timezone.utc)


def session_event(session: dict[str, Any], names: dict[str, str], site: str | None = None) -> Event:
    ev = Event()
    ev.add("uid", f"{session['id']}@confctl")
    ev.add("dtstamp", datetime.now(timezone.utc))
    ev.add("summary", session["title"])
    ev.add("dtstart", _utc(session["start"]))
    ev.add("dtend", _utc(session["end"]))
    # Every occurrence as an RDATE: exact whatever the rule's local-time subtleties.
    for occ in session["occurrences"][1:]:
        ev.add("rdate", _utc(occ["start"]))
    rooms = {s["site"]: s["room"] for s in session["sites"]}
    if site is not None:
        ev.add("location", f"{names.get(site, site)} / {rooms.get(site, '')}")
    participants = ", ".join(f"{names.get(s, s)} ({r})" for s, r in rooms.items())
    ev.add("description", f"Host: {names.get(session['host_site'], session['host_site'])}\n"
                          f"Sites: {participants}\nProfile: {session['profile']}, plan: {session['plan']}"
                          f"{', recorded' if session['record'] else ''}")
    ev.add("status", "CANCELLED" if session["status"] == "cancelled" else "CONFIRMED")
    return ev


def _calendar(name: str) -> Calendar:
    cal = Calendar()
    cal.add("prodid", "-//confctl//booking//EN")
    cal.add("version", "2.0")
    cal.add("x-wr-calname", name)
    return cal


def _ics(cal: Calendar, filename: str) -> web.Response:
    return web.Response(body=cal.to_ical(), content_type="text/calendar", charset="utf-8",
                        headers={"Content-Disposition": f'attachment; filename="{filename}"'})


async def session_ics(request: web.Request) -> web.Response:
    user = require(request)
    session = await _session_for(request, user)
    topo = await run_read(request.app, request.app[BOOKINGS].topology)
    names = {s: topo.sites[s].name for s in topo.sites}
    cal = _calendar(session["title"])
    cal.add_component(session_event(session, names, user.site if user.role is Role.TECHNICIAN else None))
    return _ics(cal, f"{session['id']}.ics")


async def site_feed(request: web.Request) -> web.Response:
    user = require(request)
    site = request.match_info["site"]
    if user.role is Role.TECHNICIAN and user.site != site:
        raise ApiError(403, "forbidden", f"a technician reads the calendar of site {user.site} only")
    topo = await run_read(request.app, request.app[BOOKINGS].topology)
    if site not in topo.sites:
        raise ApiError(404, "not_found", f"no site {site!r}")
    sessions = await run_read(request.app, request.app[BOOKINGS].list, None, None, site)
    names = {s: topo.sites[s].name for s in topo.sites}
    cal = _calendar(f"{topo.sites[site].name} video conferences")  # type: ignore[index]
    for s in sessions:
        cal.add_component(session_event(s, names, site))
    return _ics(cal, f"{site}.ics")


routes = [
    Route("GET", "/api/sessions/{id}.ics", session_ics, "A session as an iCalendar invite",
          responses={200: "text/calendar"}, content_type="text/calendar",
          query=(("token", "bearer token, for calendar clients that cannot send headers"),)),
    Route("GET", "/api/sites/{site}/calendar.ics", site_feed, "A site's booked sessions as an iCalendar feed",
          responses={200: "text/calendar"}, content_type="text/calendar",
          query=(("token", "bearer token, for calendar clients that cannot send headers"),)),
]
